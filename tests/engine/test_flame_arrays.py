"""Bare FLAME arrays (exp.npy/expr.npy [T, 100] + pose.npy [T, 15]): reading, detection against
EMOCA's per-frame and stacked folders, bad input, and a hypothesis fuzz of structured mutations."""

from __future__ import annotations

import os
import pathlib
import tempfile

import numpy as np
import pytest

from engine.animation.formats import FORMATS, detect_format, read_any
from engine.animation.formats.flame_arrays import read_flame_arrays
from engine.errors import InputFileError


def _write(folder: pathlib.Path, T=5, E=100, expr_name="exp.npy", seed=0, **extra) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {expr_name: rng.normal(size=(T, E)).astype(np.float32),
              "pose.npy": (0.1 * rng.normal(size=(T, 15))).astype(np.float32), **extra}
    for name, arr in arrays.items():
        np.save(folder / name, arr)
    return arrays


def test_reads_expression_and_every_joint(tmp_path):
    a = _write(tmp_path / "take", T=7)
    assert "flame_arrays" in FORMATS and detect_format(tmp_path / "take") == "flame_arrays"
    s = read_any(tmp_path / "take")
    pose = a["pose.npy"]
    assert s.space == "flame" and s.source_format == "flame_arrays" and s.n_frames == 7
    assert s.expr_names[0] == "expr_000" and len(s.expr_names) == 100
    np.testing.assert_array_equal(s.expr, a["exp.npy"])
    np.testing.assert_array_equal(s.global_rot, pose[:, 0:3])
    np.testing.assert_array_equal(s.neck, pose[:, 3:6])
    np.testing.assert_array_equal(s.jaw, pose[:, 6:9])
    np.testing.assert_array_equal(s.eyes[:, 0], pose[:, 9:12])
    np.testing.assert_array_equal(s.eyes[:, 1], pose[:, 12:15])
    assert not s.translation.any() and s.shape is None and "fps" in s.notes


def test_expr_name_translation_and_shape(tmp_path):
    trans = np.arange(12, dtype=np.float32).reshape(4, 3) * 0.01
    shape = np.linspace(-1, 1, 300).astype(np.float32)
    a = _write(tmp_path / "t", T=4, E=50, expr_name="expr.npy", **{"transl.npy": trans, "shape.npy": shape})
    s = read_any(tmp_path / "t")
    np.testing.assert_array_equal(s.expr, a["expr.npy"])
    np.testing.assert_array_equal(s.translation, trans)
    np.testing.assert_array_equal(s.shape, shape)


def test_one_frame_as_vectors(tmp_path):
    d = tmp_path / "one"
    d.mkdir()
    np.save(d / "exp.npy", np.ones(100, np.float32))
    np.save(d / "pose.npy", np.zeros(15, np.float64))
    s = read_any(d)
    assert s.n_frames == 1 and s.expr.dtype == np.float32


def test_emoca_folders_stay_emoca(tmp_path):
    per_frame = tmp_path / "emoca"
    for i in range(3):
        d = per_frame / f"{i:06d}"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", np.zeros(50, np.float32))
        np.save(d / "pose.npy", np.zeros(6, np.float32))
    assert detect_format(per_frame) == "emoca_folder"
    stacked = tmp_path / "stacked"
    stacked.mkdir()
    np.save(stacked / "exp.npy", np.zeros((3, 50), np.float32))
    np.save(stacked / "pose.npy", np.zeros((3, 6), np.float32))
    assert detect_format(stacked) == "emoca_folder" and read_any(stacked).n_frames == 3
    # the folder that used to be misread as EMOCA and rejected
    bare = tmp_path / "bare"
    _write(bare)
    assert detect_format(bare) == "flame_arrays" and read_any(bare).n_frames == 5


def _save(path, arr):
    np.save(path, arr, allow_pickle=True)


BAD = {
    "both expression files": (lambda d: _save(d / "expr.npy", np.zeros((5, 100), np.float32)),
                              "both exp.npy and expr.npy"),
    "pose width": (lambda d: _save(d / "pose.npy", np.zeros((5, 9), np.float32)), r"\(T, 15\)"),
    "frame counts": (lambda d: _save(d / "pose.npy", np.zeros((4, 15), np.float32)), "5 frames but pose.npy has 4"),
    "nan": (lambda d: _save(d / "pose.npy", np.full((5, 15), np.nan, np.float32)), "non-finite"),
    "pickle": (lambda d: _save(d / "exp.npy", np.array([{"a": 1}] * 5, dtype=object)), "pickled"),
    "3-d": (lambda d: _save(d / "exp.npy", np.zeros((5, 10, 10), np.float32)), r"expected \(T, N\)"),
    "strings": (lambda d: _save(d / "exp.npy", np.array([["a"] * 100] * 5)), "not numeric"),
    "too many coefficients": (lambda d: _save(d / "exp.npy", np.zeros((5, 300), np.float32)), "1 to 100"),
    "no coefficients": (lambda d: _save(d / "exp.npy", np.zeros((5, 0), np.float32)), "1 to 100"),
    "no frames": (lambda d: (_save(d / "exp.npy", np.zeros((0, 100), np.float32)),
                             _save(d / "pose.npy", np.zeros((0, 15), np.float32))), "no frames"),
    "truncated": (lambda d: (d / "exp.npy").write_bytes((d / "exp.npy").read_bytes()[:300]), "truncated or corrupt"),
    "not npy": (lambda d: (d / "pose.npy").write_bytes(b"hello, world"), "not a valid .npy"),
    "translation": (lambda d: _save(d / "trans.npy", np.zeros((5, 2), np.float32)), r"\(T, 3\)"),
    "empty shape": (lambda d: _save(d / "shape.npy", np.zeros((1, 0), np.float32)), "expected \\[S\\]"),
    "two translations": (lambda d: (_save(d / "trans.npy", np.zeros((5, 3), np.float32)),
                                    _save(d / "transl.npy", np.zeros((5, 3), np.float32))), "several translation"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_file_and_the_problem(tmp_path, case):
    d = tmp_path / "take"
    _write(d)
    mutate, message = BAD[case]
    mutate(d)
    with pytest.raises(InputFileError, match=message) as info:
        read_flame_arrays(d)
    assert str(d) in str(info.value)


def test_missing_pieces(tmp_path):
    d = tmp_path / "take"
    _write(d)
    os.remove(d / "pose.npy")
    with pytest.raises(InputFileError, match="no pose.npy"):
        read_flame_arrays(d)
    with pytest.raises(InputFileError, match="not a folder"):
        read_flame_arrays(d / "exp.npy")


# ------------------------------------------------------------------ fuzz
hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

_MUTATIONS = ("none", "truncate", "flip_byte", "nan", "inf", "pose_width", "expr_width", "frames", "dtype",
              "ndim", "extra_expr", "translation", "shape", "empty")


@pytest.mark.slow
@hypothesis.settings(max_examples=1200, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(T=st.integers(1, 6), E=st.integers(1, 100), mutation=st.sampled_from(_MUTATIONS),
                  target=st.sampled_from(("exp.npy", "pose.npy")), k=st.integers(0, 10_000),
                  value=st.integers(-3, 400))
def test_fuzz_structured_mutations(T, E, mutation, target, k, value):
    """Every mutation of a valid folder either reads into a consistent sequence or raises one
    InputFileError naming the folder or a file in it; nothing else escapes."""
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp) / "take"
        arrays = _write(d, T=T, E=E, seed=k)
        f = d / target
        if mutation == "truncate":
            data = f.read_bytes()
            f.write_bytes(data[: k % max(1, len(data))])
        elif mutation == "flip_byte":
            data = bytearray(f.read_bytes())
            data[k % len(data)] ^= 1 + value % 255
            f.write_bytes(bytes(data))
        elif mutation in ("nan", "inf"):
            arr = arrays[target].copy()
            arr.reshape(-1)[k % arr.size] = np.nan if mutation == "nan" else -np.inf
            np.save(f, arr)
        elif mutation == "pose_width":
            np.save(d / "pose.npy", np.zeros((T, max(0, value % 40)), np.float32))
        elif mutation == "expr_width":
            np.save(d / "exp.npy", np.zeros((T, max(0, value)), np.float32))
        elif mutation == "frames":
            np.save(f, np.zeros((max(0, value % 9), arrays[target].shape[1]), np.float32))
        elif mutation == "dtype":
            dtype = (np.int16, np.float16, np.complex64, np.bool_, "U3")[k % 5]
            np.save(f, arrays[target].astype(dtype))
        elif mutation == "ndim":
            np.save(f, arrays[target].reshape((1,) * (1 + k % 2) + arrays[target].shape))
        elif mutation == "extra_expr":
            np.save(d / "expr.npy", arrays["exp.npy"])
        elif mutation == "translation":
            np.save(d / "trans.npy", np.zeros((max(0, value % 8), 1 + k % 4), np.float32))
        elif mutation == "shape":
            np.save(d / "shape.npy", np.zeros((1 + k % 3, max(0, value)), np.float32))
        elif mutation == "empty":
            f.write_bytes(b"")
        try:
            fmt = detect_format(d)
            seq = read_any(d)
        except InputFileError as exc:
            assert str(d) in str(exc)
            return
        assert fmt in ("flame_arrays", "emoca_folder")
        assert seq.space == "flame" and seq.expr.shape[0] == seq.n_frames >= 1
        assert np.isfinite(seq.expr).all() and np.isfinite(seq.eyes).all()
        if fmt == "flame_arrays":
            assert 1 <= seq.expr.shape[1] <= 100 and seq.eyes.shape == (seq.n_frames, 2, 3)
