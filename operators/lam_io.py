"""LAM avatars: File > Import > LAM Avatar (.zip) (and drag-and-drop), File > Export > LAM Avatar.

Import reads every zip first (``engine.io.lam.read_lam_zip``), so a bad file leaves the scene
untouched, then adds one avatar per zip (source LAM; the head model is packed into the .blend).
The zip's ``animation.glb`` becomes the avatar's action when it holds head or morph animation
(``engine.animation.formats.lam_glb``). Export writes the active avatar, whatever its source.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..engine.errors import GaussianHeadsError
from . import storage
from .context import poll_active_avatar, select_only
from .sample import SampleSettings, fill_avatar_properties


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


class GAUSSIAN_HEADS_OT_import_lam(bpy.types.Operator, ImportHelper):
    """Import LAM avatar zips (skin.glb, offset.ply, vertex_order.json, animation.glb) as avatars"""

    bl_idname = "gaussian_heads.import_lam"
    bl_label = "Import LAM Avatar"
    bl_options = {'REGISTER', 'UNDO'}

    filter_glob: StringProperty(default="*.zip", options={'HIDDEN'})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    animation: BoolProperty(name="Template Animation", default=False,
                            description="Key the zip's animation.glb (LAM's template head motion) onto the avatar")

    @classmethod
    def poll(cls, context):
        if context.mode != 'OBJECT':
            cls.poll_message_set("Switch to Object Mode first")
            return False
        return context.scene is not None

    def invoke(self, context, event):
        if self.directory and len(self.files):   # drag-and-drop
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)

    def paths(self) -> list[str]:
        if self.directory and len(self.files):
            return [os.path.join(self.directory, f.name) for f in self.files if f.name]
        return [bpy.path.abspath(self.filepath)] if self.filepath else []

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
        made, notes = [], []
        try:
            for path, avatar in loaded:
                name = os.path.splitext(os.path.basename(path))[0] or "LAM"
                obj = storage.create_avatar_object(name, avatar.identity, context.collection)
                made.append(obj)
                fill_avatar_properties(obj, avatar.identity, SampleSettings(source="lam", checkpoint=path))
                if self.animation:
                    note = apply_template_animation(obj, avatar, context.scene)
                    if note:
                        notes.append(note)
        except GaussianHeadsError as exc:
            for obj in made:
                storage.remove_avatar_object(obj)
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
        obj = poll_active_avatar(cls, context)
        if obj is None:
            return False
        if not storage.has_identity(obj):
            cls.poll_message_set(f"'{obj.name}' holds no stored Gaussians")
            return False
        return True

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


class GAUSSIAN_HEADS_FH_lam(bpy.types.FileHandler):
    """Drag-and-drop of LAM avatar zips into the 3D viewport or outliner."""

    bl_idname = "GAUSSIAN_HEADS_FH_lam"
    bl_label = "LAM Avatar"
    bl_import_operator = GAUSSIAN_HEADS_OT_import_lam.bl_idname
    bl_file_extensions = ".zip"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type in {'VIEW_3D', 'OUTLINER'}


def _menu_import(self, context):
    self.layout.operator(GAUSSIAN_HEADS_OT_import_lam.bl_idname, text="LAM Avatar (.zip)")


def _menu_export(self, context):
    self.layout.operator(GAUSSIAN_HEADS_OT_export_lam.bl_idname, text="LAM Avatar (.zip)")


classes = (GAUSSIAN_HEADS_OT_import_lam, GAUSSIAN_HEADS_OT_export_lam, GAUSSIAN_HEADS_FH_lam)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    _unregister()
