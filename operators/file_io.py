"""What the File > Import / Export operators share: many-file import with drag-and-drop, the
viewport drop handler, adding every file's object or none, and registering the menu entries.

Used by ``splat_io``, ``lam_io``, ``ga_import`` and ``anim_io``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import bpy
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..engine.errors import GaussianHeadsError


class MultiFileImport(ImportHelper):
    """ImportHelper for one or many files; a FileHandler's drop (``directory`` and ``files`` already
    set) imports at once, without the file browser."""

    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})

    def invoke(self, context, event):
        if self.directory and len(self.files):   # drag-and-drop: the files are known
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)

    def paths(self) -> list[str]:
        """The chosen (or dropped) files, absolute."""
        if self.directory and len(self.files):
            return [os.path.join(self.directory, f.name) for f in self.files if f.name]
        return [bpy.path.abspath(self.filepath)] if self.filepath else []


class ViewportDrop:
    """FileHandler mixin: accept files dropped on the 3D viewport or the outliner."""

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type in {'VIEW_3D', 'OUTLINER'}


def file_stem(path: str, fallback: str) -> str:
    """The object name for an imported file: its name without extension (``fallback`` if empty)."""
    return os.path.splitext(os.path.basename(path))[0] or fallback


def add_all_or_none(loaded: Iterable[tuple[str, object]], add: Callable, remove: Callable,
                    then: Callable | None = None) -> list:
    """``obj = add(path, item)`` for every ``(path, item)``, then ``then(obj, item)`` if given; when
    one raises ``GaussianHeadsError``, every object added so far is removed with ``remove`` and the
    error is raised again."""
    made = []
    try:
        for path, item in loaded:
            made.append(add(path, item))
            if then is not None:
                then(made[-1], item)
    except GaussianHeadsError:
        for obj in made:
            remove(obj)
        raise
    return made


def register_file_operators(classes, import_entry: tuple[str, str] | None = None,
                            export_entry: tuple[str, str] | None = None):
    """``(register, unregister)`` for ``classes`` and their File > Import / Export menu entries, each
    an ``(operator bl_idname, label)``."""
    register_classes, unregister_classes = bpy.utils.register_classes_factory(classes)
    menus = []
    if import_entry is not None:
        def _menu_import(self, context):
            self.layout.operator(import_entry[0], text=import_entry[1])
        menus.append(("TOPBAR_MT_file_import", _menu_import))
    if export_entry is not None:
        def _menu_export(self, context):
            self.layout.operator(export_entry[0], text=export_entry[1])
        menus.append(("TOPBAR_MT_file_export", _menu_export))

    def register():
        register_classes()
        for menu, draw in menus:
            getattr(bpy.types, menu).append(draw)

    def unregister():
        for menu, draw in reversed(menus):
            getattr(bpy.types, menu).remove(draw)
        unregister_classes()

    return register, unregister
