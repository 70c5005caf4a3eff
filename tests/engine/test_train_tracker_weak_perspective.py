"""Dataset builder from SMIRK/EMOCA per-frame folders that carry weak-perspective cams (cam.npy).

The folders are written here (FLAME-sized stand-in head model); each row's pinhole camera must put the
posed vertices where DECA's convention puts them: pixel = (N/2 + s (x + tx) N/2, N/2 - s (y + ty) N/2).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from engine.animation.formats.per_frame_folders import read_emoca_folder, read_smirk_folder
from engine.errors import InputFileError
from engine.head_model import lbs, load_head_model
from engine.head_model.storage import model_to_arrays, save_npz
from engine.train.dataset import open_dataset
from engine.train.tracker import TrackerCamera, build_from_tracker
from tests.engine.synthetic_head import make_synthetic_head

CAMS = np.array([[8.0, 0.0, 0.0], [6.5, 0.03, -0.02], [9.0, -0.04, 0.05]], np.float32)


def _flame_model(tmp_path):
    model = dataclasses.replace(make_synthetic_head(), expr_space="flame")
    path = str(tmp_path / "flame_like.npz")
    save_npz(path, model_to_arrays(model))
    return load_head_model(path), path


def _smirk_folder(tmp_path, cams=CAMS, n_expr=4) -> str:
    rng = np.random.default_rng(3)
    root = tmp_path / "smirk"
    for k, cam in enumerate(cams):
        d = root / f"{k:05d}"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", rng.normal(0, 0.5, (1, n_expr)).astype(np.float32))
        np.save(d / "jawpose.npy", np.array([0.1 * k, 0, 0], np.float32))
        np.save(d / "globalpose.npy", rng.normal(0, 0.15, 3).astype(np.float32))
        np.save(d / "eyelid.npy", np.array([0.2, 0.9], np.float32))
        np.save(d / "shape.npy", rng.normal(0, 1, (1, 20)).astype(np.float32))
        np.save(d / "cam.npy", np.asarray(cam, np.float32))
    return str(root)


def _images(tmp_path, count: int, size) -> str:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", size, (30 * i, 90, 160)).save(folder / f"frame_{i:03d}.png")
    return str(folder)


def _weak_perspective_pixels(verts: np.ndarray, cam: np.ndarray, n: int) -> np.ndarray:
    s, tx, ty = cam
    return np.stack([n / 2 + s * (verts[:, 0] + tx) * n / 2, n / 2 - s * (verts[:, 1] + ty) * n / 2], 1)


@pytest.mark.parametrize("size", [(64, 64), (80, 64), (64, 90)])
def test_each_row_reproduces_its_weak_perspective_cam(tmp_path, size):
    model, spec = _flame_model(tmp_path)
    n = 64
    out = build_from_tracker(str(tmp_path / "ds"), _images(tmp_path, len(CAMS), size), _smirk_folder(tmp_path),
                             model, spec, TrackerCamera(resolution=n))
    ds = open_dataset(out, model=model)
    assert len(ds) == len(CAMS) and (ds.width, ds.height) == (n, n)
    # SMIRK's 4 FLAME coefficients fill the model's first 4; its eyelid channels are not FLAME's
    np.testing.assert_array_equal(ds.arrays["expr"][:, 4:], 0.0)
    for i, cam in enumerate(CAMS):
        verts = lbs.forward(model, ds.params(i)).vertices
        got = ds.camera(i).project(verts)[:, :2]
        want = _weak_perspective_pixels(verts, cam, n)
        err = np.abs(got - want).max()
        assert err < 0.15, f"row {i}: {err:.3f} px from the weak-perspective projection"
        assert np.ptp(want, axis=0).min() > 20                    # the head fills a good part of the image
    cams = [ds.camera(i) for i in range(len(ds))]
    for a, b in ((0, 1), (1, 2), (0, 2)):                      # rows differ as their cams do
        assert abs(cams[a].fx - cams[b].fx) > 1.0 and abs(cams[a].cx - cams[b].cx) > 0.5


def test_emoca_folder_cams_are_read(tmp_path):
    root = tmp_path / "emoca"
    for k, cam in enumerate(CAMS[:2]):
        d = root / f"{k:06d}"
        d.mkdir(parents=True)
        np.save(d / "exp.npy", np.zeros(50, np.float32))
        np.save(d / "pose.npy", np.zeros(6, np.float32))
        np.save(d / "cam.npy", cam)
    seq = read_emoca_folder(str(root))
    np.testing.assert_array_equal(seq.weak_perspective, CAMS[:2])
    assert seq[1:].weak_perspective.shape == (1, 3) and seq.resample(50.0).weak_perspective.shape == (3, 3)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3), np.float32), r"has shape \(2, 3\), expected \(3,\)"),
    (np.array([8.0, np.nan, 0.0], np.float32), "not finite with scale s > 0"),
    (np.array([0.0, 0.0, 0.0], np.float32), "not finite with scale s > 0"),
    (np.array([-2.0, 0.1, 0.0], np.float32), "not finite with scale s > 0"),
])
def test_bad_cam_is_one_error_naming_the_file(tmp_path, bad, message):
    root = _smirk_folder(tmp_path)
    path = os.path.join(root, "00001", "cam.npy")
    np.save(path, bad)
    with pytest.raises(InputFileError, match=message) as info:
        read_smirk_folder(root)
    assert path in str(info.value)


def test_stacked_cams_name_the_bad_frame(tmp_path):
    root = tmp_path / "stacked"
    root.mkdir()
    np.save(root / "exp.npy", np.zeros((3, 10), np.float32))
    np.save(root / "jawpose.npy", np.zeros((3, 3), np.float32))
    cams = CAMS.copy()
    cams[2, 0] = np.inf
    np.save(root / "cam.npy", cams)
    with pytest.raises(InputFileError, match="frame 2: weak-perspective camera") as info:
        read_smirk_folder(str(root))
    assert str(root / "cam.npy") in str(info.value)


def test_without_cams_every_row_shares_the_fixed_camera(tmp_path):
    model, spec = _flame_model(tmp_path)
    root = _smirk_folder(tmp_path)
    for k in range(len(CAMS)):
        os.remove(os.path.join(root, f"{k:05d}", "cam.npy"))
    assert read_smirk_folder(root).weak_perspective is None
    ds = open_dataset(build_from_tracker(str(tmp_path / "ds"), _images(tmp_path, len(CAMS), (40, 30)), root,
                                         model, spec, TrackerCamera(resolution=16)), model=model)
    first = ds.camera(0)
    for i in range(1, len(ds)):
        assert np.array_equal(ds.camera(i).world_to_cam, first.world_to_cam) and ds.camera(i).fx == first.fx
    assert np.isclose(first.position[2], 1.0)                   # TrackerCamera.distance from the head centre


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cam=hnp.arrays(st.sampled_from([np.dtype("<f4"), np.dtype("<f8")]),
                      hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                      elements=st.floats(allow_nan=True, allow_infinity=True, width=16)
                      | st.sampled_from([0.0, 1.0, 8.0, -1.0])))
def test_fuzzed_cam_files_read_or_raise_one_error(tmp_path, cam):
    root = tmp_path / "fuzz"
    d = root / "00000"
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "exp.npy", np.zeros(4, np.float32))
    np.save(d / "jawpose.npy", np.zeros(3, np.float32))
    with np.errstate(invalid="ignore", over="ignore"):
        np.save(d / "cam.npy", cam)
    try:
        seq = read_smirk_folder(str(root))
    except InputFileError as exc:
        assert str(d / "cam.npy") in str(exc)
        return
    row = seq.weak_perspective[0]
    assert seq.weak_perspective.shape == (1, 3) and np.isfinite(row).all() and row[0] > 0
