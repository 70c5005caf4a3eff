"""Dataset builder from VHAP / GaussianAvatars NeRF-style exports: one row per image, each with ITS camera.

An export folder holds ``transforms.json`` and/or ``transforms_{train,val,test}.json`` (read with
the animation importer's parser, ``engine.animation.formats.nerf_folder``), the images and one
FLAME parameter file per timestep. Every ``frames[]`` entry is one image:

* ``file_path``: the image, relative to the JSON's folder (``.png`` is tried when the name has no
  extension); it must stay inside the export folder.
* ``transform_matrix``: camera-to-world [4, 4] in OpenGL/Blender camera axes (x right, y up,
  z backward); rigid (a rotation and a translation). The dataset stores its inverse in OpenCV
  axes (x right, y down, z forward): ``world_to_cam = inv(c2w @ diag(1, -1, -1, 1))``.
* intrinsics, per frame or at the JSON's top level (per frame wins): ``fl_x``/``fl_y`` or
  ``camera_angle_x``/``camera_angle_y`` (radians, full angle), ``cx``/``cy`` (default: the image
  centre), ``w``/``h`` (the size the intrinsics are given for; when the image file has another
  size of the same aspect ratio the intrinsics are scaled to it). Pixel coordinates are
  continuous, pixel (0, 0) covering [0, 1) x [0, 1) (the NeRF and ``engine.raster`` convention).
* ``timestep_index`` and ``flame_param_path``: the per-timestep FLAME parameters (expression, jaw,
  neck, eyes, rotation and translation of that timestep; the identity shape is shared). FLAME's
  rotation/translation and the cameras live in one world frame, so the head parameters are
  written unchanged and each camera is the export's own.

Images are cropped to the centred square (``x0 = (W - side) // 2``, ``y0 = (H - side) // 2``,
side = min(W, H)) and resized to ``resolution``; with s = resolution / side the intrinsics become
``fx * s, fy * s, (cx - x0) * s, (cy - y0) * s``. An off-centre principal point stays off centre.

When any of ``transforms_{train,val,test}.json`` exists, a ``transforms.json`` beside them is not
read (VHAP writes it as their union). Frames of ``*_val`` / ``*_test`` files go to the held-out
split when ``heldout_splits`` names them, else to training. An image listed twice is one row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..animation.formats.nerf_folder import (ExportFrame, ExportListing, frame_timesteps, list_export,
                                             load_timestep_fields, transforms_files)
from ..animation.sequence import ParamSequence
from ..errors import GaussianHeadsError, InputFileError
from ..head_model.model import HeadModel
from ..raster.camera import Camera
from .dataset import SPLIT_HELDOUT, SPLIT_TRAIN, DatasetWriter
from .tracker import crop_intrinsics, square_image, tracked_head_params

SPLIT_FILES = ("transforms_train.json", "transforms_val.json", "transforms_test.json")
HELDOUT_NAMES = ("val", "test")
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
MAX_PIXELS = 1e7       # largest accepted |focal length| / |principal point|, pixels
MAX_METRES = 1e6       # largest accepted camera distance from the origin
MAX_IMAGE_SIDE = 65536


@dataclass(frozen=True)
class ExportView:
    """One image of an export with its camera, intrinsics in pixels of the image file."""

    image_path: str
    row: int                    # row of ``ExportData.seq`` (its timestep's parameters)
    split: str                  # "train", "val" or "test" (from the transforms file name)
    camera_index: int | None
    world_to_cam: np.ndarray    # [4, 4] float64, OpenCV axes
    fx: float
    fy: float
    cx: float
    cy: float
    width: int                  # the image file's size
    height: int


@dataclass(frozen=True)
class ExportData:
    """Every view of an export (sorted by timestep, then camera) and the per-timestep parameters."""

    folder: str
    views: tuple[ExportView, ...]
    steps: tuple[int, ...]      # the timestep of each row of ``seq``
    seq: ParamSequence          # one row per timestep (not interpolated), FLAME space


def export_files(folder: str) -> list[str]:
    """The transforms files to read: the split files when there are any, else every transforms*.json."""
    files = transforms_files(folder)
    split = [f for f in files if os.path.basename(f) in SPLIT_FILES]
    return split or files


def split_of(json_path: str) -> str:
    stem = os.path.splitext(os.path.basename(json_path))[0]
    return next((name for name in HELDOUT_NAMES if stem.endswith("_" + name)), "train")


def opencv_world_to_cam(c2w_opengl: np.ndarray) -> np.ndarray:
    """[4, 4] OpenCV world-to-camera of a rigid OpenGL camera-to-world [4, 4]."""
    c2w = np.asarray(c2w_opengl, np.float64) @ OPENGL_TO_OPENCV
    rot, t = c2w[:3, :3], c2w[:3, 3]
    w2c = np.eye(4)
    w2c[:3, :3] = rot.T
    w2c[:3, 3] = -rot.T @ t
    return w2c


def crop_camera(view: ExportView, resolution: int) -> Camera:
    """The view's camera on the centred square crop of its image, resized to resolution²."""
    return Camera(view.world_to_cam,
                  *crop_intrinsics(view.fx, view.fy, view.cx, view.cy, view.width, view.height, resolution),
                  resolution, resolution)


def _inside(folder: str, path: str) -> bool:
    root = os.path.abspath(folder)
    try:
        return os.path.commonpath([root, os.path.abspath(path)]) == root
    except ValueError:  # another drive (Windows)
        return False


def _c2w(frame: ExportFrame) -> np.ndarray:
    where, tag = frame.json_path, f"frame {frame.index}"
    if "transform_matrix" not in frame.entry:
        raise InputFileError(where, f"{tag} has no 'transform_matrix' (camera-to-world 4x4)")
    m = frame.entry["transform_matrix"]
    ok = isinstance(m, list) and len(m) == 4 and all(
        isinstance(r, list) and len(r) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        for r in m)
    if not ok:
        raise InputFileError(where, f"{tag}: 'transform_matrix' must be 4 rows of 4 numbers")
    try:
        c2w = np.array(m, np.float64)
    except OverflowError:
        raise InputFileError(where, f"{tag}: 'transform_matrix' holds a number too large for a float") from None
    if not np.isfinite(c2w).all():
        raise InputFileError(where, f"{tag}: 'transform_matrix' contains NaN or infinity")
    rot = c2w[:3, :3]
    rigid = (np.abs(c2w[3] - [0.0, 0.0, 0.0, 1.0]).max() < 1e-6 and np.abs(rot @ rot.T - np.eye(3)).max() < 1e-3
             and np.linalg.det(rot) > 0)
    if not rigid:
        raise InputFileError(where, f"{tag}: 'transform_matrix' is not a rigid camera-to-world transform "
                                    "(rotation and translation only, last row 0 0 0 1)")
    if np.abs(c2w[:3, 3]).max() > MAX_METRES:
        raise InputFileError(where, f"{tag}: the camera lies more than {MAX_METRES:g} m from the origin")
    return c2w


def _number(value, where: str, what: str, low: float, high: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputFileError(where, f"{what} must be a number, got {value!r}")
    try:
        x = float(value)
    except OverflowError:
        raise InputFileError(where, f"{what} is too large") from None
    if not (np.isfinite(x) and low < x < high):
        raise InputFileError(where, f"{what} is {x!r}, expected a finite number in ({low:g}, {high:g})")
    return x


def _image(frame: ExportFrame, folder: str) -> tuple[str, int, int]:
    """(path, width, height) of the frame's image, read from the file header."""
    from PIL import Image, UnidentifiedImageError

    where, tag = frame.json_path, f"frame {frame.index}"
    rel = frame.entry.get("file_path")
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise InputFileError(where, f"{tag} has no 'file_path' (the image, relative to the JSON's folder)")
    path = os.path.normpath(os.path.join(os.path.dirname(where), rel))
    if os.path.isabs(rel) or not _inside(folder, path):
        raise InputFileError(where, f"{tag}: 'file_path' {rel!r} leaves the export folder")
    if not os.path.isfile(path) and not os.path.splitext(path)[1] and os.path.isfile(path + ".png"):
        path += ".png"
    if not os.path.isfile(path):
        raise InputFileError(path, f"missing: {where} {tag} lists it as its image")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(path, f"not a readable image ({exc})") from None
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise InputFileError(path, f"is {width}x{height} pixels, beyond {MAX_IMAGE_SIDE} per side")
    return path, width, height


def _intrinsics(frame: ExportFrame, top: dict, width: int, height: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels of the width x height image file."""
    where = frame.json_path
    tag = f"frame {frame.index}"

    def get(key, low, high):
        value = frame.entry[key] if key in frame.entry else top.get(key)
        return None if value is None else _number(value, where, f"{tag}: '{key}'", low, high)

    w, h = get("w", 0, MAX_IMAGE_SIDE + 1), get("h", 0, MAX_IMAGE_SIDE + 1)
    w, h = w or float(width), h or float(height)
    if abs(w / h - width / height) > 0.01 * width / height:
        raise InputFileError(where, f"{tag}: the intrinsics are for a {w:g}x{h:g} image but "
                                    f"the image file is {width}x{height} (another aspect ratio)")
    fx, fy = get("fl_x", 0, MAX_PIXELS), get("fl_y", 0, MAX_PIXELS)
    if fx is None:
        angle = get("camera_angle_x", 1e-6, np.pi)
        if angle is None:
            raise InputFileError(where, f"{tag} has no focal length ('fl_x' or 'camera_angle_x', per frame or top level)")
        fx = 0.5 * w / np.tan(0.5 * angle)
    if fy is None:
        angle = get("camera_angle_y", 1e-6, np.pi)
        fy = fx if angle is None else 0.5 * h / np.tan(0.5 * angle)
    cx, cy = get("cx", -MAX_PIXELS, MAX_PIXELS), get("cy", -MAX_PIXELS, MAX_PIXELS)
    cx, cy = w / 2 if cx is None else cx, h / 2 if cy is None else cy
    sx, sy = width / w, height / h
    return fx * sx, fy * sy, cx * sx, cy * sy


def _camera_index(frame: ExportFrame) -> int | None:
    value = frame.entry.get("camera_index")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InputFileError(frame.json_path, f"frame {frame.index} has a non-integer 'camera_index' {value!r}")
    return value


def read_export(folder: str | os.PathLike) -> ExportData:
    """Every view of the export folder and its per-timestep parameters, validated (images: headers only).

    Raises InputFileError naming the file for every problem: a missing key, a missing image, a
    non-rigid or non-finite camera, bad intrinsics, paths leaving the folder, per-timestep files
    that disagree with the timesteps (see ``nerf_folder.frame_timesteps``/``load_timestep_fields``).
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputFileError(folder, "not a NeRF-style export folder (it needs transforms*.json)")
    listing: ExportListing = list_export(folder, export_files(folder) or None)
    for f in listing.frames:
        if os.path.isabs(f.entry["flame_param_path"]) or not _inside(folder, f.param_path):
            raise InputFileError(f.json_path, f"frame {f.index}: 'flame_param_path' "
                                              f"{f.entry['flame_param_path']!r} leaves the export folder")
    by_step, frame_steps = frame_timesteps(listing)
    steps, fields = load_timestep_fields(listing, by_step)
    try:
        seq = ParamSequence(fps=listing.fps or 25.0, space="flame", source_format="nerf_export", **fields)
    except GaussianHeadsError as exc:
        raise InputFileError(folder, str(exc)) from None
    row_of = {s: i for i, s in enumerate(steps)}
    views: dict[str, ExportView] = {}
    for frame, step in zip(listing.frames, frame_steps):
        path, width, height = _image(frame, folder)
        w2c = opencv_world_to_cam(_c2w(frame))
        fx, fy, cx, cy = _intrinsics(frame, listing.documents[frame.json_path], width, height)
        view = ExportView(path, row_of[step], split_of(frame.json_path), _camera_index(frame), w2c,
                          fx, fy, cx, cy, width, height)
        known = views.get(path)
        if known is None:
            views[path] = view
        elif known.row != view.row or np.abs(known.world_to_cam - w2c).max() > 1e-6:
            raise InputFileError(frame.json_path, f"frame {frame.index} lists {path} again with another "
                                                  "timestep or camera")
        elif view.split == "train":
            views[path] = view
    ordered = sorted(views.values(), key=lambda v: (v.row, -1 if v.camera_index is None else v.camera_index))
    return ExportData(folder, tuple(ordered), tuple(steps), seq)


def build_from_export(out: str | os.PathLike, folder: str | os.PathLike, model: HeadModel, model_spec: str,
                      resolution: int = 128, heldout_splits: tuple[str, ...] = (), identity: int = 0,
                      progress=None) -> str:
    """Write a dataset with one row per image of the export (see the module docstring); returns ``out``.

    heldout_splits: any of "val", "test": their frames go to the held-out split (default: all train).
    progress(i, total): optional callback after each image.
    """
    unknown = set(heldout_splits) - set(HELDOUT_NAMES)
    if unknown:
        raise GaussianHeadsError(f"held-out splits must be among {HELDOUT_NAMES}, got {sorted(unknown)}")
    if not 8 <= int(resolution) <= 4096:
        raise GaussianHeadsError("--resolution must lie in 8..4096")
    export = read_export(folder)
    if all(v.split in heldout_splits for v in export.views):
        raise InputFileError(os.fspath(folder), "every frame would be held out: the dataset needs training images")
    per_step = tracked_head_params(export.seq, model, os.fspath(folder))
    res = int(resolution)
    cameras = {v.camera_index for v in export.views}
    writer = DatasetWriter(out, model, model_spec, res, res,
                           f"tracked multi-view: {len(export.views)} images, {len(export.steps)} timesteps, "
                           f"{len(cameras)} cameras from the NeRF-style export {os.path.abspath(folder)}")
    for i, view in enumerate(export.views):
        rgb8, _ = square_image(view.image_path, res)
        split = SPLIT_HELDOUT if view.split in heldout_splits else SPLIT_TRAIN
        writer.add(rgb8, per_step[view.row], crop_camera(view, res), identity, split)
        if progress:
            progress(i + 1, len(export.views))
    return writer.close()
