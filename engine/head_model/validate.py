"""Consistency checks of a HeadModel's arrays; problems become InputFileError naming the file."""

from __future__ import annotations

import numpy as np

from ..errors import InputFileError
from .model import JOINT_NAMES, HeadModel


def _shape(a) -> tuple:
    return tuple(getattr(a, "shape", ()))


def validate_model(model: HeadModel, path: str) -> None:
    """Raise InputFileError(path, ...) unless every array of ``model`` has a consistent shape.

    V = v_template.shape[0]; J = len(JOINT_NAMES) = 5.
    """
    def bad(problem: str):
        raise InputFileError(path, problem)

    v = model.v_template
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        bad(f"v_template has shape {_shape(v)}, expected (V, 3)")
    n_v = v.shape[0]
    n_j = len(JOINT_NAMES)
    for name in ("shapedirs", "exprdirs"):
        a = getattr(model, name)
        if a.ndim != 3 or a.shape[:2] != (n_v, 3):
            bad(f"{name} has shape {_shape(a)}, expected ({n_v}, 3, N)")
    if len(model.expr_names) != model.exprdirs.shape[2]:
        bad(f"{len(model.expr_names)} expression names for {model.exprdirs.shape[2]} expression components")
    if model.j_regressor.shape != (n_j, n_v):
        bad(f"J_regressor has shape {_shape(model.j_regressor)}, expected ({n_j}, {n_v})")
    if model.weights.shape != (n_v, n_j):
        bad(f"weights have shape {_shape(model.weights)}, expected ({n_v}, {n_j})")
    if model.parents.shape != (n_j,) or model.parents[0] != -1 or np.any(model.parents[1:] < 0) \
            or np.any(model.parents[1:] >= np.arange(1, n_j)):
        bad(f"kinematic tree {model.parents.tolist()} is not a 5-joint FLAME tree (root first, parents before children)")
    f = model.faces
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        bad(f"faces have shape {_shape(f)}, expected (F, 3)")
    if f.min() < 0 or f.max() >= n_v:
        bad(f"faces index vertices outside 0..{n_v - 1}")
    if model.posedirs is not None:
        p = model.posedirs
        if p.shape != (n_v, 3, (n_j - 1) * 9):
            bad(f"posedirs have shape {_shape(p)}, expected ({n_v}, 3, {(n_j - 1) * 9})")
    if (model.vt is None) != (model.ft is None):
        bad("UVs need both vt and ft")
    if model.vt is not None:
        if model.vt.ndim != 2 or model.vt.shape[1] != 2:
            bad(f"vt has shape {_shape(model.vt)}, expected (T, 2)")
        if model.ft.shape != f.shape:
            bad(f"ft has shape {_shape(model.ft)}, expected {f.shape} (one UV index per face corner)")
        if model.ft.min() < 0 or model.ft.max() >= model.vt.shape[0]:
            bad(f"ft indexes UVs outside 0..{model.vt.shape[0] - 1}")
    for region, m in model.masks.items():
        if m.shape != (n_v,):
            bad(f"mask {region!r} has shape {_shape(m)}, expected ({n_v},)")
    if model.expr_range is not None and model.expr_range.shape != (model.n_expr, 2):
        bad(f"expr_range has shape {_shape(model.expr_range)}, expected ({model.n_expr}, 2)")
    for name in ("v_template", "shapedirs", "exprdirs", "j_regressor", "weights"):
        if not np.isfinite(getattr(model, name)).all():
            bad(f"{name} holds NaN or infinite values")
