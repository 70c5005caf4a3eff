"""Dataset builder from what users already have: an image folder + a face tracker's output.

``build_from_tracker(out, images_dir, params_path, model, model_spec, TrackerCamera(...))``:
the tracker output is anything ``engine.animation.formats.read_any`` reads (VHAP /
GaussianAvatars ``flame_param.npz``, SMIRK and EMOCA per-frame folders, bare FLAME arrays);
frame k belongs to the k-th image of the folder in name order (PNG/JPEG), and the counts must
match. These trackers fit a FLAME head in front of a fixed or weak-perspective camera, so the
camera here is one pinhole camera on the model's +Z axis (``fov`` degrees vertical, ``distance``
metres from HEAD_CENTRE); the tracked head rotation and translation place the head in front of it.
Images are centre-cropped to a square and resized to ``resolution``.

Expressions: FLAME-space tracks need a FLAME head model (components beyond the model's are
dropped, missing ones are zero); ARKit-named tracks need an ARKit model and are matched by name.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError, InputFileError
from ..head_model.model import HeadModel, HeadParams
from ..raster.camera import Camera, look_at
from .dataset import SPLIT_TRAIN, DatasetWriter
from .synthetic import HEAD_CENTRE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class TrackerCamera:
    resolution: int = 128
    fov: float = 14.0          # vertical field of view, degrees
    distance: float = 1.0      # metres from the head centre along +Z


def list_images(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise InputFileError(folder, "not an image folder")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise InputFileError(folder, "holds no .png or .jpg images")
    return [os.path.join(folder, n) for n in names]


def _expressions(seq, model: HeadModel, where: str) -> np.ndarray:
    """[T, model.n_expr] expressions of the sequence in the model's space."""
    t = seq.expr.shape[0]
    out = np.zeros((t, model.n_expr), np.float32)
    if seq.space == "flame":
        if model.expr_space != "flame":
            raise InputFileError(where, f"is tracked in FLAME's expression space; head model '{model.name}' "
                                        "speaks ARKit (pass a FLAME model with --model)")
        m = min(model.n_expr, seq.expr.shape[1])
        out[:, :m] = seq.expr[:, :m]
        return out
    names = list(model.expr_names)
    hits = [(i, names.index(n)) for i, n in enumerate(seq.expr_names) if n in names]
    if not hits:
        raise InputFileError(where, f"none of its expression channels is one of head model '{model.name}''s")
    for i, j in hits:
        out[:, j] = seq.expr[:, i]
    return out


def _square(path: str, resolution: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
            return np.asarray(im.crop(box).resize((resolution, resolution), Image.LANCZOS), np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(path, f"not a readable image ({exc})") from None


def build_from_tracker(out: str, images_dir: str, params_path: str, model: HeadModel, model_spec: str,
                       camera: TrackerCamera = TrackerCamera(), identity: int = 0) -> str:
    from ..animation.formats import read_any

    images = list_images(images_dir)
    seq = read_any(params_path)
    frames = seq.expr.shape[0]
    if frames != len(images):
        raise InputFileError(params_path, f"has {frames} tracked frames but {images_dir} holds {len(images)} images "
                                          "(one frame per image, in name order)")
    expr = _expressions(seq, model, params_path)
    shape = np.zeros(model.n_shape, np.float32)
    if seq.shape is not None:
        m = min(model.n_shape, len(seq.shape))
        shape[:m] = np.asarray(seq.shape, np.float32)[:m]
    res = int(camera.resolution)
    f = 0.5 * res / np.tan(np.radians(camera.fov) / 2)
    eye = HEAD_CENTRE + np.array([0.0, 0.0, camera.distance])
    cam = Camera(look_at(eye, HEAD_CENTRE, (0.0, 1.0, 0.0)), f, f, res / 2, res / 2, res, res)
    writer = DatasetWriter(out, model, model_spec, res, res,
                           f"tracked: {len(images)} images from {os.path.abspath(images_dir)} "
                           f"({seq.source_format or 'tracker'} parameters {os.path.abspath(params_path)})")
    for k, path in enumerate(images):
        params = HeadParams(shape, expr[k], seq.global_rot[k], seq.neck[k], seq.jaw[k], seq.eyes[k],
                            seq.translation[k])
        for name in ("expr", "global_rot", "neck", "jaw", "eyes", "translation"):
            if not np.isfinite(getattr(params, name)).all():
                raise InputFileError(params_path, f"frame {k}: {name} contains NaN or infinity")
        writer.add(_square(path, res), params, cam, identity, SPLIT_TRAIN)
    return writer.close()


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out")
    parser.add_argument("--images", required=True, help="folder of frames (PNG/JPEG, name order = frame order)")
    parser.add_argument("--params", required=True, help="tracker output (flame_param.npz, SMIRK/EMOCA folder, …)")
    parser.add_argument("--model", default="open", help="head model the parameters belong to (a FLAME file for FLAME trackers)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--fov", type=float, default=14.0, help="vertical field of view, degrees")
    parser.add_argument("--distance", type=float, default=1.0, help="camera distance, metres")
    parser.add_argument("--identity", type=int, default=0, help="subject number written for every image")


def run_tracker_builder(args: argparse.Namespace) -> int:
    from ..head_model import load_head_model

    if not 8 <= args.resolution <= 4096:
        raise GaussianHeadsError("--resolution must lie in 8..4096")
    model = load_head_model(args.model)
    print(build_from_tracker(args.out, args.images, args.params, model, args.model,
                             TrackerCamera(args.resolution, args.fov, args.distance), args.identity))
    return 0
