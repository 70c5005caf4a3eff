"""File > Import > GaussianAvatars Avatar: a GaussianAvatars-format folder (or its point_cloud.ply) as
an avatar on the FLAME model chosen in the preferences, with its flame_param.npz as its animation.

Thin: the engine's source registry builds the identity (``engine.avatar.gaussian_avatars``); the
animation goes through the ordinary Import Animation operator. Any error leaves the scene as it was.
"""

from __future__ import annotations

import os

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..engine.errors import GaussianHeadsError
from . import storage
from .context import poll_object_mode, select_only
from .file_io import register_file_operators
from .sample import SampleSettings, add_avatar, sample_identity, source_model_spec


def avatar_folder_path(filepath: str, directory: str) -> str:
    """The chosen point_cloud.ply, or the folder when only a folder was chosen."""
    path = bpy.path.abspath(filepath) if filepath else ""
    if path and os.path.isfile(path):
        return path
    folder = bpy.path.abspath(directory) if directory else path
    return folder.rstrip("/\\")


class GAUSSIAN_HEADS_OT_import_gaussian_avatars(bpy.types.Operator, ImportHelper):
    """Import a GaussianAvatars-format avatar (folder or point_cloud.ply with flame_param.npz) on your FLAME 2023 model"""

    bl_idname = "gaussian_heads.import_gaussian_avatars"
    bl_label = "Import GaussianAvatars Avatar"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    import_animation: BoolProperty(
        name="Import Animation", default=True,
        description="Key the avatar with its own flame_param.npz (the training sequence)")

    @classmethod
    def poll(cls, context):
        return poll_object_mode(cls, context)

    def execute(self, context):
        path = avatar_folder_path(self.filepath, self.directory)
        settings = SampleSettings(source="gaussian_avatars", checkpoint=path, seed=0,
                                  model_spec=source_model_spec("gaussian_avatars", context))
        try:
            identity = sample_identity(settings)
            name = os.path.basename(os.path.dirname(identity.meta["gaussian_avatars"])) or "GaussianAvatar"
            obj = add_avatar(name, identity, settings, context.collection)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        select_only(context, [obj])
        self.report({'INFO'}, f"Imported '{obj.name}': {storage.gaussian_count(identity):,} Gaussians on "
                              f"{identity.model.name}")
        params = os.path.join(os.path.dirname(identity.meta["gaussian_avatars"]), "flame_param.npz")
        if self.import_animation and os.path.isfile(params):
            try:
                bpy.ops.gaussian_heads.import_animation(filepath=params, target=obj.name,
                                                        start_frame=context.scene.frame_start)
            except RuntimeError as exc:   # the avatar stays; its take did not import (reported)
                self.report({'WARNING'}, f"'{obj.name}' imported without its animation: {exc}")
        from .color_management import after_avatar_added  # 'Standard' view for avatar colours
        after_avatar_added(self, context.scene)
        return {'FINISHED'}


register, unregister = register_file_operators(
    (GAUSSIAN_HEADS_OT_import_gaussian_avatars,),
    import_entry=(GAUSSIAN_HEADS_OT_import_gaussian_avatars.bl_idname, "GaussianAvatars Avatar (.ply)"))
