"""Import and export Gaussian splat files (PLY, SPZ, .splat) on every supported Blender.

Import: File > Import > Gaussian Splats, and drag-and-drop (a FileHandler). Each file becomes a
static splat object (``splat_data``: Blender 5.3's attribute layout). Every file is read before
anything is added, so a bad file leaves the scene untouched. Blender 5.3's own PLY/SPZ importers
stay where they are; this one adds ``.splat`` and Blenders before 5.3.
Export: File > Export > Gaussian Splats, for the active splat object or avatar (the avatar posed
at the current frame, the way Export Gaussian PLY poses it).
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..engine.errors import GaussianHeadsError
from ..engine.io.ply import vertex_property_names
from .. import avatar_pose, splat_data
from .context import poll_object_mode, select_only
from .file_io import MultiFileImport, ViewportDrop, add_all_or_none, file_stem, register_file_operators

IMPORT_GLOB = "*.ply;*.spz;*.splat"
SPACE_ITEMS = (('LOCAL', "Local", "The avatar's head-model frame (+Y up), or the splat object's own space"),
               ('WORLD', "World", "Blender world space, with the object's transform"))


def read_for_blender(path: str):
    """A splat file's Gaussians in the frame Blender 5.3's own importers give them (.spz: Z-up)."""
    from ..engine.io import detect_format
    from ..engine.io.spz import BLENDER_FROM_RDF

    fmt = detect_format(path)
    gaussians = fmt.read(path)
    return gaussians.transformed(BLENDER_FROM_RDF) if fmt.name == "spz" else gaussians


def write_from_blender(path: str, gaussians, name: str):
    """Write Blender-frame Gaussians so that Blender 5.3's importer reads them back in place."""
    from ..engine.io import write_splats
    from ..engine.io.spz import BLENDER_FROM_RDF

    if name == "spz":
        gaussians = gaussians.transformed(BLENDER_FROM_RDF.T)
    write_splats(path, gaussians, name)


def export_gaussians(obj, depsgraph, space: str):
    """The Gaussians ``obj`` (an avatar or splat object) shows now, in ``space``."""
    from ..engine.avatar.frames import MODEL_TO_BLENDER
    from ..render_engine import head_params
    from . import storage

    evaluated = obj.evaluated_get(depsgraph)
    matrix = np.array(evaluated.matrix_world, np.float64)
    if obj.gaussian_heads.is_avatar:
        identity = storage.load_identity(evaluated)
        gaussians = identity.pose(head_params(evaluated, identity))
        matrix = matrix @ MODEL_TO_BLENDER
    elif splat_data.is_splat_object(evaluated):
        gaussians = splat_data.read_gaussians(evaluated.data)
    else:
        raise GaussianHeadsError(f"'{obj.name}' is neither a Gaussian head avatar nor a splat object")
    return gaussians.transformed(matrix) if space == 'WORLD' else gaussians


def _is_gaussian_avatars_ply(path: str) -> bool:
    """A PLY whose Gaussians carry ``binding_0`` (GaussianAvatars format). Unreadable: False (the
    splat reader then reports the problem)."""
    if not path.lower().endswith(".ply"):
        return False
    try:
        return "binding_0" in vertex_property_names(path)
    except GaussianHeadsError:
        return False


class GAUSSIAN_HEADS_OT_import_splats(bpy.types.Operator, MultiFileImport):
    """Import Gaussian splat files (3DGS PLY, Niantic SPZ, antimatter15 .splat) as splat objects"""

    bl_idname = "gaussian_heads.import_splats"
    bl_label = "Import Gaussian Splats"
    bl_options = {'REGISTER', 'UNDO'}

    filter_glob: StringProperty(default=IMPORT_GLOB, options={'HIDDEN'})

    @classmethod
    def poll(cls, context):
        return poll_object_mode(cls, context)

    def execute(self, context):
        paths = self.paths()
        if not paths:
            self.report({'ERROR'}, "Choose a splat file to import")
            return {'CANCELLED'}
        if len(paths) == 1 and _is_gaussian_avatars_ply(paths[0]):
            # face-bound Gaussians (binding_0): an avatar on the user's FLAME, not static splats
            try:
                return bpy.ops.gaussian_heads.import_gaussian_avatars('EXEC_DEFAULT', filepath=paths[0])
            except RuntimeError as exc:  # its error (e.g. no FLAME chosen), already naming the files
                self.report({'ERROR'}, str(exc).removeprefix("Error: ").strip())
                return {'CANCELLED'}
        try:
            loaded = [(p, read_for_blender(p)) for p in paths]   # all files first: nothing half-imported
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        try:
            made = add_all_or_none(
                loaded, lambda path, gaussians: splat_data.create_splat_object(
                    file_stem(path, "Splats"), gaussians, context.collection),
                splat_data.remove_splat_object)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        select_only(context, made)
        total = sum(len(g) for _, g in loaded)
        self.report({'INFO'}, f"Imported {total:,} Gaussians from {len(loaded)} file(s)")
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_export_splats(bpy.types.Operator, ExportHelper):
    """Write the active splat object, or avatar posed at the current frame, as PLY or SPZ"""

    bl_idname = "gaussian_heads.export_splats"
    bl_label = "Export Gaussian Splats"
    bl_options = {'REGISTER'}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply;*.spz", options={'HIDDEN'})
    file_format: EnumProperty(
        name="Format",
        items=(('PLY', "3DGS PLY", "The INRIA 3D Gaussian Splatting PLY (exact, any SH degree)"),
               ('SPZ', "SPZ", "Niantic's compressed format (version 3, about 10x smaller, quantised)")),
        default='PLY')
    space: EnumProperty(name="Space", items=SPACE_ITEMS, default='LOCAL')

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None:
            cls.poll_message_set("Select a Gaussian head avatar or splat object")
            return False
        if not (obj.gaussian_heads.is_avatar or splat_data.is_splat_object(obj)):
            cls.poll_message_set(f"'{obj.name}' is neither a Gaussian head avatar nor a splat object")
            return False
        return True

    def check(self, context):
        self.filename_ext = "." + self.file_format.lower()
        return ExportHelper.check(self, context)

    def execute(self, context):
        self.filename_ext = "." + self.file_format.lower()
        if not self.filepath:
            self.report({'ERROR'}, "Choose a file to write")
            return {'CANCELLED'}
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), self.filename_ext)
        try:
            gaussians = export_gaussians(context.active_object, context.evaluated_depsgraph_get(), self.space)
            write_from_blender(path, gaussians, self.file_format.lower())
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote {len(gaussians):,} Gaussians to {path}")
        return {'FINISHED'}


class GAUSSIAN_HEADS_FH_splats(ViewportDrop, bpy.types.FileHandler):
    """Drag-and-drop of splat files into the 3D viewport or outliner."""

    bl_idname = "GAUSSIAN_HEADS_FH_splats"
    bl_label = "Gaussian Splats"
    bl_import_operator = GAUSSIAN_HEADS_OT_import_splats.bl_idname
    bl_file_extensions = ".ply;.spz;.splat"


classes = (GAUSSIAN_HEADS_OT_import_splats, GAUSSIAN_HEADS_OT_export_splats, GAUSSIAN_HEADS_FH_splats)
_register, _unregister = register_file_operators(
    classes, import_entry=(GAUSSIAN_HEADS_OT_import_splats.bl_idname, "Gaussian Splats (.ply/.spz/.splat)"),
    export_entry=(GAUSSIAN_HEADS_OT_export_splats.bl_idname, "Gaussian Splats (.ply/.spz)"))


@bpy.app.handlers.persistent
def _native_after_load(_filepath):
    """Blender 5.3+: splat objects saved by 4.2-5.2 become native GAUSSIAN_SPLAT point clouds."""
    splat_data.make_all_native()


def register():
    _register()
    bpy.app.handlers.load_post.append(_native_after_load)
    # avatars follow the frame and their sliders: native splats on 5.3+, Solid view before
    for name, function in avatar_pose.HANDLERS:
        getattr(bpy.app.handlers, name).append(function)


def unregister():
    for name, function in reversed(avatar_pose.HANDLERS):
        if function in getattr(bpy.app.handlers, name):
            getattr(bpy.app.handlers, name).remove(function)
    if _native_after_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_native_after_load)
    _unregister()
