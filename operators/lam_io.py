"""LAM avatars: File > Import > LAM Avatar (.zip) (and drag-and-drop), File > Export > LAM Avatar.

Import reads every zip first (``engine.io.lam.read_lam_zip``), so a bad file leaves the scene
untouched, then adds one avatar per zip (source LAM; the head model is packed into the .blend).
The zip's ``animation.glb`` becomes the avatar's action when it holds head or morph animation
(``engine.animation.formats.lam_glb``). Export writes the active avatar, whatever its source.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..engine.errors import GaussianHeadsError
from . import storage
from .context import poll_avatar_with_identity, poll_object_mode, select_only
from .file_io import MultiFileImport, ViewportDrop, add_all_or_none, file_stem, register_file_operators
from .sample import SampleSettings, add_avatar


def read_lam_avatars(paths: list[str]) -> list:
    """[(path, LamAvatar)] for every zip (all read before anything is added)."""
    from ..engine.io.lam import read_lam_zip

    return [(p, read_lam_zip(p)) for p in paths]


def apply_template_animation(obj, avatar, scene) -> str | None:
    """Key ``avatar``'s animation.glb onto ``obj``; a note for the report (None: nothing keyed)."""
    if not avatar.animation_glb:
        return None
    from ..engine.animation.formats.lam_glb import sequence_from_glb
    from . import keyframes

    sequence = sequence_from_glb("animation.glb", avatar.animation_glb, avatar.identity.model)
    if sequence is None:
        return "animation.glb holds no head or morph animation"
    import numpy as np

    scene_fps = scene.render.fps / scene.render.fps_base
    frames = scene.frame_start + np.arange(sequence.n_frames) * (scene_fps / sequence.fps)
    keyframes.write_curves(obj, keyframes.build_curves(sequence, frames), f"{obj.name}.animation")
    return f"animation.glb: {sequence.n_frames} frames at {sequence.fps:g} fps keyed"


class GAUSSIAN_HEADS_OT_import_lam(bpy.types.Operator, MultiFileImport):
    """Import LAM avatar zips (skin.glb, offset.ply, vertex_order.json, animation.glb) as avatars"""

    bl_idname = "gaussian_heads.import_lam"
    bl_label = "Import LAM Avatar"
    bl_options = {'REGISTER', 'UNDO'}

    filter_glob: StringProperty(default="*.zip", options={'HIDDEN'})
    animation: BoolProperty(name="Template Animation", default=False,
                            description="Key the zip's animation.glb (LAM's template head motion) onto the avatar")

    @classmethod
    def poll(cls, context):
        return poll_object_mode(cls, context)

    def execute(self, context):
        paths = self.paths()
        if not paths:
            self.report({'ERROR'}, "Choose a LAM avatar .zip to import")
            return {'CANCELLED'}
        try:
            loaded = read_lam_avatars(paths)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        notes = []

        def add(path, avatar):
            return add_avatar(file_stem(path, "LAM"), avatar.identity, SampleSettings(source="lam", checkpoint=path),
                              context.collection)

        def key_animation(obj, avatar):
            note = apply_template_animation(obj, avatar, context.scene)
            if note:
                notes.append(note)

        try:
            made = add_all_or_none(loaded, add, storage.remove_avatar_object,
                                   then=key_animation if self.animation else None)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        select_only(context, made)
        for note in notes:
            self.report({'INFO'}, note)
        total = sum(len(a.identity) for _, a in loaded)
        self.report({'INFO'}, f"Imported {len(loaded)} LAM avatar(s), {total:,} Gaussians")
        from .color_management import after_avatar_added
        after_avatar_added(self, context.scene)
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_export_lam(bpy.types.Operator, ExportHelper):
    """Write the active avatar as a LAM avatar zip (for LAM's web renderer and OpenAvatarChat)"""

    bl_idname = "gaussian_heads.export_lam"
    bl_label = "Export LAM Avatar"
    bl_options = {'REGISTER'}

    filename_ext = ".zip"
    filter_glob: StringProperty(default="*.zip", options={'HIDDEN'})

    @classmethod
    def poll(cls, context):
        return poll_avatar_with_identity(cls, context) is not None

    def execute(self, context):
        from ..engine.io.lam import write_lam_zip

        if not self.filepath:
            self.report({'ERROR'}, "Choose a file to write")
            return {'CANCELLED'}
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), ".zip")
        try:
            identity = storage.load_identity(context.active_object)
            write_lam_zip(identity, path)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote LAM avatar {path}")
        return {'FINISHED'}


class GAUSSIAN_HEADS_FH_lam(ViewportDrop, bpy.types.FileHandler):
    """Drag-and-drop of LAM avatar zips into the 3D viewport or outliner."""

    bl_idname = "GAUSSIAN_HEADS_FH_lam"
    bl_label = "LAM Avatar"
    bl_import_operator = GAUSSIAN_HEADS_OT_import_lam.bl_idname
    bl_file_extensions = ".zip"


classes = (GAUSSIAN_HEADS_OT_import_lam, GAUSSIAN_HEADS_OT_export_lam, GAUSSIAN_HEADS_FH_lam)
register, unregister = register_file_operators(
    classes, import_entry=(GAUSSIAN_HEADS_OT_import_lam.bl_idname, "LAM Avatar (.zip)"),
    export_entry=(GAUSSIAN_HEADS_OT_export_lam.bl_idname, "LAM Avatar (.zip)"))
