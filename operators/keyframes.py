"""Fast, transactional F-curve writing for imported animation, on every supported Blender.

Blender 4.4 introduced slotted (layered) Actions and 5.0 removed the legacy ``Action.fcurves``;
4.2 LTS and 4.3 have only the legacy API. :func:`ensure_fcurve` and :func:`curves_of` are the
one place that difference is handled.

Two steps, so a failure never leaves a half-written action:

1. :func:`build_curves` (no bpy data touched): every curve's data path, array index and the
   interleaved ``(frame, value)`` float32 keyframe array are computed up front.
2. :func:`write_curves`: one Action receives every curve through ``keyframe_points.add`` +
   ``foreach_set`` (1M keys in about a tenth of a second, versus minutes for per-key
   ``keyframe_insert``). The object's existing action is never edited in place: its copy (or a new
   action) is written and assigned; on any error the copy is removed and the object's animation
   data restored. On success the replaced action, if nothing else uses it, is removed and its
   name passed on, so re-importing does not pile up unused actions.

Data paths (docs/DEVELOPING.md): ``gaussian_heads.expr[i].value``, ``gaussian_heads.jaw``,
``.neck``, ``.head_rot`` (the sequence's ``global_rot``), ``.eyes`` (6: left 0..2, right 3..5)
and ``.translation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from bpy_extras import anim_utils

GROUP_NAME = "Gaussian Heads"
LINEAR = 1  # enum value of 'LINEAR' in Keyframe.interpolation

# sequence field -> (property on object.gaussian_heads, components)
JOINT_PATHS: tuple[tuple[str, str, int], ...] = (
    ("jaw", "gaussian_heads.jaw", 3),
    ("neck", "gaussian_heads.neck", 3),
    ("global_rot", "gaussian_heads.head_rot", 3),
    ("eyes", "gaussian_heads.eyes", 6),
    ("translation", "gaussian_heads.translation", 3),
)


@dataclass(frozen=True)
class CurveData:
    data_path: str
    index: int
    co: np.ndarray  # [2n] float32: frame0, value0, frame1, value1, ...

    @property
    def n_keys(self) -> int:
        return int(self.co.shape[0] // 2)


def expr_path(i: int) -> str:
    return f"gaussian_heads.expr[{int(i)}].value"


def build_curves(seq, frames: np.ndarray, *, expr_channels=None, joints=None) -> list[CurveData]:
    """Curves for ``seq`` (a ParamSequence in the avatar's channel order) at ``frames [T]``.

    ``expr_channels``: indices of the expression channels to key (default: all);
    ``joints``: names among jaw/neck/global_rot/eyes/translation to key (default: the ones with any
    non-zero value). Returns the list of curves; nothing in Blender is touched.
    """
    frames = np.asarray(frames, np.float32).reshape(-1)
    T = seq.n_frames
    if frames.shape[0] != T:
        raise ValueError(f"{frames.shape[0]} frame numbers for {T} frames")
    if expr_channels is None:
        expr_channels = range(seq.n_expr)
    if joints is None:
        joints = [name for name, _, _ in JOINT_PATHS if np.any(getattr(seq, name) != 0)]
    curves = []

    def curve(path, index, values):
        co = np.empty((T, 2), np.float32)
        co[:, 0] = frames
        co[:, 1] = values
        curves.append(CurveData(path, index, co.ravel()))

    for i in expr_channels:
        curve(expr_path(i), 0, seq.expr[:, i])
    for name, path, n in JOINT_PATHS:
        if name in joints:
            values = getattr(seq, name).reshape(T, n)
            for k in range(n):
                curve(path, k, values[:, k])
    return curves


def curves_of(action, obj):
    """The F-curve collection animating ``obj`` in ``action``: the channelbag of the object's
    slot (4.4+), or the action's own ``fcurves`` (4.2/4.3, no slots); None if there is none."""
    if not hasattr(action, "slots"):
        return action.fcurves
    slot = getattr(obj.animation_data, "action_slot", None) if obj.animation_data else None
    if slot is None:
        return None
    bag = anim_utils.action_get_channelbag_for_slot(action, slot)
    return bag.fcurves if bag is not None else None


def ensure_fcurve(action, obj, data_path: str, index: int, group_name: str = GROUP_NAME):
    """The F-curve for ``obj``'s ``data_path[index]`` in ``action`` (assigned to ``obj``),
    created in ``group_name`` if missing."""
    if hasattr(action, "fcurve_ensure_for_datablock"):  # 4.4+: makes the slot, layer and strip
        try:
            return action.fcurve_ensure_for_datablock(obj, data_path, index=index, group_name=group_name)
        except TypeError:  # 4.4/4.5 take no group_name: group the curve through its channelbag
            fc = action.fcurve_ensure_for_datablock(obj, data_path, index=index)
            bag = anim_utils.action_get_channelbag_for_slot(action, obj.animation_data.action_slot)
            if fc.group is None or fc.group.name != group_name:
                fc.group = next((g for g in bag.groups if g.name == group_name), None) or bag.groups.new(group_name)
            return fc
    fcurves = action.fcurves
    fc = fcurves.find(data_path, index=index)
    return fc if fc is not None else fcurves.new(data_path, index=index, action_group=group_name)


def write_curves(obj, curves: list[CurveData], action_name: str):
    """Write ``curves`` into a fresh action for ``obj`` (see the module docstring); returns it.

    Curves at the same data path and index as an existing F-curve replace its keys; other
    F-curves of the object's current action are kept (they are copied along).
    """
    had_anim = obj.animation_data is not None
    old_action = obj.animation_data.action if had_anim else None
    old_slot = getattr(obj.animation_data, "action_slot", None) if had_anim else None
    action = old_action.copy() if old_action is not None else bpy.data.actions.new(action_name)
    if old_action is None:
        action.name = action_name
    try:
        ad = obj.animation_data or obj.animation_data_create()
        ad.action = action
        interp = None
        for c in curves:
            fc = ensure_fcurve(action, obj, c.data_path, c.index)
            points = fc.keyframe_points
            if len(points):
                points.clear()
            n = c.n_keys
            points.add(n)
            points.foreach_set("co", c.co)
            if interp is None or interp.shape[0] != n:
                interp = np.full(n, LINEAR, np.int32)
            points.foreach_set("interpolation", interp)
            fc.update()
    except BaseException:
        # Roll back: the object gets its previous action (or none) and the new one is deleted.
        if had_anim:
            obj.animation_data.action = old_action
            if old_action is not None and old_slot is not None:
                try:
                    obj.animation_data.action_slot = old_slot
                except (AttributeError, RuntimeError, TypeError):
                    pass
        elif obj.animation_data is not None:
            obj.animation_data_clear()
        bpy.data.actions.remove(action)
        raise
    if old_action is not None and old_action.users == 0 and not old_action.use_fake_user:
        # The replaced action is now unused: drop it and let its successor keep its name.
        name = old_action.name
        bpy.data.actions.remove(old_action)
        action.name = name
    return action


def find_fcurve(obj, data_path: str, index: int = 0):
    """The F-curve animating ``obj``'s ``data_path[index]`` in its assigned action slot, or None."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None
    fcurves = curves_of(ad.action, obj)
    return fcurves.find(data_path, index=index) if fcurves is not None else None


def sample_property_curves(obj, frames: np.ndarray, data_path: str, index: int, current: float) -> np.ndarray:
    """Values ``[T]`` of ``obj``'s animated ``data_path[index]`` at ``frames`` (constant
    ``current`` when the property has no F-curve)."""
    fc = find_fcurve(obj, data_path, index)
    if fc is None:
        return np.full(len(frames), current, np.float32)
    return np.array([fc.evaluate(float(f)) for f in frames], np.float32)
