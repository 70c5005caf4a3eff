"""FLAME parameter .npz files: GaussianAvatars / VHAP ``flame_param.npz``, VHAP
``tracked_flame_params*.npz``, and the files our own writer produces.

Keys read (T frames): ``expr [T, E]``, ``rotation [T, 3]`` (global), ``neck_pose [T, 3]``,
``jaw_pose [T, 3]``, ``eyes_pose [T, 6]`` (left eye 3, right eye 3), ``translation [T, 3]``,
``shape [S]`` or ``[1, S]``. Missing pose keys are zero. VHAP's ``n_processed_frames`` trims the
arrays to the frames actually tracked. Our writer adds ``fps``, ``expr_names`` and ``space`` (plain
unicode arrays, no pickles); files without ``fps`` are assumed to be at ``DEFAULT_FPS``, which the
importer lets the user override. Expression channels without stored names are named
``expr_000`` … (FLAME coefficients, mapped by index).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..names import flame_expr_name, looks_arkit
from ..sequence import SPACES, ParamSequence
from ._safe_numpy import load_npz

DEFAULT_FPS = 25.0

# our field -> (accepted keys, width)
_POSE_KEYS: dict[str, tuple[tuple[str, ...], int]] = {
    "global_rot": (("rotation", "global_rot", "global_pose", "globalpose"), 3),
    "neck": (("neck_pose", "neck"), 3),
    "jaw": (("jaw_pose", "jaw", "jawpose"), 3),
    "eyes": (("eyes_pose", "eye_pose", "eyes"), 6),
    "translation": (("translation", "trans", "transl"), 3),
}
_EXPR_KEYS = ("expr", "exp", "expression")
_ALL_KEYS = _EXPR_KEYS + tuple(k for keys, _ in _POSE_KEYS.values() for k in keys) + (
    "shape", "fps", "expr_names", "space", "n_processed_frames",
)


def is_flame_npz(arrays_keys) -> bool:
    keys = set(arrays_keys)
    return bool(keys & set(_EXPR_KEYS)) or bool(keys & {"jaw_pose", "rotation", "eyes_pose"})


def _first(arrays: dict, keys: tuple[str, ...]):
    for k in keys:
        if k in arrays:
            return k, arrays[k]
    return None, None


def fields_from_arrays(arrays: dict[str, np.ndarray], path: str, n_frames: int | None = None) -> dict:
    """ParamSequence fields (expr, expr_names, poses, shape) from FLAME-style arrays.

    Per-frame arrays are ``[T, w]`` (or ``[w]`` / ``[1, w]`` for one frame). Raises InputFileError
    naming the key for a wrong shape or non-numeric data.
    """
    def numeric(key, arr):
        arr = np.asarray(arr)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputFileError(path, f"array {key!r} is not numeric (dtype {arr.dtype})")
        return arr.astype(np.float32)

    per_frame = {}
    ekey, expr = _first(arrays, _EXPR_KEYS)
    if expr is not None:
        expr = numeric(ekey, expr)
        if expr.ndim == 1:
            expr = expr[None]
        if expr.ndim != 2:
            raise InputFileError(path, f"array {ekey!r} has shape {expr.shape}, expected (T, E)")
        per_frame["expr"] = expr
    for field_name, (keys, width) in _POSE_KEYS.items():
        k, arr = _first(arrays, keys)
        if arr is None:
            continue
        arr = numeric(k, arr)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != width:
            raise InputFileError(path, f"array {k!r} has shape {arr.shape}, expected (T, {width})")
        per_frame[field_name] = arr
    if not per_frame:
        raise InputFileError(path, "holds no FLAME parameters (expected keys such as 'expr', 'jaw_pose', 'rotation')")
    lengths = {name: a.shape[0] for name, a in per_frame.items()}
    T = max(lengths.values()) if n_frames is None else n_frames
    if "n_processed_frames" in arrays:
        n = int(np.asarray(arrays["n_processed_frames"]).reshape(-1)[0])
        if 0 < n < T:
            T = n
    for name, a in per_frame.items():
        if a.shape[0] == 1 and T > 1:
            per_frame[name] = np.repeat(a, T, axis=0)
        elif a.shape[0] < T:
            raise InputFileError(path, f"{name} has {a.shape[0]} frames but other arrays have {T}")
        else:
            per_frame[name] = a[:T]
    if T < 1:
        raise InputFileError(path, "the animation has no frames")
    expr = per_frame.get("expr", np.zeros((T, 0), np.float32))
    names = None
    if "expr_names" in arrays:
        names = tuple(str(n) for n in np.asarray(arrays["expr_names"]).reshape(-1))
        if len(names) != expr.shape[1]:
            raise InputFileError(path, f"'expr_names' lists {len(names)} names for {expr.shape[1]} channels")
    if names is None:
        names = tuple(flame_expr_name(i) for i in range(expr.shape[1]))
    fields = {
        "expr_names": names,
        "expr": expr,
        "jaw": per_frame.get("jaw", np.zeros((T, 3), np.float32)),
        "neck": per_frame.get("neck", np.zeros((T, 3), np.float32)),
        "global_rot": per_frame.get("global_rot", np.zeros((T, 3), np.float32)),
        "eyes": per_frame.get("eyes", np.zeros((T, 6), np.float32)).reshape(T, 2, 3),
        "translation": per_frame.get("translation", np.zeros((T, 3), np.float32)),
        "shape": None,
    }
    if "shape" in arrays:
        shape = numeric("shape", arrays["shape"])
        if shape.ndim == 2:
            shape = shape[0]
        if shape.ndim != 1:
            raise InputFileError(path, f"array 'shape' has shape {shape.shape}, expected (S,)")
        fields["shape"] = shape
    return fields


def read_flame_npz(path: str | os.PathLike) -> ParamSequence:
    """A flame_param.npz / tracked_flame_params*.npz (or one of our own .npz) as a ParamSequence."""
    path = os.fspath(path)
    arrays = load_npz(path, _ALL_KEYS)
    fields = fields_from_arrays(arrays, path)
    notes = {}
    if "fps" in arrays:
        fps = float(np.asarray(arrays["fps"]).reshape(-1)[0])
    else:
        fps = DEFAULT_FPS
        notes["fps"] = f"the file stores no frame rate; assumed {DEFAULT_FPS:g} fps"
    if "space" in arrays:
        space = str(np.asarray(arrays["space"]).reshape(-1)[0])
        if space not in SPACES:
            raise InputFileError(path, f"unknown expression space {space!r}")
    elif "expr_names" in arrays:
        space = "arkit" if looks_arkit(fields["expr_names"]) else "named"
    else:
        space = "flame"
    name = os.path.basename(path)
    source = "vhap_tracked_npz" if name.startswith("tracked_flame_params") else "flame_param_npz"
    if not np.isfinite(fps) or fps <= 0:
        raise InputFileError(path, f"'fps' is {fps}, expected a positive number")
    try:
        return ParamSequence(fps=fps, space=space, source_format=source, notes=notes, **fields)
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None


def write_flame_npz(seq: ParamSequence, path: str | os.PathLike) -> None:
    """Write ``seq`` as a flame_param-style .npz (float32 arrays plus fps, expr_names, space).

    Readable by :func:`read_flame_npz` and by tools that expect GaussianAvatars' keys.
    """
    path = os.fspath(path)
    T = seq.n_frames
    arrays = {
        "expr": seq.expr,
        "rotation": seq.global_rot,
        "neck_pose": seq.neck,
        "jaw_pose": seq.jaw,
        "eyes_pose": seq.eyes.reshape(T, 6),
        "translation": seq.translation,
        "fps": np.float64(seq.fps),
        "expr_names": np.array(seq.expr_names, dtype=np.str_) if seq.expr_names else np.zeros(0, np.str_),
        "space": np.array(seq.space, dtype=np.str_),
    }
    if seq.shape is not None:
        arrays["shape"] = seq.shape
    # np.savez appends ".npz" to names without it; write through a file object to keep the name.
    with open(path, "wb") as fp:
        np.savez(fp, **arrays)
