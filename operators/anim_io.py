"""Import / export of head animation (File > Import/Export, and the avatar panel).

Thin adapters: the operator's properties become an ``ImportOptions``; ``engine.animation``
reads, retimes, maps and aligns; ``operators.keyframes`` builds every F-curve and only then
writes them into one action. Bad input is reported as an ERROR naming the file and the operator
returns CANCELLED with the scene untouched. ``{'REGISTER', 'UNDO'}``: one undo step removes an
import.
"""

from __future__ import annotations

import os

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..engine.animation import (ImportOptions, MapOptions, ParamSequence, TargetSpec, prepare_import, read_any,
                                write_any)
from ..engine.animation.align import AlignOptions
from ..engine.animation.names import looks_arkit
from ..engine.errors import GaussianHeadsError
from ..preferences import flame_model_path
from ..properties import EXPR_HARD_LIMIT
from . import keyframes
from .context import poll_active_avatar
from .file_io import register_file_operators

IMPORT_LABEL = "Gaussian Heads Animation (.npz/.csv/.json/folder)"
EXPORT_LABEL = "Gaussian Heads Animation (.npz/.csv)"


def avatar_target_spec(obj) -> TargetSpec:
    """What ``obj`` (an avatar) animates: its expression channel names, their space and ranges."""
    props = obj.gaussian_heads
    names = tuple(ch.name for ch in props.expr)
    if looks_arkit(names):
        space = "arkit"
    elif getattr(props, "model_spec", "open") not in ("", "open"):
        space = "flame"
    else:
        space = "named"
    ranges = np.array([[ch.range_min, ch.range_max] for ch in props.expr], np.float32).reshape(-1, 2)
    if ranges.size == 0 or not np.all(ranges[:, 1] > ranges[:, 0]):
        ranges = None
    return TargetSpec(names, space, ranges)


def _load_model(spec: str):
    try:
        from ..engine.head_model import load_head_model
    except ImportError as exc:
        raise GaussianHeadsError(f"head models cannot be loaded in this build ({exc})") from None
    try:
        return load_head_model(spec)
    except GaussianHeadsError:
        raise
    except Exception as exc:  # a damaged or unexpected model file
        raise GaussianHeadsError(f"{spec}: could not load the head model ({exc})") from None


def head_models_for(obj, source_space: str, target_space: str, source_model_path: str,
                    flame_model_path: str = ""):
    """(source_model, target_model, note) for least-squares ARKit ↔ FLAME mapping.

    Only when the two spaces differ. The ARKit side defaults to the built-in open model; a FLAME
    source needs the user's FLAME file: the import's ``source_model_path``, else the preferences'
    ``flame_model_path``. Without both models the mapping goes by name and ``note`` says why. A
    path the user gave that fails to load is an error.
    """
    if {source_space, target_space} != {"arkit", "flame"}:
        return None, None, None
    if source_model_path:
        source = _load_model(bpy.path.abspath(source_model_path))
    elif source_space == "arkit":
        try:
            source = _load_model("open")
        except GaussianHeadsError as exc:
            return None, None, f"ARKit → FLAME mapped by name: {exc}"
    elif flame_model_path:
        try:
            source = _load_model(flame_model_path)
        except GaussianHeadsError as exc:
            raise GaussianHeadsError(f"{exc} (the FLAME model chosen in the add-on preferences)") from None
    else:
        return None, None, ("FLAME → ARKit mapped by name (jaw, neck and eyes only): choose your FLAME "
                            "model in the add-on preferences, or Source Head Model for this import, for a "
                            "least-squares mapping of the expressions")
    try:
        spec = getattr(obj.gaussian_heads, "model_spec", "open") or "open"
        # a LAM avatar's head model is packed in the .blend; its channels are ARKit's, as the open model's
        target = _load_model("open" if spec.startswith("lam:") else spec)
    except GaussianHeadsError as exc:
        return None, None, f"mapped by name: the avatar's head model could not be loaded ({exc})"
    return source, target, None


def _names(items, limit: int = 12) -> str:
    items = list(items)
    more = f", … (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


_JOINTS = ("jaw", "neck", "global_rot", "eyes", "translation")


def import_notes(result, target: TargetSpec, path: str, *, fps_overridden: bool = False,
                 aligned: bool = False, hard_limit: float | None = None) -> list[tuple[str, str]]:
    """Every remark the engine made on an import, one (level, text) report line each: where the
    frame rate came from, the readers' and the mapping's notes (retiming, conversions, values
    brought into the avatar's range), ignored columns (a line per reason), undriven channels,
    values outside the avatar's range when not ``aligned``, and values beyond the sliders' hard
    limit (``hard_limit``: Blender clamps them when it evaluates the curves)."""
    name = os.path.basename(path.rstrip("/\\")) or path
    src, seq = result.source, result.sequence
    if fps_overridden:
        origin = "set by Source FPS"
    elif src.source_format.startswith("live_link"):
        origin = "derived from its timecodes"
    else:
        origin = "read from the file"
    lines = [('INFO', f"{name}: frame rate {src.fps:g} fps, {origin}; resampled to {seq.fps:g} fps")]
    lines += [('INFO', f"{name}: {note}") for note in result.report.notes]
    fitted = [c[:-len(" (least squares)")] for c in result.report.converted if c.endswith(" (least squares)")]
    lines += [('INFO', f"{name}: converted {c}") for c in result.report.converted
              if not c.endswith(" (least squares)")]
    if fitted:
        lines.append(('INFO', f"{name}: {len(fitted)} columns converted by least squares: {_names(fitted)}"))
    channel_notes = {n: v for n, v in src.notes.items() if n in src.expr_names}
    ignored: dict[str, list[str]] = {}
    for column in result.report.ignored:
        why = channel_notes.get(column) or ("turned off in the import options" if column in _JOINTS
                                            else "the avatar has no matching channel")
        ignored.setdefault(why, []).append(column)
    for why, columns in ignored.items():
        lines.append(('INFO', f"{name}: {len(columns)} column{'s' * (len(columns) > 1)} ignored, "
                              f"{why}: {_names(columns)}"))
    if result.report.missing:
        lines.append(('INFO', f"{name}: {len(result.report.missing)} avatar channels get no curve "
                              f"({_names(result.report.missing)})"))
    expr = np.asarray(seq.expr, np.float64)
    if not aligned and target.expr_range is not None and expr.size:
        lo, hi = target.expr_range[:, 0], target.expr_range[:, 1]
        over = np.maximum(expr.max(0) - hi, lo - expr.min(0))
        outside = [n for n, o in zip(seq.expr_names, over) if o > 1e-6]
        if outside:
            lines.append(('WARNING', f"{name}: {len(outside)} channels leave the avatar's range (by up to "
                                     f"{over.max():.3g}; Align to Avatar Range brings them in): {_names(outside)}"))
    if hard_limit is not None and expr.size and np.abs(expr).max() > hard_limit:
        beyond = [n for n, v in zip(seq.expr_names, np.abs(expr).max(0)) if v > hard_limit]
        lines.append(('WARNING', f"{name}: values beyond ±{hard_limit:g} are clamped to the slider limit: "
                                 f"{_names(beyond)}"))
    return lines


def _resolve_path(filepath: str, directory: str) -> str:
    path = bpy.path.abspath(filepath) if filepath else ""
    if path and (os.path.isdir(path) or os.path.exists(path)):
        return path.rstrip("/\\") if os.path.isdir(path) else path
    if directory and os.path.isdir(bpy.path.abspath(directory)) and (not filepath or filepath.endswith(("/", "\\"))):
        return bpy.path.abspath(directory).rstrip("/\\")
    return path


def _target_object(context, name: str):
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise GaussianHeadsError(f"no object named '{name}'")
    else:
        obj = context.active_object
        if obj is None:
            raise GaussianHeadsError("select a Gaussian avatar first")
    if not obj.gaussian_heads.is_avatar:
        raise GaussianHeadsError(f"'{obj.name}' is not a Gaussian avatar")
    return obj


class GAUSSIAN_HEADS_OT_import_animation(bpy.types.Operator, ImportHelper):
    """Import expression and head-pose curves (FLAME .npz, VHAP/NeRF exports, SMIRK/EMOCA folders, bare FLAME arrays, Live Link Face CSV, named CSV/JSON) as keyframes on the avatar"""

    bl_idname = "gaussian_heads.import_animation"
    bl_label = "Import Animation"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ""
    filter_glob: StringProperty(default="*.npz;*.csv;*.json;*.txt", options={'HIDDEN'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})

    target: StringProperty(
        name="Target Avatar", description="Avatar object to animate (empty: the active object)", default="")
    start_frame: IntProperty(
        name="Start Frame", description="Scene frame of the take's first sample", default=1)
    override_fps: BoolProperty(
        name="Override Source FPS", description="Ignore the file's frame rate and use Source FPS", default=False)
    source_fps: FloatProperty(
        name="Source FPS", description="Frame rate of the file's samples (read from the file unless overridden)",
        default=60.0, min=0.001, soft_max=240.0)
    value_scale: FloatProperty(
        name="Value Scale", description="Multiplies every expression value", default=1.0, soft_min=0.0, soft_max=2.0)
    align_to_range: BoolProperty(
        name="Align to Avatar Range",
        description="Bring values outside the avatar's expression range back in (timing and direction kept)",
        default=False)
    align_mode: EnumProperty(
        name="Alignment", items=(('SOFT', "Soft", "Compress smoothly near the bounds (tanh knee)"),
                                 ('CLIP', "Clip", "Clamp to the bounds")), default='SOFT')
    head_rotation_to: EnumProperty(
        name="Head Rotation To", items=(('GLOBAL', "Head", "Head rotation drives the global (head) joint"),
                                        ('NECK', "Neck", "Head rotation drives the neck joint")), default='GLOBAL')
    use_head_rotation: BoolProperty(name="Head Rotation", default=True,
                                    description="Import head rotation curves")
    use_eyes: BoolProperty(name="Eye Rotation", default=True, description="Import eye rotation curves")
    source_model: StringProperty(
        name="Source Head Model", subtype='FILE_PATH', default="",
        description="Head model of the file's expression space (the FLAME file a FLAME take was tracked "
                    "with) for least-squares mapping between ARKit and FLAME; empty: the built-in open "
                    "model for ARKit takes, the preferences' FLAME Model for FLAME takes")
    set_frame_range: BoolProperty(
        name="Set Frame Range", description="Extend the scene's frame range to the imported animation",
        default=False)

    @classmethod
    def poll(cls, context):
        return poll_active_avatar(cls, context) is not None

    def invoke(self, context, event):
        self.start_frame = context.scene.frame_start
        return ImportHelper.invoke(self, context, event)

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop_search(self, "target", bpy.data, "objects")
        layout.prop(self, "start_frame")
        row = layout.row(heading="Source FPS")
        row.prop(self, "override_fps", text="")
        sub = row.row()
        sub.enabled = self.override_fps
        sub.prop(self, "source_fps", text="")
        layout.prop(self, "value_scale")
        layout.prop(self, "align_to_range")
        sub = layout.row()
        sub.enabled = self.align_to_range
        sub.prop(self, "align_mode")
        layout.prop(self, "use_head_rotation")
        sub = layout.row()
        sub.enabled = self.use_head_rotation
        sub.prop(self, "head_rotation_to")
        layout.prop(self, "use_eyes")
        layout.prop(self, "source_model")
        layout.prop(self, "set_frame_range")

    def import_options(self, scene) -> ImportOptions:
        return ImportOptions(
            scene_fps=scene.render.fps / scene.render.fps_base,
            start_frame=float(self.start_frame),
            source_fps=float(self.source_fps) if self.override_fps else None,
            value_scale=float(self.value_scale),
            align=bool(self.align_to_range),
            align_options=AlignOptions(mode=self.align_mode.lower()),
            map_options=MapOptions(head_rotation_to=self.head_rotation_to.lower(),
                                   use_head_rotation=self.use_head_rotation, use_eyes=self.use_eyes),
        )

    def execute(self, context):
        path = _resolve_path(self.filepath, self.directory)
        name = os.path.basename(path.rstrip("/\\")) or path
        try:
            obj = _target_object(context, self.target)
            target = avatar_target_spec(obj)
            if not target.expr_names:
                raise GaussianHeadsError(f"'{obj.name}' has no expression channels")
            seq = read_any(path)
            source_model, target_model, why = head_models_for(obj, seq.space, target.space, self.source_model,
                                                              flame_model_path(context))
            result = prepare_import(seq, target, self.import_options(context.scene),
                                    source_model=source_model, target_model=target_model)
            missing = set(result.report.missing)
            channels = [i for i, n in enumerate(target.expr_names) if n not in missing]
            curves = keyframes.build_curves(result.sequence, result.frames, expr_channels=channels)
            if not curves:
                raise GaussianHeadsError(f"{path}: nothing to animate, no channel matches the avatar "
                                         f"({result.report.summary()})")
        except GaussianHeadsError as exc:
            message = str(exc)
            if path and path not in message:
                message = f"{path}: {message}"
            self.report({'ERROR'}, message)
            return {'CANCELLED'}
        action_name = f"{obj.name}.{os.path.splitext(name)[0]}"
        try:
            keyframes.write_curves(obj, curves, action_name)
        except Exception as exc:  # rolled back by write_curves; report instead of a traceback
            self.report({'ERROR'}, f"{path}: writing keyframes failed ({exc}); nothing was changed")
            return {'CANCELLED'}
        scene = context.scene
        if self.set_frame_range:
            scene.frame_start = min(scene.frame_start, int(np.floor(result.frames[0])))
            scene.frame_end = max(scene.frame_end, int(np.ceil(result.frames[-1])))
        if why:
            self.report({'WARNING'}, why)
        for w in result.warnings:
            self.report({'WARNING'}, w)
        for level, text in import_notes(result, target, path, fps_overridden=self.override_fps,
                                        aligned=self.align_to_range, hard_limit=EXPR_HARD_LIMIT):
            self.report({level}, text)
        self.report({'INFO'}, f"{result.message(path)}; {len(curves)} F-curves on '{obj.name}'")
        return {'FINISHED'}


def sequence_from_object(obj, scene) -> ParamSequence:
    """The avatar's animated parameters over the scene's frame range, at the scene's rate."""
    props = obj.gaussian_heads
    frames = np.arange(scene.frame_start, scene.frame_end + 1, dtype=np.float64)
    T = len(frames)
    target = avatar_target_spec(obj)
    expr = np.zeros((T, len(target.expr_names)), np.float32)
    for i, ch in enumerate(props.expr):
        expr[:, i] = keyframes.sample_property_curves(obj, frames, keyframes.expr_path(i), 0, ch.value)
    fields = {}
    for field_name, path, n in keyframes.JOINT_PATHS:
        current = getattr(props, path.split(".", 1)[1])
        cols = [keyframes.sample_property_curves(obj, frames, path, k, current[k]) for k in range(n)]
        fields[field_name] = np.stack(cols, 1)
    fields["eyes"] = fields["eyes"].reshape(T, 2, 3)
    fps = scene.render.fps / scene.render.fps_base
    return ParamSequence(fps=fps, expr_names=target.expr_names, expr=expr, shape=None, space=target.space,
                         source_format="blender", **fields)


class GAUSSIAN_HEADS_OT_export_animation(bpy.types.Operator, ExportHelper):
    """Export the avatar's animated expression and head pose over the scene's frame range"""

    bl_idname = "gaussian_heads.export_animation"
    bl_label = "Export Animation"
    bl_options = {'REGISTER'}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz;*.csv", options={'HIDDEN'})
    file_format: EnumProperty(
        name="Format", items=(('NPZ', "FLAME-style .npz", "flame_param-style arrays plus fps and channel names"),
                              ('LIVE_LINK_CSV', "Live Link Face .csv", "52 ARKit blendshapes + head/eye rotation")),
        default='NPZ')
    target: StringProperty(name="Avatar", description="Avatar to export (empty: the active object)", default="")

    @classmethod
    def poll(cls, context):
        return poll_active_avatar(cls, context) is not None

    def check(self, context):
        ext = ".csv" if self.file_format == 'LIVE_LINK_CSV' else ".npz"
        if self.filename_ext != ext:
            self.filename_ext = ext
        return ExportHelper.check(self, context)

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        try:
            obj = _target_object(context, self.target)
            seq = sequence_from_object(obj, context.scene)
            fmt = "live_link_csv" if self.file_format == 'LIVE_LINK_CSV' else "npz"
            written = write_any(seq, path, fmt)
        except (GaussianHeadsError, OSError) as exc:
            message = str(exc)
            if path not in message:
                message = f"{path}: {message}"
            self.report({'ERROR'}, message)
            return {'CANCELLED'}
        for note in written.notes:
            self.report({'WARNING'}, f"{os.path.basename(path)}: {note}")
        self.report({'INFO'}, f"{path}: {seq.n_frames} frames at {seq.fps:g} fps written")
        return {'FINISHED'}


classes = (GAUSSIAN_HEADS_OT_import_animation, GAUSSIAN_HEADS_OT_export_animation)
register, unregister = register_file_operators(
    classes, import_entry=(GAUSSIAN_HEADS_OT_import_animation.bl_idname, IMPORT_LABEL),
    export_entry=(GAUSSIAN_HEADS_OT_export_animation.bl_idname, EXPORT_LABEL))
