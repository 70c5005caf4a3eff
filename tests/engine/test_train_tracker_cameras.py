"""Dataset builder from multi-view NeRF-style exports (VHAP / GaussianAvatars): one row per image, each
with its own camera. A synthetic export is rendered here from a built-in identity on the FLAME-sized
stand-in head model with known OpenGL cameras, non-square images and off-centre principal points."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.__main__ import main as engine_main
from engine.errors import InputFileError
from engine.head_model import lbs, load_head_model
from engine.head_model.storage import model_to_arrays, save_npz
from engine.raster.camera import Camera, look_at
from engine.train.dataset import SPLIT_HELDOUT, SPLIT_TRAIN, open_dataset
from engine.train.nerf_export import build_from_export, crop_camera, read_export
from tests.engine.synthetic_head import make_synthetic_head

SIZE = (96, 80)                   # W x H of the export's images
BACKGROUND = (0.5, 0.5, 0.5)
OPENGL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def _flame_model(folder):
    model = dataclasses.replace(make_synthetic_head(), expr_space="flame")
    path = os.path.join(folder, "flame_like.npz")
    save_npz(path, model_to_arrays(model))
    return load_head_model(path), path


def _camera(c: int) -> Camera:
    """Camera c of the rig: OpenCV world_to_cam, non-square image, off-centre principal point."""
    yaw, pitch, d = -0.45 + 0.45 * c, 0.08 * (c - 1), 0.55
    eye = [d * np.sin(yaw) * np.cos(pitch), d * np.sin(pitch), d * np.cos(yaw) * np.cos(pitch)]
    w2c = look_at(eye, [0.005, -0.01, 0.02], (0.0, 1.0, 0.0))
    return Camera(w2c, 150.0 + 9 * c, 153.0 + 7 * c, 52.3 - 2.5 * c, 37.1 + 1.5 * c, *SIZE)


def _step_arrays(step: int, n_expr: int) -> dict:
    rng = np.random.default_rng(100 + step)
    return {"expr": rng.normal(0, 0.4, (1, n_expr)), "rotation": rng.normal(0, 0.08, (1, 3)),
            "neck_pose": rng.normal(0, 0.03, (1, 3)), "jaw_pose": np.array([[0.06 * step, 0.0, 0.0]]),
            "eyes_pose": rng.normal(0, 0.05, (1, 6)), "translation": np.array([[0.01 * step, -0.008, 0.015]])}


def _head_params(model, shape, arrays):
    from engine.head_model.model import HeadParams

    f = {k: np.asarray(v, np.float32)[0] for k, v in arrays.items()}
    return HeadParams(np.asarray(shape, np.float32), f["expr"], f["rotation"], f["neck_pose"], f["jaw_pose"],
                      f["eyes_pose"].reshape(2, 3), f["translation"])


def _frame(step: int, cam: Camera, c: int) -> dict:
    return {"file_path": f"images/{step:05d}_{c:02d}.png", "transform_matrix": (np.linalg.inv(cam.world_to_cam)
            @ OPENGL_FLIP).tolist(), "timestep_index": step, "camera_index": c,
            "flame_param_path": f"flame_param/{step:05d}.npz",
            "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy}


def write_export(root, model, identity=None, steps=(0, 1, 2), cams=2, val_steps=(2,)) -> dict:
    """A VHAP-style export in ``root``: rendered views of ``identity`` (or flat images without one)."""
    from engine.raster import render

    os.makedirs(os.path.join(root, "flame_param"))
    os.makedirs(os.path.join(root, "images"))
    shape = identity.neutral_params().shape if identity is not None else np.zeros(model.n_shape, np.float32)
    np.savez(os.path.join(root, "canonical_flame_param.npz"), shape=shape)
    per_step, splits = {}, {"train": [], "val": []}
    for s in steps:
        per_step[s] = _step_arrays(s, model.n_expr)
        np.savez(os.path.join(root, "flame_param", f"{s:05d}.npz"), **per_step[s])
        for c in range(cams):
            cam = _camera(c)
            if identity is not None:
                rgba = render(identity.pose(_head_params(model, shape, per_step[s])), cam, *SIZE, BACKGROUND,
                              backend="cpu").rgba
                rgb8 = (np.clip(rgba[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)
            else:
                rgb8 = np.full((SIZE[1], SIZE[0], 3), (20 * s, 40 * c, 90), np.uint8)
            Image.fromarray(rgb8).save(os.path.join(root, "images", f"{s:05d}_{c:02d}.png"))
            splits["val" if s in val_steps else "train"].append(_frame(s, cam, c))
    for name, frames in splits.items():
        with open(os.path.join(root, f"transforms_{name}.json"), "w") as fh:
            json.dump({"w": SIZE[0], "h": SIZE[1], "fps": 25, "frames": frames}, fh)
    with open(os.path.join(root, "transforms.json"), "w") as fh:  # VHAP's union of the splits: not read
        json.dump({"w": SIZE[0], "h": SIZE[1], "frames": splits["train"] + splits["val"]}, fh)
    return {"shape": shape, "per_step": per_step}


def test_rendered_export_round_trips(tmp_path):
    from engine.avatar.builtin import BuiltinSamplerConfig, BuiltinSource
    from engine.raster import render

    model, spec = _flame_model(str(tmp_path))
    identity = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=2048)).sample(3)
    root = str(tmp_path / "export")
    known = write_export(root, model, identity)
    res = 64
    ds = open_dataset(build_from_export(str(tmp_path / "ds"), root, model, spec, res, heldout_splits=("val",)),
                      model=model)
    assert len(ds) == 6                                         # 3 timesteps x 2 cameras, transforms.json skipped
    np.testing.assert_array_equal(ds.arrays["split"], [SPLIT_TRAIN] * 4 + [SPLIT_HELDOUT] * 2)
    side = min(SIZE)
    x0, y0, s = (SIZE[0] - side) // 2, (SIZE[1] - side) // 2, res / side
    for i in range(len(ds)):
        step, c = divmod(i, 2)                                  # rows sorted by timestep, then camera
        want = _head_params(model, known["shape"], known["per_step"][step])
        got = ds.params(i)
        for name in ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation"):
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), atol=1e-6, err_msg=name)
        verts = lbs.forward(model, got).vertices
        original = _camera(c).project(verts)[:, :2]
        expected = np.stack([(original[:, 0] - x0) * s, (original[:, 1] - y0) * s], 1)
        err = np.abs(ds.camera(i).project(verts)[:, :2] - expected).max()
        assert err < 0.5, f"row {i}: vertices land {err:.3f} px away from the export's projection"
        # the cropped, resized pixels agree with a render through the row's camera
        again = render(identity.pose(got), ds.camera(i), res, res, BACKGROUND, backend="cpu").rgba[..., :3]
        image = ds[i].image.transpose(1, 2, 0)
        other = ds[i ^ 1].image.transpose(1, 2, 0)              # same timestep, the other camera
        assert np.abs(image - again).mean() < 0.5 * np.abs(other - again).mean()
        assert np.abs(image - again).mean() < 0.03
    for step in range(3):                                       # each image has its own camera
        a, b = ds.camera(2 * step), ds.camera(2 * step + 1)
        assert np.abs(a.world_to_cam - b.world_to_cam).max() > 0.05 and abs(a.cx - b.cx) > 1.0


def test_read_export_converts_opengl_cameras_and_intrinsics(tmp_path):
    model, _ = _flame_model(str(tmp_path))
    root = str(tmp_path / "export")
    write_export(root, model, steps=(4, 7), cams=3, val_steps=())
    export = read_export(root)
    assert export.steps == (4, 7) and len(export.views) == 6
    for i, view in enumerate(export.views):
        cam = _camera(i % 3)
        np.testing.assert_allclose(view.world_to_cam, cam.world_to_cam, atol=1e-9)
        assert (view.fx, view.fy, view.cx, view.cy) == pytest.approx((cam.fx, cam.fy, cam.cx, cam.cy))
        cropped = crop_camera(view, 40)                          # 96x80 -> crop x 8..88 -> 40 px: s = 0.5
        assert (cropped.fx, cropped.cx, cropped.cy) == pytest.approx((cam.fx / 2, (cam.cx - 8) / 2, cam.cy / 2))


def test_top_level_field_of_view_and_rescaled_images(tmp_path):
    model, _ = _flame_model(str(tmp_path))
    root = str(tmp_path / "export")
    write_export(root, model, steps=(0,), cams=1, val_steps=())
    doc = json.load(open(os.path.join(root, "transforms_train.json")))
    for key in ("fl_x", "fl_y", "cx", "cy"):
        del doc["frames"][0][key]
    doc.update(camera_angle_x=0.6, w=2 * SIZE[0], h=2 * SIZE[1])  # intrinsics given for a 2x larger image
    json.dump(doc, open(os.path.join(root, "transforms_train.json"), "w"))
    (view,) = read_export(root).views
    f = 0.5 * 2 * SIZE[0] / np.tan(0.3) / 2
    assert (view.fx, view.fy, view.cx, view.cy) == pytest.approx((f, f, SIZE[0] / 2, SIZE[1] / 2))


def _edit(root, name="transforms_train.json", frame=0, **changes):
    path = os.path.join(root, name)
    doc = json.load(open(path))
    for key, value in changes.items():
        if value is None:
            doc["frames"][frame].pop(key, None)
        else:
            doc["frames"][frame][key] = value
    json.dump(doc, open(path, "w"))
    return path


def _skewed(root):
    m = np.array(json.load(open(os.path.join(root, "transforms_train.json")))["frames"][0]["transform_matrix"])
    m[:3, 0] *= 2.0
    return m.tolist()


BAD = {
    "no matrix": (lambda r: _edit(r, transform_matrix=None), "transforms_train.json", "no 'transform_matrix'"),
    "no image key": (lambda r: _edit(r, file_path=None), "transforms_train.json", "no 'file_path'"),
    "image gone": (lambda r: os.remove(os.path.join(r, "images", "00000_01.png")), "00000_01.png", "missing"),
    "non-rigid": (lambda r: _edit(r, transform_matrix=_skewed(r)), "transforms_train.json", "not a rigid"),
    "NaN matrix": (lambda r: _edit(r, transform_matrix=[[float("nan")] * 4] * 4), "transforms_train.json", "NaN"),
    "NaN focal": (lambda r: _edit(r, fl_x=float("nan")), "transforms_train.json", "'fl_x'"),
    "no focal": (lambda r: _edit(r, fl_x=None), "transforms_train.json", "no focal length"),
    "NaN params": (lambda r: np.savez(os.path.join(r, "flame_param", "00001.npz"),
                                      **{**_step_arrays(1, 6), "expr": np.full((1, 6), np.nan)}),
                   "00001.npz", "NaN"),
    "two frames in a timestep file": (lambda r: np.savez(os.path.join(r, "flame_param", "00001.npz"),
                                                         **{k: np.repeat(v, 2, 0) for k, v in _step_arrays(1, 6).items()}),
                                      "00001.npz", "must hold exactly one"),
    "timestep names two files": (lambda r: _edit(r, frame=1, flame_param_path="flame_param/00001.npz"),
                                 "transforms_train.json", "timestep 0 names"),
    "image leaves folder": (lambda r: _edit(r, file_path="../../secret.png"), "transforms_train.json",
                            "leaves the export folder"),
    "params leave folder": (lambda r: _edit(r, flame_param_path="../flame_param/00000.npz"), "transforms_train.json",
                            "leaves the export folder"),
    "absolute image path": (lambda r: _edit(r, file_path=os.path.abspath(os.path.join(r, "images", "00000_00.png"))),
                            "transforms_train.json", "leaves the export folder"),
    "other aspect": (lambda r: _edit(r, w=50, h=50), "transforms_train.json", "another aspect ratio"),
    "no frames": (lambda r: json.dump({"w": 3}, open(os.path.join(r, "transforms_val.json"), "w")),
                  "transforms_val.json", "no 'frames' list"),
    "not an image": (lambda r: open(os.path.join(r, "images", "00001_00.png"), "wb").write(b"nope"),
                     "00001_00.png", "not a readable image"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_exports_are_refused_naming_the_file(tmp_path, case):
    model, spec = _flame_model(str(tmp_path))
    root = str(tmp_path / "export")
    write_export(root, model)
    spoil, names, words = BAD[case]
    spoil(root)
    with pytest.raises(InputFileError) as info:
        build_from_export(str(tmp_path / "ds"), root, model, spec, 16)
    assert names in info.value.path and words in info.value.problem, str(info.value)
    assert not os.path.exists(tmp_path / "ds" / "dataset.json")


def test_cli_builds_from_transforms_and_points_params_users_to_it(tmp_path, capsys):
    model, spec = _flame_model(str(tmp_path))
    root = str(tmp_path / "export")
    write_export(root, model)
    out = str(tmp_path / "ds")
    assert engine_main(["dataset", "from-tracker", out, "--transforms", root, "--model", spec,
                        "--resolution", "16", "--heldout-splits", "val"]) == 0
    ds = open_dataset(out)
    assert len(ds) == 6 and len(ds.indices(SPLIT_HELDOUT)) == 2 and (ds.width, ds.height) == (16, 16)
    capsys.readouterr()
    assert engine_main(["dataset", "from-tracker", str(tmp_path / "x"), "--images", os.path.join(root, "images"),
                        "--params", root, "--model", spec]) == 1
    assert "--transforms" in capsys.readouterr().err
    os.remove(os.path.join(root, "transforms_train.json"))
    with pytest.raises(InputFileError, match="every frame would be held out"):
        build_from_export(str(tmp_path / "y"), root, model, spec, 16, heldout_splits=("val",))


# ------------------------------------------------------------------ fuzzing the transforms reader
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(),
                       st.text(max_size=12), st.sampled_from(["../x.png", "/etc/passwd", "images/00000_00",
                                                               "flame_param/00001.npz", "\x00", ""]))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=20)
_KEYS = ["file_path", "transform_matrix", "timestep_index", "camera_index", "flame_param_path", "fl_x", "fl_y",
         "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y"]
_edits = st.lists(st.tuples(st.integers(-1, 3), st.sampled_from(_KEYS + ["frames"]),
                            st.one_of(_json, st.just("<delete>"), st.floats(-2, 2).map(lambda v: [[v] * 4] * 4),
                                      st.lists(st.lists(st.floats(-3, 3), min_size=4, max_size=4), min_size=4,
                                               max_size=4))),
                  max_size=6)


@pytest.fixture(scope="module")
def fuzz_export(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fuzz") / "export")
    model, _ = _flame_model(str(tmp_path_factory.mktemp("model")))
    write_export(root, model, val_steps=())
    os.remove(os.path.join(root, "transforms_val.json"))
    return root, json.load(open(os.path.join(root, "transforms_train.json")))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(edits=_edits)
def test_fuzz_transforms_reader(fuzz_export, edits):
    root, base = fuzz_export
    doc = json.loads(json.dumps(base))
    for frame, key, value in edits:
        target = doc if frame < 0 or key == "frames" else (doc["frames"][frame % len(doc["frames"])]
                                                          if isinstance(doc.get("frames"), list) and doc["frames"]
                                                          and isinstance(doc["frames"][frame % len(doc["frames"])], dict)
                                                          else doc)
        if value == "<delete>":
            target.pop(key, None)
        else:
            target[key] = value
    with open(os.path.join(root, "transforms_train.json"), "w") as fh:
        json.dump(doc, fh)
    try:
        export = read_export(root)
    except InputFileError as exc:
        assert exc.path and exc.problem
        return
    assert export.views and len(export.steps) == len(export.seq.expr)
    for view in export.views:
        assert 0 <= view.row < len(export.steps) and os.path.isfile(view.image_path)
        rot = view.world_to_cam[:3, :3]
        assert np.isfinite(view.world_to_cam).all() and np.abs(rot @ rot.T - np.eye(3)).max() < 1e-2
        cam = crop_camera(view, 32)
        values = np.array([cam.fx, cam.fy, cam.cx, cam.cy], np.float32)
        assert np.isfinite(values).all() and cam.fx > 0 and cam.fy > 0
