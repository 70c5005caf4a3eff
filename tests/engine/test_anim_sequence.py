"""ParamSequence validation, slicing and resampling; rotation helpers; alignment; the demo clip."""

from __future__ import annotations

import numpy as np
import pytest

from engine.animation import ParamSequence, demo_clip
from engine.animation.align import (
    AlignOptions,
    align_to_range,
    frame_numbers,
    range_from_stats,
    retime,
    scale_values,
    soft_limit,
)
from engine.animation.names import ARKIT_NAMES
from engine.animation.rotation import (
    axis_angle_to_quat,
    axis_angle_to_yaw_pitch_roll,
    interpolate_axis_angle,
    quat_to_axis_angle,
    yaw_pitch_roll_to_axis_angle,
)
from engine.errors import GaussianHeadsError


def _seq(T=11, fps=10.0, names=("a", "b")):
    s = ParamSequence.zeros(T, names, fps=fps)
    t = np.arange(T, dtype=np.float32)
    return s.replace(expr=np.stack([t, 2 * t], 1), translation=np.stack([t, t, t], 1) * 0.01)


def test_validation():
    s = _seq()
    with pytest.raises(GaussianHeadsError, match="expr has shape"):
        s.replace(expr=np.zeros((11, 3)))
    with pytest.raises(GaussianHeadsError, match="jaw has shape"):
        s.replace(jaw=np.zeros((10, 3)))
    with pytest.raises(GaussianHeadsError, match="non-finite"):
        s.replace(expr=np.full((11, 2), np.inf))
    with pytest.raises(GaussianHeadsError, match="duplicated"):
        ParamSequence.zeros(3, ("a", "a"))
    with pytest.raises(GaussianHeadsError, match="frame rate"):
        s.replace(fps=0)
    with pytest.raises(GaussianHeadsError, match="space"):
        s.replace(space="bogus")
    with pytest.raises(GaussianHeadsError, match="no frames"):
        ParamSequence.zeros(0, ("a",))
    assert s.expr.dtype == np.float32 and s.eyes.shape == (11, 2, 3)


def test_slicing():
    s = _seq()
    sub = s[2:8]
    assert sub.n_frames == 6 and sub.fps == 10.0
    np.testing.assert_array_equal(sub.channel("a"), np.arange(2, 8))
    half = s[::2]
    assert half.fps == 5.0 and half.n_frames == 6
    assert s.slice_seconds(0.25, 0.55).channel("a").tolist() == [3, 4, 5]
    with pytest.raises(GaussianHeadsError):
        s[5:5]


def test_resample_linear_and_duration():
    s = _seq(T=11, fps=10.0)  # 1 second
    up = s.resample(20.0)
    assert up.n_frames == 21 and up.fps == 20.0
    np.testing.assert_allclose(up.channel("a"), np.arange(21) / 2, atol=1e-6)
    down = s.resample(4.0)
    assert down.n_frames == 5
    np.testing.assert_allclose(down.channel("b"), 2 * np.arange(5) * 2.5, atol=1e-5)
    assert s.resample(10.0) is s


def test_resample_rotation_slerp_takes_short_arc():
    T = 2
    s = ParamSequence.zeros(T, (), fps=1.0)
    # +170° and -170° about +Y: the short way between them passes through 180°, not 0°.
    a = np.deg2rad(170.0)
    rot = np.array([[0, a, 0], [0, -a, 0]], np.float32)
    out = s.replace(global_rot=rot).resample(2.0)
    mid = out.global_rot[1]
    assert np.isclose(np.linalg.norm(mid), np.pi, atol=1e-4)
    # a plain rotation stays on its axis with linearly changing angle
    rot = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    out = s.replace(jaw=rot).resample(4.0)
    np.testing.assert_allclose(out.jaw[:, 2], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)


def test_from_samples_irregular():
    times = np.array([0.0, 0.1, 0.3, 0.4])
    vals = np.array([[0.0], [1.0], [3.0], [4.0]], np.float32)
    z = np.zeros((4, 3), np.float32)
    s = ParamSequence.from_samples(times, 10.0, expr_names=("x",), expr=vals, jaw=z, neck=z, global_rot=z,
                                   eyes=np.zeros((4, 2, 3)), translation=z)
    assert s.n_frames == 5
    np.testing.assert_allclose(s.channel("x"), [0, 1, 2, 3, 4], atol=1e-6)


def test_rotation_helpers():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(50, 3)) * 0.8
    np.testing.assert_allclose(quat_to_axis_angle(axis_angle_to_quat(aa)), aa, atol=1e-9)
    ypr = rng.uniform(-1.2, 1.2, size=(3, 50))
    back = axis_angle_to_yaw_pitch_roll(yaw_pitch_roll_to_axis_angle(*ypr))
    np.testing.assert_allclose(np.array(back), ypr, atol=1e-9)
    # yaw alone is a rotation about +Y (model up)
    np.testing.assert_allclose(yaw_pitch_roll_to_axis_angle(0.3, 0.0, 0.0), [0, 0.3, 0], atol=1e-12)
    out = interpolate_axis_angle(aa[:2], np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(out, aa[:2], atol=1e-9)


def test_soft_limit_monotonic_and_bounded():
    x = np.linspace(-3, 4, 2001)[:, None]
    lo, hi = np.array([0.0]), np.array([1.0])
    y = soft_limit(x, lo, hi, 0.2)
    assert np.all(np.diff(y[:, 0]) > 0)  # keeps direction
    assert y.min() > -0.2 and y.max() < 1.2  # overshoot never beyond the knee
    inside = (x[:, 0] >= 0.0) & (x[:, 0] <= 1.0)
    np.testing.assert_array_equal(y[inside], x[inside])  # the range itself is untouched (neutral 0 stays 0)
    assert soft_limit(np.array([[1.05]]), lo, hi, 0.2)[0, 0] == pytest.approx(1.05, abs=2e-3)  # slope ~1 at the bound


def test_align_to_range_clip_and_soft():
    s = ParamSequence.zeros(5, ("a", "b", "c"))
    s = s.replace(expr=np.array([[0, 0, 5], [0.5, -1, 5], [1.5, 2, 5], [0.9, 0.1, 5], [-0.3, 0.5, 5]], np.float32))
    rng = np.array([[0, 1], [0, 1], [-np.inf, np.inf]], np.float32)
    res = align_to_range(s, rng, AlignOptions(mode="clip"))
    np.testing.assert_allclose(res.sequence.channel("a"), [0, 0.5, 1, 0.9, 0])
    assert res.changed == ("a", "b")
    np.testing.assert_array_equal(res.sequence.channel("c"), 5)  # unbounded channel untouched
    soft = align_to_range(s, rng, AlignOptions(mode="soft", knee=0.2)).sequence
    a = soft.channel("a")
    assert 1.0 < a[2] < 1.2 and a[2] > a[3]  # 1.5 compressed to within the knee, still above 0.9
    assert a[1] == pytest.approx(0.5) and a[0] == 0.0 and a[3] == pytest.approx(0.9)
    assert soft.n_frames == 5 and soft.fps == s.fps  # timing kept
    r = range_from_stats(np.array([0.0, 1.0]), np.array([1.0, 0.5]), 2.0)
    np.testing.assert_allclose(r, [[-2, 2], [0, 2]])
    with pytest.raises(GaussianHeadsError):
        AlignOptions(mode="squash")


def test_scale_and_retime():
    s = _seq(T=61, fps=60.0)
    sc = scale_values(s, 0.5)
    np.testing.assert_allclose(sc.channel("a"), s.channel("a") * 0.5)
    r = retime(s, 24.0)
    assert r.fps == 24.0 and r.n_frames == 25
    r2 = retime(s, 24.0, source_fps=30.0)  # the same 61 samples now span 2 s
    assert r2.n_frames == 49
    np.testing.assert_allclose(frame_numbers(3, 10), [10, 11, 12])


class _ArkitModel:
    expr_names = ARKIT_NAMES
    expr_space = "arkit"


class _FlameModel:
    expr_names = tuple(f"e{i}" for i in range(100))
    expr_space = "flame"


def test_demo_clip_arkit():
    d = demo_clip(_ArkitModel(), fps=24, frames=48)
    assert d.n_frames == 48 and d.fps == 24 and d.expr_names == ARKIT_NAMES
    for name, peak in (("eyeBlinkLeft", 1.0), ("eyeBlinkRight", 1.0), ("mouthSmileLeft", 0.8), ("jawOpen", 0.7)):
        c = d.channel(name)
        assert c[0] == 0 and c[-1] == 0 and c.max() == pytest.approx(peak, abs=0.05)
    assert d.jaw[:, 0].max() > 0.05  # jaw rotation too
    yaw = d.global_rot[:, 1]
    assert yaw.max() > 0.25 and yaw.min() < -0.1  # head turn both ways
    assert np.abs(np.diff(yaw)).max() < 0.1  # smooth
    other = set(range(52)) - {ARKIT_NAMES.index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "jawOpen")}
    assert not d.expr[:, sorted(other)].any()


def test_demo_clip_flame():
    d = demo_clip(_FlameModel(), fps=30, frames=60)
    assert d.n_expr == 100 and not d.expr.any()
    assert d.jaw[:, 0].max() > 0.2 and d.global_rot[:, 1].max() > 0.25


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:

    @settings(max_examples=40, deadline=None)
    @given(st.floats(-0.95, 0.95), st.floats(-0.85, 0.85), st.floats(-0.95, 0.95))
    def test_live_link_angles_round_trip(yaw, pitch, roll):
        """Live Link yaw/pitch/roll (units of 90°) -> axis-angle -> back, away from gimbal lock."""
        from engine.animation.formats.livelink import ROTATION_UNIT

        aa = yaw_pitch_roll_to_axis_angle(yaw * ROTATION_UNIT, pitch * ROTATION_UNIT, roll * ROTATION_UNIT)
        back = np.array(axis_angle_to_yaw_pitch_roll(aa)) / ROTATION_UNIT
        np.testing.assert_allclose(back, [yaw, pitch, roll], atol=1e-9)

    @settings(max_examples=30, deadline=None)
    @given(st.integers(2, 40), st.sampled_from([12.0, 24.0, 25.0, 30.0, 60.0]), st.sampled_from([10.0, 24.0, 50.0, 120.0]))
    def test_resample_keeps_duration_and_endpoints(n, fps, new_fps):
        s = ParamSequence.zeros(n, ("a",), fps=fps).replace(expr=np.linspace(0, 1, n, dtype=np.float32)[:, None])
        r = s.resample(new_fps)
        assert r.duration <= s.duration + 1e-9 and s.duration - r.duration < 1.0 / new_fps
        assert r.expr[0, 0] == 0.0
        np.testing.assert_allclose(r.expr[:, 0], r.times / s.duration, atol=1e-5)  # a linear ramp stays linear
