"""Training datasets on disk: images + per-image head-model parameters + cameras (no torch, no pickles).

Layout of a dataset folder (docs/TRAINING.md has the full description):

    dataset.json   {"format": "gaussian_heads.dataset", "version": 1, "description": str,
                    "head_model": {"spec": "open" | FLAME path, "n_vertices", "n_faces",
                                   "faces_crc32", "n_shape", "n_expr", "expr_space"},
                    "image_size": [W, H], "background": [r, g, b], "images": [relative paths]}
    params.npz     one row per image (N = len(images)), float32, read with allow_pickle=False:
                   shape [N, S], expr [N, E], global_rot [N, 3], neck [N, 3], jaw [N, 3],
                   eyes [N, 2, 3], translation [N, 3], world_to_cam [N, 4, 4] (OpenCV),
                   intrinsics [N, 4] = (fx, fy, cx, cy) in pixels of image_size,
                   identity [N] int32 (which subject), split [N] int32 (0 train, 1 held out)
    images/…       8-bit RGB PNG/JPEG, W x H each, display-referred sRGB

``open_dataset`` validates everything before training starts (every failure is one
``InputFileError`` naming the file); images are then decoded lazily, one per item, so the
dataset streams from disk whatever its size.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..avatar.identity import faces_checksum
from ..errors import GaussianHeadsError, InputFileError
from ..head_model.model import HeadModel, HeadParams
from ..raster.camera import Camera

FORMAT = "gaussian_heads.dataset"
VERSION = 1
INDEX_NAME = "dataset.json"
PARAMS_NAME = "params.npz"
SPLIT_TRAIN, SPLIT_HELDOUT = 0, 1
PARAM_KEYS = ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation")
MAX_IMAGE_SIDE = 4096


def _tails(model_info: dict) -> dict[str, tuple[int, ...]]:
    """Per-row shape of every params.npz array."""
    return {"shape": (model_info["n_shape"],), "expr": (model_info["n_expr"],), "global_rot": (3,),
            "neck": (3,), "jaw": (3,), "eyes": (2, 3), "translation": (3,), "world_to_cam": (4, 4),
            "intrinsics": (4,), "identity": (), "split": ()}


def head_model_info(model: HeadModel, spec: str) -> dict:
    """The dataset.json "head_model" entry that identifies ``model`` (loaded from ``spec``)."""
    return {"spec": spec, "n_vertices": model.n_vertices, "n_faces": int(model.faces.shape[0]),
            "faces_crc32": faces_checksum(model.faces), "n_shape": model.n_shape, "n_expr": model.n_expr,
            "expr_space": model.expr_space}


def check_same_model(info: dict, model: HeadModel, where: str, what: str = "the head model") -> None:
    """Raise InputFileError(where) unless ``info`` (a "head_model" entry) describes ``model``."""
    mine = head_model_info(model, info.get("spec", ""))
    for key in ("n_vertices", "n_faces", "faces_crc32", "n_shape", "n_expr"):
        if info.get(key) != mine[key]:
            raise InputFileError(where, f"was made for a different head model than {what} '{model.name}' "
                                        f"({key} {info.get(key)!r}, {what} has {mine[key]!r})")


@dataclass
class Sample:
    """One item: image [3, H, W] float32 in [0, 1], params (unbatched HeadParams), camera, identity, index."""

    image: np.ndarray
    params: HeadParams
    camera: Camera
    identity: int
    index: int


class HeadDataset:
    """A validated dataset folder (see the module docstring); ``len``, ``[i] -> Sample``."""

    def __init__(self, root: str, index: dict, arrays: dict[str, np.ndarray]):
        self.root = root
        self.index = index
        self.arrays = arrays
        self.width, self.height = (int(v) for v in index["image_size"])
        self.images: list[str] = list(index["images"])
        self.background = np.asarray(index.get("background", [0.0, 0.0, 0.0]), np.float32)
        self.description: str = str(index.get("description", ""))
        self.model_info: dict = dict(index["head_model"])

    def __len__(self) -> int:
        return len(self.images)

    def indices(self, split: int) -> np.ndarray:
        """[M] int64 indices of the items in ``split`` (SPLIT_TRAIN or SPLIT_HELDOUT)."""
        return np.nonzero(self.arrays["split"] == split)[0]

    def params(self, i: int) -> HeadParams:
        return HeadParams(*(self.arrays[k][i].copy() for k in PARAM_KEYS))

    def camera(self, i: int) -> Camera:
        fx, fy, cx, cy = (float(v) for v in self.arrays["intrinsics"][i])
        return Camera(self.arrays["world_to_cam"][i].astype(np.float64), fx, fy, cx, cy, self.width, self.height)

    def image_path(self, i: int) -> str:
        return os.path.join(self.root, self.images[i])

    def load_image(self, i: int) -> np.ndarray:
        """[3, H, W] float32 in [0, 1]; a file that does not decode raises InputFileError."""
        return read_image(self.image_path(i), self.width, self.height)

    def __getitem__(self, i: int) -> Sample:
        i = int(i)
        return Sample(self.load_image(i), self.params(i), self.camera(i), int(self.arrays["identity"][i]), i)


def read_image(path: str, width: int, height: int) -> np.ndarray:
    """Decode one dataset image to [3, H, W] float32 in [0, 1] (RGB; alpha is dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.size != (width, height):
                raise InputFileError(path, f"is {im.size[0]}x{im.size[1]} pixels, the dataset says {width}x{height}")
            im.load()
            rgb = np.asarray(im.convert("RGB"), np.float32) / 255.0
    except FileNotFoundError:
        raise InputFileError(path, "missing: the dataset index lists it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(path, f"not a readable image ({exc})") from None
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _load_index(root: str) -> dict:
    path = os.path.join(root, INDEX_NAME)
    if not os.path.isfile(path):
        raise InputFileError(path, "missing: a dataset folder needs its dataset.json index")
    try:
        with open(path, "rb") as fh:
            index = json.loads(fh.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not valid JSON ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise InputFileError(path, f"not a Gaussian Heads dataset index (expected format '{FORMAT}')")
    if index.get("version") != VERSION:
        raise InputFileError(path, f"unsupported dataset version {index.get('version')!r} (this build reads {VERSION})")
    size = index.get("image_size")
    if (not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and 8 <= v <= MAX_IMAGE_SIDE
                                                                for v in size)):
        raise InputFileError(path, f"image_size must be [width, height] in 8..{MAX_IMAGE_SIDE}, got {size!r}")
    images = index.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(n, str) for n in images):
        raise InputFileError(path, "'images' must be a non-empty list of relative file paths")
    for name in images:
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise InputFileError(path, f"image path {name!r} leaves the dataset folder")
    info = index.get("head_model")
    keys = ("n_vertices", "n_faces", "faces_crc32", "n_shape", "n_expr")
    if not isinstance(info, dict) or not isinstance(info.get("spec"), str) or not all(
            isinstance(info.get(k), int) for k in keys):
        raise InputFileError(path, f"'head_model' must be an object with spec and {', '.join(keys)}")
    bg = index.get("background", [0.0, 0.0, 0.0])
    if not isinstance(bg, list) or len(bg) != 3 or not all(isinstance(v, (int, float)) for v in bg):
        raise InputFileError(path, "'background' must be [r, g, b]")
    return index


def _load_params(root: str, index: dict) -> dict[str, np.ndarray]:
    path = os.path.join(root, PARAMS_NAME)
    if not os.path.isfile(path):
        raise InputFileError(path, "missing: a dataset folder needs params.npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputFileError(path, f"truncated or corrupt params file ({exc})") from None
    n = len(index["images"])
    for key, tail in _tails(index["head_model"]).items():
        if key not in arrays:
            raise InputFileError(path, f"lacks the '{key}' array")
        a = arrays[key]
        if a.dtype.kind not in "fiu":
            raise InputFileError(path, f"'{key}' is {a.dtype}, expected numbers")
        if a.shape[:1] != (n,):
            raise InputFileError(path, f"'{key}' has {a.shape[0] if a.ndim else 0} rows, the index lists {n} images")
        if a.shape[1:] != tail:
            raise InputFileError(path, f"'{key}' has rows of shape {a.shape[1:]}, expected {tail} "
                                       "(does the dataset's head model match?)")
        if not np.isfinite(a).all():
            raise InputFileError(path, f"'{key}' contains NaN or infinity")
        dtype = np.int32 if key in ("identity", "split") else (np.float64 if key == "world_to_cam" else np.float32)
        arrays[key] = np.ascontiguousarray(a, dtype)
    fx, fy = arrays["intrinsics"][:, 0], arrays["intrinsics"][:, 1]
    if (fx <= 0).any() or (fy <= 0).any():
        raise InputFileError(path, "focal lengths (intrinsics[:, 0:2]) must be positive")
    rot = arrays["world_to_cam"][:, :3, :3]
    err = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    if (err > 1e-3).any():
        raise InputFileError(path, f"world_to_cam of image {int(np.argmax(err))} is not a rigid transform")
    if not np.isin(arrays["split"], (SPLIT_TRAIN, SPLIT_HELDOUT)).all():
        raise InputFileError(path, "'split' values must be 0 (train) or 1 (held out)")
    return arrays


def open_dataset(path: str | os.PathLike, model: HeadModel | None = None, check_images: bool = True) -> HeadDataset:
    """Open and validate a dataset folder; ``model`` (if given) must be the dataset's head model.

    check_images: decode every image now (corrupt, missing or wrongly sized files are refused
    before training starts); False only checks that each file exists.
    """
    root = os.fspath(path)
    if not os.path.isdir(root):
        raise InputFileError(root, "not a dataset folder (it needs dataset.json, params.npz and the images)")
    index = _load_index(root)
    arrays = _load_params(root, index)
    if model is not None:
        check_same_model(index["head_model"], model, os.path.join(root, INDEX_NAME))
    ds = HeadDataset(root, index, arrays)
    missing = [n for n in ds.images if not os.path.isfile(os.path.join(root, n))]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputFileError(os.path.join(root, missing[0]),
                             f"missing: the dataset index lists it ({len(missing)} image(s) missing: "
                             f"{', '.join(missing[:3])}{more})")
    if check_images:
        for i in range(len(ds)):
            ds.load_image(i)
    if not len(ds.indices(SPLIT_TRAIN)):
        raise InputFileError(os.path.join(root, PARAMS_NAME), "has no training images (split 0)")
    return ds


class DatasetWriter:
    """Writes a dataset folder: ``add(rgb8 [H, W, 3] uint8, params, camera, identity, split)``, then ``close``."""

    def __init__(self, root: str | os.PathLike, model: HeadModel, model_spec: str, width: int, height: int,
                 description: str, background=(0.0, 0.0, 0.0)):
        self.root = os.fspath(root)
        os.makedirs(os.path.join(self.root, "images"), exist_ok=True)
        self.model, self.width, self.height = model, int(width), int(height)
        self.index = {"format": FORMAT, "version": VERSION, "description": description,
                      "head_model": head_model_info(model, model_spec), "image_size": [self.width, self.height],
                      "background": [float(v) for v in background], "images": []}
        self.rows: dict[str, list] = {k: [] for k in _tails(self.index["head_model"])}

    def add(self, rgb8: np.ndarray, params: HeadParams, camera: Camera, identity: int, split: int = SPLIT_TRAIN,
            name: str | None = None) -> None:
        """rgb8 [H, W, 3] uint8 (or None when the image file already sits at ``name``)."""
        from PIL import Image

        i = len(self.index["images"])
        name = name or f"images/{i:06d}.png"
        if rgb8 is not None:
            rgb8 = np.asarray(rgb8)
            if rgb8.shape != (self.height, self.width, 3) or rgb8.dtype != np.uint8:
                raise GaussianHeadsError(f"image {i} is {rgb8.shape} {rgb8.dtype}, expected "
                                         f"({self.height}, {self.width}, 3) uint8")
            Image.fromarray(rgb8).save(os.path.join(self.root, name))
        cam = camera.scaled(self.width, self.height)
        for key in PARAM_KEYS:
            self.rows[key].append(np.asarray(getattr(params, key), np.float32))
        self.rows["world_to_cam"].append(np.asarray(cam.world_to_cam, np.float64))
        self.rows["intrinsics"].append(np.array([cam.fx, cam.fy, cam.cx, cam.cy], np.float32))
        self.rows["identity"].append(int(identity))
        self.rows["split"].append(int(split))
        self.index["images"].append(name)

    def close(self) -> str:
        arrays = {k: np.stack([np.asarray(v) for v in rows]) for k, rows in self.rows.items()}
        tmp = os.path.join(self.root, PARAMS_NAME + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, os.path.join(self.root, PARAMS_NAME))
        with open(os.path.join(self.root, INDEX_NAME), "w", encoding="utf-8") as fh:
            json.dump(self.index, fh, indent=1)
        return self.root
