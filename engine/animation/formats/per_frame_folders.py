"""Per-frame .npy folders: SMIRK (AGORA's driving format) and EMOCA.

SMIRK::

    folder/00000/exp.npy        [50] or [1, 50]   FLAME expression (SMIRK's 50 components)
    folder/00000/jawpose.npy    [3]               jaw axis-angle
    folder/00000/globalpose.npy [3]               head (global) axis-angle
    folder/00000/eyelid.npy     [2]               eyelid closure in [0, 1] (left, right)
    folder/00000/shape.npy                        identity (first frame kept)
    folder/00000/cam.npy        [3]               weak-perspective camera (s, tx, ty), optional

or the same names directly in ``folder/`` holding stacked ``[T, …]`` arrays.

EMOCA (one folder per image)::

    folder/000001/exp.npy   [50]
    folder/000001/pose.npy  [6]   global axis-angle 3, jaw axis-angle 3
    folder/000001/cam.npy   [3]   weak-perspective camera (s, tx, ty), optional
    folder/000001/shape.npy, tex.npy, …

Frames are ordered by folder name (natural order: ``frame2`` before ``frame10``). Neither format
stores a frame rate; ``DEFAULT_FPS`` is assumed and noted. SMIRK's eyelid values become the
channels ``eyeBlinkLeft``/``eyeBlinkRight`` (0 open … 1 closed), after the FLAME coefficients
``expr_000`` …

``cam.npy`` (DECA's convention, which SMIRK and EMOCA keep: image NDC = s * (x + tx, y + ty) of
the posed FLAME vertices, y up, [-1, 1] across the square crop the tracker saw) becomes
``ParamSequence.weak_perspective``; it must be finite with s > 0. Animation import ignores it; the
dataset builder (``engine.train.tracker``) turns it into a camera per image.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..names import flame_expr_name
from ..sequence import ParamSequence
from ._safe_numpy import load_npy

DEFAULT_FPS = 25.0
SMIRK_FILES = ("exp.npy", "jawpose.npy", "globalpose.npy", "eyelid.npy")
EMOCA_FILES = ("exp.npy", "pose.npy")
BLINK_NAMES = ("eyeBlinkLeft", "eyeBlinkRight")


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def frame_dirs(folder: str, required: tuple[str, ...]) -> list[str]:
    """Sub-folders of ``folder`` holding all of ``required`` files, in natural order."""
    try:
        entries = sorted(os.listdir(folder), key=_natural_key)
    except OSError:
        return []
    return [
        os.path.join(folder, e)
        for e in entries
        if os.path.isdir(os.path.join(folder, e)) and all(os.path.isfile(os.path.join(folder, e, r)) for r in required)
    ]


def is_smirk_folder(folder: str) -> bool:
    if all(os.path.isfile(os.path.join(folder, f)) for f in ("exp.npy", "jawpose.npy")):
        return True
    return bool(frame_dirs(folder, ("exp.npy", "jawpose.npy")))


def is_emoca_folder(folder: str) -> bool:
    if all(os.path.isfile(os.path.join(folder, f)) for f in EMOCA_FILES):
        return True
    return bool(frame_dirs(folder, EMOCA_FILES))


def _vector(path: str, width: int | None) -> np.ndarray:
    """One per-frame array as ``[w]`` float32 (accepts ``[w]`` or ``[1, w]``)."""
    arr = load_npy(path)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputFileError(path, f"is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float32)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1 or (width is not None and arr.shape[0] != width):
        want = "(N,)" if width is None else f"({width},)"
        raise InputFileError(path, f"has shape {arr.shape}, expected {want}")
    return arr


def _stacked(path: str, width: int | None) -> np.ndarray:
    """A stacked array ``[T, w]`` (``[w]`` is one frame)."""
    arr = load_npy(path)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputFileError(path, f"is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float32)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        want = "(T, N)" if width is None else f"(T, {width})"
        raise InputFileError(path, f"has shape {arr.shape}, expected {want}")
    return arr


def _collect(folder: str, required: tuple[str, ...], spec: dict[str, int | None]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays ``name -> [T, w]`` from per-frame sub-folders or stacked files in ``folder``."""
    dirs = frame_dirs(folder, required)
    out: dict[str, np.ndarray] = {}
    if dirs:
        for name, width in spec.items():
            files = [os.path.join(d, name + ".npy") for d in dirs]
            present = [os.path.isfile(f) for f in files]
            if not any(present):
                continue
            if not all(present):
                missing = files[present.index(False)]
                raise InputFileError(missing, "is missing (other frames have it)")
            rows = [_vector(f, width) for f in files]
            widths = {r.shape[0] for r in rows}
            if len(widths) != 1:
                raise InputFileError(folder, f"{name}.npy has different lengths across frames: {sorted(widths)}")
            out[name] = np.stack(rows)
        return out, [os.path.basename(d) for d in dirs]
    lengths = {}
    for name, width in spec.items():
        f = os.path.join(folder, name + ".npy")
        if os.path.isfile(f):
            out[name] = _stacked(f, width)
            lengths[name] = out[name].shape[0]
    if len(set(lengths.values())) > 1:
        raise InputFileError(folder, f"stacked arrays disagree on the number of frames: {lengths}")
    if not out:
        raise InputFileError(folder, f"holds none of {', '.join(required)}")
    return out, []


def _weak_perspective(folder: str, arrays: dict[str, np.ndarray], frames: list[str]) -> np.ndarray | None:
    """``[T, 3]`` validated cam.npy rows (s, tx, ty), or None when the folder has none."""
    cams = arrays.get("cam")
    if cams is None:
        return None
    bad = np.flatnonzero(~np.isfinite(cams).all(axis=1) | ~(cams[:, 0] > 0))
    if bad.size:
        k = int(bad[0])
        where = os.path.join(folder, frames[k], "cam.npy") if frames else os.path.join(folder, "cam.npy")
        row = "" if frames else f"frame {k}: "
        raise InputFileError(where, f"{row}weak-perspective camera {cams[k].tolist()} is not finite with scale s > 0")
    return cams


def read_smirk_folder(path: str | os.PathLike) -> ParamSequence:
    """A SMIRK per-frame folder as a ParamSequence (space "flame", blink channels appended)."""
    path = os.fspath(path)
    arrays, frames = _collect(path, ("exp.npy", "jawpose.npy"),
                              {"exp": None, "jawpose": 3, "globalpose": 3, "eyelid": 2, "shape": None, "cam": 3})
    expr = arrays["exp"]
    T = expr.shape[0]
    names = [flame_expr_name(i) for i in range(expr.shape[1])]
    notes = {"fps": f"SMIRK stores no frame rate; assumed {DEFAULT_FPS:g} fps"}
    if "eyelid" in arrays:
        eyelid = arrays["eyelid"]
        if eyelid.min() < -1e-3 or eyelid.max() > 1.0 + 1e-3:
            notes["eyeBlinkLeft"] = notes["eyeBlinkRight"] = "eyelid values outside [0, 1] were kept as they are"
        expr = np.concatenate([expr, eyelid], axis=1)
        names += list(BLINK_NAMES)
        notes.setdefault("eyeBlinkLeft", "from SMIRK eyelid[0] (0 open, 1 closed)")
        notes.setdefault("eyeBlinkRight", "from SMIRK eyelid[1] (0 open, 1 closed)")
    cams = _weak_perspective(path, arrays, frames)
    z = np.zeros((T, 3), np.float32)
    try:
        return ParamSequence(
            fps=DEFAULT_FPS, expr_names=tuple(names), expr=expr,
            jaw=arrays.get("jawpose", z), neck=z, global_rot=arrays.get("globalpose", z),
            eyes=np.zeros((T, 2, 3), np.float32), translation=z,
            shape=arrays["shape"][0] if "shape" in arrays else None,
            space="flame", source_format="smirk_folder", notes=notes, weak_perspective=cams,
        )
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None


def read_emoca_folder(path: str | os.PathLike) -> ParamSequence:
    """An EMOCA per-image folder as a ParamSequence (space "flame")."""
    path = os.fspath(path)
    arrays, frames = _collect(path, EMOCA_FILES, {"exp": None, "pose": 6, "shape": None, "cam": 3})
    if "pose" not in arrays:
        raise InputFileError(path, "has no pose.npy")
    expr, pose = arrays["exp"], arrays["pose"]
    cams = _weak_perspective(path, arrays, frames)
    T = expr.shape[0]
    z = np.zeros((T, 3), np.float32)
    try:
        return ParamSequence(
            fps=DEFAULT_FPS, expr_names=tuple(flame_expr_name(i) for i in range(expr.shape[1])), expr=expr,
            jaw=pose[:, 3:6], neck=z, global_rot=pose[:, 0:3],
            eyes=np.zeros((T, 2, 3), np.float32), translation=z,
            shape=arrays["shape"][0] if "shape" in arrays else None,
            space="flame", source_format="emoca_folder",
            notes={"fps": f"EMOCA stores no frame rate; assumed {DEFAULT_FPS:g} fps"}, weak_perspective=cams,
        )
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None
