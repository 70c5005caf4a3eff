"""Dataset builder from what users already have: an image folder + a face tracker's output.

``build_from_tracker(out, images_dir, params_path, model, model_spec, TrackerCamera(...))``:
the tracker output is anything ``engine.animation.formats.read_any`` reads (VHAP /
GaussianAvatars ``flame_param.npz``, SMIRK and EMOCA per-frame folders, bare FLAME arrays);
frame k belongs to the k-th image of the folder in name order (PNG/JPEG), and the counts must
match. These trackers fit a FLAME head in front of a fixed or weak-perspective camera, so the
camera here is one pinhole camera on the model's +Z axis (``fov`` degrees vertical, ``distance``
metres from HEAD_CENTRE); the tracked head rotation and translation place the head in front of it.
Images are centre-cropped to a square and resized to ``resolution``.

DECA-family trackers (SMIRK, EMOCA) also solve a weak-perspective camera per image, cam = (s, tx, ty):
image NDC = s * (x + tx, y + ty) of the posed FLAME vertices (y up), [-1, 1] spanning the square
crop the tracker saw. When the sequence carries them (``ParamSequence.weak_perspective``) every
image gets its own pinhole camera reproducing that projection at the head: on the model's +Z axis
``weak_perspective_distance`` metres from the origin, fx = fy = D * s * N / 2,
cx = N / 2 + s * tx * N / 2, cy = N / 2 - s * ty * N / 2 for an N-pixel square. The images must be
those crops (SMIRK's 224 x 224 face crops); a non-square image is centre-cropped like any other,
the NDC square being its centred shorter side (PyTorch3D's convention for non-square images).

NeRF-style multi-view exports, which carry a camera per image, are built by
``nerf_export.build_from_export`` instead (``--transforms FOLDER``); handing one to ``--params``
is refused with a pointer to it.

Expressions: FLAME-space tracks need a FLAME head model (components beyond the model's are
dropped, missing ones are zero); ARKit-named tracks need an ARKit model and are matched by name.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np

from ..animation.names import flame_index
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
    weak_perspective_distance: float = 20.0  # metres: camera distance standing in for a weak-perspective cam


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
        index = [flame_index(n) for n in seq.expr_names]
        if all(i is None for i in index):                     # unnamed coefficients: by position
            index = list(range(seq.expr.shape[1]))
        for col, i in enumerate(index):                       # SMIRK's eyeBlink* channels are not FLAME's
            if i is not None and i < model.n_expr:
                out[:, i] = seq.expr[:, col]
        return out
    names = list(model.expr_names)
    hits = [(i, names.index(n)) for i, n in enumerate(seq.expr_names) if n in names]
    if not hits:
        raise InputFileError(where, f"none of its expression channels is one of head model '{model.name}''s")
    for i, j in hits:
        out[:, j] = seq.expr[:, i]
    return out


def square_crop_box(width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the centred square crop of a width x height image (integer pixels)."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side


def crop_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                    resolution: int) -> tuple[float, float, float, float]:
    """Pixel intrinsics of a width x height image -> those of its centred square crop resized to resolution²."""
    x0, y0, side = square_crop_box(width, height)
    zoom = resolution / side
    return fx * zoom, fy * zoom, (cx - x0) * zoom, (cy - y0) * zoom


def square_image(path: str, resolution: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(rgb8 [resolution, resolution, 3] uint8 of the centred square crop, resized; (W, H) of the file)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            x0, y0, side = square_crop_box(w, h)
            box = (x0, y0, x0 + side, y0 + side)
            return np.asarray(im.crop(box).resize((resolution, resolution), Image.LANCZOS), np.uint8), (w, h)
    except FileNotFoundError:
        raise InputFileError(path, "missing: no such image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(path, f"not a readable image ({exc})") from None


def weak_perspective_camera(cam: np.ndarray, image_size: tuple[int, int], resolution: int,
                            distance: float) -> Camera:
    """Pinhole camera [resolution²] that reproduces the weak-perspective ``cam [3]`` (s, tx, ty) at the head.

    ``image_size`` (W, H) is the tracked image; NDC [-1, 1] spans its centred shorter side, which is
    exactly what ``square_image`` keeps. Pixel = (N/2 + s (x + tx) N/2, N/2 - s (y + ty) N/2) for a
    point at depth 0; a point at depth z lands D / (D - z) ≈ 1 + z/D times as far from (cx, cy).
    """
    s, tx, ty = (float(v) for v in cam)
    w, h = image_size
    half = min(w, h) / 2                             # source pixels per NDC unit
    f = distance * s * half
    eye = np.array([0.0, 0.0, distance])
    return Camera(look_at(eye, np.zeros(3), (0.0, 1.0, 0.0)),
                  *crop_intrinsics(f, f, w / 2 + s * tx * half, h / 2 - s * ty * half, w, h, resolution),
                  resolution, resolution, near=0.1 * distance, far=10.0 * distance)


def tracked_head_params(seq, model: HeadModel, where: str) -> list[HeadParams]:
    """One HeadParams per frame of ``seq`` (a ParamSequence) for ``model``; ``where`` names the source.

    Shape is shared (truncated or zero-padded to the model's); expressions as ``_expressions``.
    """
    expr = _expressions(seq, model, where)
    shape = np.zeros(model.n_shape, np.float32)
    if seq.shape is not None:
        m = min(model.n_shape, len(seq.shape))
        shape[:m] = np.asarray(seq.shape, np.float32)[:m]
    if not np.isfinite(shape).all():
        raise InputFileError(where, "shape contains NaN or infinity")
    out = []
    for k in range(expr.shape[0]):
        params = HeadParams(shape, expr[k], seq.global_rot[k], seq.neck[k], seq.jaw[k], seq.eyes[k],
                            seq.translation[k])
        for name in ("expr", "global_rot", "neck", "jaw", "eyes", "translation"):
            if not np.isfinite(getattr(params, name)).all():
                raise InputFileError(where, f"frame {k}: {name} contains NaN or infinity")
        out.append(params)
    return out


def build_from_tracker(out: str, images_dir: str, params_path: str, model: HeadModel, model_spec: str,
                       camera: TrackerCamera = TrackerCamera(), identity: int = 0) -> str:
    from ..animation.formats import read_any

    images = list_images(images_dir)
    seq = read_any(params_path)
    frames = seq.expr.shape[0]
    if frames != len(images):
        raise InputFileError(params_path, f"has {frames} tracked frames but {images_dir} holds {len(images)} images "
                                          "(one frame per image, in name order)")
    per_frame = tracked_head_params(seq, model, params_path)
    res = int(camera.resolution)
    f = 0.5 * res / np.tan(np.radians(camera.fov) / 2)
    eye = HEAD_CENTRE + np.array([0.0, 0.0, camera.distance])
    cam = Camera(look_at(eye, HEAD_CENTRE, (0.0, 1.0, 0.0)), f, f, res / 2, res / 2, res, res)
    cams = seq.weak_perspective
    wp_distance = float(camera.weak_perspective_distance)
    if cams is not None and not (np.isfinite(wp_distance) and wp_distance > 0):
        raise GaussianHeadsError("the weak-perspective camera distance must be a positive number of metres")
    how = "a weak-perspective camera per image" if cams is not None else "one camera"
    writer = DatasetWriter(out, model, model_spec, res, res,
                           f"tracked: {len(images)} images from {os.path.abspath(images_dir)} "
                           f"({seq.source_format or 'tracker'} parameters {os.path.abspath(params_path)}, {how})")
    for k, (params, path) in enumerate(zip(per_frame, images)):
        rgb8, size = square_image(path, res)
        if cams is not None:
            cam = weak_perspective_camera(cams[k], size, res, wp_distance)
        writer.add(rgb8, params, cam, identity, SPLIT_TRAIN)
    return writer.close()


def add_tracker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out")
    parser.add_argument("--transforms", metavar="FOLDER",
                        help="a VHAP/GaussianAvatars NeRF-style export (transforms*.json): every image with its "
                             "own camera (replaces --images/--params)")
    parser.add_argument("--heldout-splits", nargs="*", default=[], choices=("val", "test"),
                        help="with --transforms: the transforms_val/_test frames to hold out (default: all train)")
    parser.add_argument("--images", help="folder of frames (PNG/JPEG, name order = frame order)")
    parser.add_argument("--params", help="tracker output (flame_param.npz, SMIRK/EMOCA folder, …)")
    parser.add_argument("--model", default="open", help="head model the parameters belong to (a FLAME file for FLAME trackers)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--fov", type=float, default=14.0, help="vertical field of view, degrees (single camera)")
    parser.add_argument("--distance", type=float, default=1.0, help="camera distance, metres (single camera)")
    parser.add_argument("--weak-perspective-distance", type=float, default=20.0,
                        help="camera distance, metres, standing in for SMIRK/EMOCA weak-perspective cams (cam.npy)")
    parser.add_argument("--identity", type=int, default=0, help="subject number written for every image")


def run_tracker_builder(args: argparse.Namespace) -> int:
    from ..animation.formats import detect_format
    from ..head_model import load_head_model

    if not 8 <= args.resolution <= 4096:
        raise GaussianHeadsError("--resolution must lie in 8..4096")
    if args.transforms:
        if args.images or args.params:
            raise GaussianHeadsError("--transforms replaces --images and --params (the export lists both)")
        from .nerf_export import build_from_export

        model = load_head_model(args.model)
        print(build_from_export(args.out, args.transforms, model, args.model, args.resolution,
                                tuple(args.heldout_splits), args.identity))
        return 0
    if not (args.images and args.params):
        raise GaussianHeadsError("from-tracker needs --images and --params (or --transforms FOLDER)")
    if detect_format(args.params) == "nerf_export":
        raise GaussianHeadsError(f"{args.params} is a NeRF-style export with a camera per image: "
                                 f"build from it with --transforms {args.params} (without --images/--params)")
    model = load_head_model(args.model)
    print(build_from_tracker(args.out, args.images, args.params, model, args.model,
                             TrackerCamera(args.resolution, args.fov, args.distance, args.weak_perspective_distance),
                             args.identity))
    return 0
