"""engine.scene_render without Blender: parameter mapping, colour and depth conversion for the
render result, border regions, the viewport state machine and the PNG writer."""

import numpy as np
import pytest

from engine import scene_render as sr
from engine.avatar.gaussian_set import GaussianSet
from engine.errors import GaussianHeadsError
from engine.head_model.model import HeadModel
from engine.raster.camera import Camera, look_at


def _model(names=("eyeBlinkLeft", "eyeBlinkRight", "jawOpen")):
    v = np.zeros((3, 3))
    return HeadModel(name="tiny", v_template=v, shapedirs=np.zeros((3, 3, 4)), exprdirs=np.zeros((3, 3, len(names))),
                     expr_names=tuple(names), j_regressor=np.zeros((5, 3)), parents=np.array([-1, 0, 1, 1, 1]),
                     weights=np.ones((3, 5)) / 5, faces=np.array([[0, 1, 2]], np.int32))


def test_params_from_channels_matches_names_not_order():
    model = _model()
    params = sr.params_from_channels(model, ["jawOpen", "unknown", "eyeBlinkLeft"], [0.5, 9.0, 0.25],
                                     jaw=(0.1, 0, 0), neck=(0, 0.2, 0), head_rot=(0, 0, 0.3),
                                     eyes=(1, 2, 3, 4, 5, 6), translation=(0, 0, 0.01), shape=[1, 2])
    assert params.expr.tolist() == [0.25, 0.0, 0.5]
    assert params.eyes.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert params.shape.tolist() == [1, 2, 0, 0]
    assert params.jaw[0] == pytest.approx(0.1) and params.global_rot[2] == pytest.approx(0.3)
    with pytest.raises(GaussianHeadsError):
        sr.params_from_channels(model, ["jawOpen"], [0.1, 0.2], (0, 0, 0), (0, 0, 0), (0, 0, 0), (0,) * 6,
                                (0, 0, 0), [])


def test_mirror_and_groups():
    names = ["eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp"]
    out = sr.mirrored_values(names, np.array([0.9, 0.1, 0.4, 0.3, 0.0, 0.7]))
    assert out.tolist() == pytest.approx([0.1, 0.9, 0.4, 0.0, 0.3, 0.7])
    assert [sr.channel_group(n) for n in names] == ["eyes", "eyes", "jaw", "mouth", "mouth", "brows"]
    assert sr.channel_group("expr_07") == "other"


def test_scene_linear_conversion_round_trips_through_the_standard_view():
    rng = np.random.default_rng(0)
    rgb = rng.random((8, 8, 3)).astype(np.float32)
    alpha = rng.random((8, 8, 1)).astype(np.float32)
    alpha[0, 0] = 0.0
    premult = np.concatenate([rgb * alpha, alpha], axis=2)
    # opaque over a world colour: Blender's Standard view (sRGB OETF) gives back the CLI picture
    bg_linear = np.array([0.2, 0.3, 0.4], np.float32)
    out = sr.display_to_scene_linear(premult, bg_linear)
    expected = premult[..., :3] + (1 - alpha) * sr.linear_to_srgb(bg_linear)
    assert np.abs(sr.linear_to_srgb(out[..., :3]) - expected).max() < 1e-3
    assert np.all(out[..., 3] == 1.0)
    # transparent film: premultiplied linear whose straight colour encodes to the straight display colour
    out = sr.display_to_scene_linear(premult, None)
    covered = alpha[..., 0] > 0.05
    straight = out[..., :3][covered] / out[..., 3:][covered]
    assert np.abs(sr.linear_to_srgb(straight) - rgb[covered]).max() < 1e-3
    assert out[0, 0].tolist() == [0, 0, 0, 0]
    assert np.abs(sr.srgb_to_linear_fast(rgb) - sr.srgb_to_linear(rgb)).max() < 2e-5


@pytest.mark.parametrize("background", [None, (0.2, 0.3, 0.4)])
def test_fused_scene_linear_conversion_equals_the_numpy_reference(background):
    """The numba kernel does the reference's float32 arithmetic: equal to the last bit, also on
    alpha at and around the 1e-6 cut, above 1 and below 0, and colours outside [0, 1]."""
    rng = np.random.default_rng(1)
    rgba = rng.uniform(-0.2, 1.3, (37, 53, 4)).astype(np.float32)
    rgba[0, :8, 3] = [0.0, 1e-7, 1e-6, 1.1e-6, 1.0, 1.5, -0.5, 0.5]
    fast = sr.display_to_scene_linear(rgba, background)
    reference = sr.display_to_scene_linear_reference(rgba, background)
    assert fast.dtype == np.float32 and fast.shape == rgba.shape
    np.testing.assert_array_equal(fast, reference)
    np.testing.assert_array_equal(sr.display_to_scene_linear(rgba[::-1], background),
                                  reference[::-1])                 # a non-contiguous view too


def test_depth_and_row_order():
    depth = np.array([[np.inf, 2.0], [1.5, 0.5]], np.float32)
    alpha = np.array([[0.0, 0.9], [0.5, 1e-5]], np.float32)
    assert sr.blender_depth(depth, alpha).tolist() == [[1e10, 2.0], [1.5, 1e10]]
    image = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert sr.bottom_up(image).tolist() == [[4, 5], [2, 3], [0, 1]]


def test_border_region_camera_is_a_window_of_the_full_camera():
    assert sr.border_rect(100, 80, False, 0.2, 0.6, 0.1, 0.5) == (0, 0, 100, 80)
    rect = sr.border_rect(100, 80, True, 0.25, 0.75, 0.5, 1.0)
    assert rect == (25, 40, 75, 80)
    full = Camera(look_at((0, -1, 0), (0, 0, 0)), 120.0, 120.0, 50.0, 40.0, 100, 80)
    part = sr.sub_camera(full, rect)
    points = np.random.default_rng(1).uniform(-0.2, 0.2, (10, 3))
    a, b = full.project(points), part.project(points)
    assert np.allclose(b[:, 0], a[:, 0] - 25) and np.allclose(b[:, 1], a[:, 1] - 0)   # top rows kept
    assert (part.width, part.height) == (50, 40)


def test_viewport_state_machine_without_rendering(monkeypatch):
    calls = []

    def fake_render(gaussians, camera, w, h, settings, background):
        calls.append((w, h))
        return sr.FrameResult(np.zeros((h, w, 4), np.float32), np.zeros((h, w), np.float32), 0, 0.0)

    monkeypatch.setattr(sr, "render_gaussians", fake_render)
    now = [0.0]
    vr = sr.ViewportRenderer(refine_after=0.3, clock=lambda: now[0])
    view = np.eye(4)
    window = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, -1.002, -0.02], [0, 0, -1, 0]])
    frame, due = vr.next_frame(200, 100, view, window, scale=0.5)
    assert calls[-1] == (100, 50) and due
    vr.next_frame(200, 100, view, window, scale=0.5)
    assert len(calls) == 1                              # cached while waiting
    now[0] = 1.0
    frame, due = vr.next_frame(200, 100, view, window, scale=0.5)
    assert calls[-1] == (200, 100) and frame.refined and not due
    vr.set_gaussians(GaussianSet.empty())               # the scene changed: reduced again
    vr.next_frame(200, 100, view, window, scale=0.5)
    assert calls[-1] == (100, 50)


def test_png_writer(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 4)).astype(np.uint8)
    sr.write_png(tmp_path / "x.png", image)
    with PIL.open(tmp_path / "x.png") as im:
        assert np.array_equal(np.asarray(im), image)
