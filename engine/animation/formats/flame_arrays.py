"""Bare FLAME arrays: one folder holding stacked per-frame FLAME parameters, as several projects ship them.

    folder/exp.npy  (or expr.npy)   [T, E]   FLAME expression coefficients, E = 1..100 (usually 100)
    folder/pose.npy                 [T, 15]  axis-angles: global 0:3, neck 3:6, jaw 6:9,
                                             left eye 9:12, right eye 12:15 (FLAME's joint order)
    folder/shape.npy   (optional)   [S] or [T, S]   identity β (the first row is kept)
    folder/trans.npy, transl.npy or translation.npy (optional)   [T, 3]   metres

A one-frame take may store ``[E]`` and ``[15]``. No frame rate is stored: ``DEFAULT_FPS`` is
assumed and noted. Detection (``is_flame_arrays_folder``) looks at the top level only: EMOCA
folders hold per-frame sub-folders, and EMOCA's stacked form (``exp.npy`` + ``pose.npy`` [T, 6],
global + jaw) keeps going to the EMOCA reader; ``expr.npy``, or a ``pose.npy`` of any other width,
comes here (a wrong width is then reported against the 15 this format needs).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..names import flame_expr_name
from ..sequence import ParamSequence
from ._safe_numpy import _check_header, load_npy

DEFAULT_FPS = 25.0
EXPR_FILES = ("exp.npy", "expr.npy")
POSE_FILE = "pose.npy"
POSE_WIDTH = 15
MAX_EXPR = 100  # FLAME's expression space (2020 and 2023)
TRANSLATION_FILES = ("trans.npy", "transl.npy", "translation.npy")
EMOCA_POSE_WIDTH = 6


def _present(folder: str, names) -> list[str]:
    return [n for n in names if os.path.isfile(os.path.join(folder, n))]


def _header_shape(path: str) -> tuple[int, ...] | None:
    try:
        with open(path, "rb") as fp:
            return _check_header(fp, path, "the array")[0]
    except (OSError, InputFileError):
        return None


def is_flame_arrays_folder(folder: str | os.PathLike) -> bool:
    """Top-level ``pose.npy`` with ``exp.npy``/``expr.npy``, unless it is EMOCA's stacked [T, 6] pose."""
    folder = os.fspath(folder)
    exprs = _present(folder, EXPR_FILES)
    if not exprs or not os.path.isfile(os.path.join(folder, POSE_FILE)):
        return False
    if "expr.npy" in exprs:
        return True
    shape = _header_shape(os.path.join(folder, POSE_FILE))
    return not (shape is not None and len(shape) in (1, 2) and shape[-1] == EMOCA_POSE_WIDTH)


def _stacked(path: str, what: str, width: int | None) -> np.ndarray:
    """``[T, w]`` float32 from ``[T, w]`` (or ``[w]``: one frame); numeric dtypes only."""
    arr = load_npy(path)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputFileError(path, f"{what} is not numeric (dtype {arr.dtype})")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or (width is not None and arr.shape[1] != width):
        want = f"(T, {width})" if width is not None else "(T, N)"
        raise InputFileError(path, f"{what} has shape {arr.shape}, expected {want}")
    return arr.astype(np.float32)


def read_flame_arrays(path: str | os.PathLike) -> ParamSequence:
    """A bare FLAME arrays folder as a ParamSequence (space "flame", channels ``expr_000`` …)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputFileError(path, "is not a folder of FLAME arrays")
    exprs = _present(path, EXPR_FILES)
    if len(exprs) > 1:
        raise InputFileError(path, "holds both exp.npy and expr.npy; keep the one that belongs to pose.npy")
    if not exprs:
        raise InputFileError(path, "has no exp.npy or expr.npy (the [T, 100] FLAME expression array)")
    pose_path = os.path.join(path, POSE_FILE)
    if not os.path.isfile(pose_path):
        raise InputFileError(path, "has no pose.npy (the [T, 15] FLAME pose array)")
    expr_path = os.path.join(path, exprs[0])
    expr = _stacked(expr_path, "the expression array", None)
    if not 1 <= expr.shape[1] <= MAX_EXPR:
        raise InputFileError(expr_path, f"has {expr.shape[1]} expression coefficients per frame; "
                                        f"FLAME has 1 to {MAX_EXPR}")
    pose = _stacked(pose_path, "the pose array (global, neck, jaw, eyes)", POSE_WIDTH)
    T = expr.shape[0]
    if pose.shape[0] != T:
        raise InputFileError(path, f"{exprs[0]} has {T} frames but pose.npy has {pose.shape[0]}")
    translation = np.zeros((T, 3), np.float32)
    found = _present(path, TRANSLATION_FILES)
    if len(found) > 1:
        raise InputFileError(path, f"holds several translation arrays ({', '.join(found)}); keep one")
    if found:
        tpath = os.path.join(path, found[0])
        translation = _stacked(tpath, "the translation array", 3)
        if translation.shape[0] != T:
            raise InputFileError(tpath, f"has {translation.shape[0]} frames; {exprs[0]} has {T}")
    shape = None
    if os.path.isfile(os.path.join(path, "shape.npy")):
        shape_path = os.path.join(path, "shape.npy")
        shape = _stacked(shape_path, "the shape array", None)
        if shape.shape[0] == 0 or shape.shape[1] == 0:
            raise InputFileError(shape_path, f"the shape array has shape {shape.shape}; expected [S] or [T, S]")
        shape = shape[0]
    try:
        return ParamSequence(
            fps=DEFAULT_FPS, expr_names=tuple(flame_expr_name(i) for i in range(expr.shape[1])), expr=expr,
            global_rot=pose[:, 0:3], neck=pose[:, 3:6], jaw=pose[:, 6:9], eyes=pose[:, 9:15].reshape(T, 2, 3),
            translation=translation, shape=shape, space="flame", source_format="flame_arrays",
            notes={"fps": f"bare FLAME arrays store no frame rate; assumed {DEFAULT_FPS:g} fps"},
        )
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None
