"""The seed gallery: thumbnails of sampled identities, rendered by our CPU path.

Thumbnails are PNGs cached under the extension's user folder
(``bpy.utils.extension_path_user(<extension>, path="previews")``), one per (source, seed,
truncation, size); they are loaded into a ``bpy.utils.previews`` collection and shown with
``template_icon_view`` on ``scene.gaussian_heads.gallery`` (picking one sets the sample seed).
Identities come from the engine's source registry (``engine.avatar.sources``); the gallery's enum
items are handed to ``properties`` at registration (properties never import operators).
"""

from __future__ import annotations

import hashlib
import os
import time

import bpy
import bpy.utils.previews
from bpy.props import IntProperty

from ..engine.errors import GaussianHeadsError
from ..properties import set_gallery_items
from .sample import SampleSettings, sample_identity, source_model_spec

THUMBNAIL_SIZE = 128
BACKGROUND = (0.16, 0.16, 0.16)  # display sRGB behind the thumbnails
_EXTENSION = __package__.rpartition(".")[0]  # "bl_ext.<repo>.gaussian_heads"
_previews = None
_items_cache: list = []  # Blender needs the enum items kept alive while shown


def preview_dir() -> str:
    return bpy.utils.extension_path_user(_EXTENSION, path="previews", create=True)


def thumbnail_name(settings: SampleSettings, size: int = THUMBNAIL_SIZE) -> str:
    spec = settings.spec()
    tag = spec.name if not spec.path else \
        f"{spec.name}-{hashlib.sha1(os.path.abspath(spec.path).encode()).hexdigest()[:10]}"
    return f"{tag}_seed{settings.seed}_t{settings.truncation:.3f}_n{settings.n_gaussians}_{size}px.png"


def thumbnail_path(settings: SampleSettings, size: int = THUMBNAIL_SIZE) -> str:
    return os.path.join(preview_dir(), thumbnail_name(settings, size))


def render_thumbnail(settings: SampleSettings, size: int = THUMBNAIL_SIZE) -> str:
    """Sample, pose neutral, render ``size``² on the CPU and cache the PNG; returns its path."""
    import numpy as np

    from ..engine.raster.cli_render import render_identity
    from ..engine.scene_render import write_png

    path = thumbnail_path(settings, size)
    if os.path.isfile(path):
        return path
    identity = sample_identity(settings)
    rgb = render_identity(identity, identity.neutral_params(), size, size, background=BACKGROUND)
    write_png(path, np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2))
    return path


def gallery_settings(scene_props, seed: int) -> SampleSettings:
    return SampleSettings(source=scene_props.sample_source.lower(),
                          checkpoint=bpy.path.abspath(scene_props.sample_checkpoint),
                          seed=int(seed), truncation=float(scene_props.sample_truncation),
                          n_gaussians=int(scene_props.sample_gaussians),
                          model_spec=source_model_spec(scene_props.sample_source))


def gallery_seeds(scene_props) -> range:
    first = int(scene_props.gallery_first_seed)
    return range(first, first + int(scene_props.gallery_count))


def _icon_id(path: str) -> int:
    key = os.path.basename(path)
    if key not in _previews:
        _previews.load(key, path, 'IMAGE')
    return _previews[key].icon_id


def gallery_enum_items(scene_props, context):
    """Items of ``scene.gaussian_heads.gallery``: one per seed with a cached thumbnail."""
    items = []
    if _previews is not None:
        for i, seed in enumerate(gallery_seeds(scene_props)):
            path = thumbnail_path(gallery_settings(scene_props, seed))
            if os.path.isfile(path):
                items.append((str(seed), f"Seed {seed}", f"Sample with seed {seed}", _icon_id(path), i))
    if not items:
        items.append(('NONE', "No thumbnails", "Build the gallery first", 'IMAGE_DATA', 0))
    _items_cache[:] = items
    return _items_cache


def missing_seeds(scene_props) -> list[int]:
    return [s for s in gallery_seeds(scene_props)
            if not os.path.isfile(thumbnail_path(gallery_settings(scene_props, s)))]


class GAUSSIAN_HEADS_OT_build_gallery(bpy.types.Operator):
    """Render thumbnails of the gallery's seeds (cached in the extension's user folder)"""

    bl_idname = "gaussian_heads.build_gallery"
    bl_label = "Build Gallery"
    bl_options = {'REGISTER'}

    size: IntProperty(name="Size", default=THUMBNAIL_SIZE, min=32, max=512)

    _timer = None
    _todo: list
    _done = 0

    @classmethod
    def poll(cls, context):
        if context.scene is None:
            cls.poll_message_set("No active scene")
            return False
        props = context.scene.gaussian_heads
        if props.sample_source == 'CHECKPOINT' and not props.sample_checkpoint:
            cls.poll_message_set("Choose a generator checkpoint first")
            return False
        return True

    def _render_one(self, context, seed) -> None:
        render_thumbnail(gallery_settings(context.scene.gaussian_heads, seed), self.size)

    def execute(self, context):
        todo = missing_seeds(context.scene.gaussian_heads)
        start = time.perf_counter()
        try:
            for seed in todo:
                self._render_one(context, seed)
        except (GaussianHeadsError, OSError) as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Gallery: {len(todo)} thumbnail(s) in {time.perf_counter() - start:.1f} s")
        _tag_redraw(context)
        return {'FINISHED'}

    def invoke(self, context, event):
        self._todo = missing_seeds(context.scene.gaussian_heads)
        if not self._todo:
            return {'FINISHED'}
        self._done = 0
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.progress_begin(0, len(self._todo))
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC':
            return self._finish(context, cancelled=True)
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        seed = self._todo[self._done]
        try:
            self._render_one(context, seed)
        except (GaussianHeadsError, OSError) as exc:
            self.report({'ERROR'}, str(exc))
            return self._finish(context, cancelled=True)
        self._done += 1
        context.window_manager.progress_update(self._done)
        if context.area is not None:
            context.area.header_text_set(f"Gallery: {self._done}/{len(self._todo)} thumbnails (Esc stops)")
        _tag_redraw(context)
        if self._done >= len(self._todo):
            return self._finish(context, cancelled=False)
        return {'RUNNING_MODAL'}

    def _finish(self, context, cancelled):
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.area is not None:
            context.area.header_text_set(None)
        _tag_redraw(context)
        return {'CANCELLED'} if cancelled else {'FINISHED'}


def _tag_redraw(context):
    screen = getattr(context, "screen", None)
    if screen is not None:
        for area in screen.areas:
            area.tag_redraw()


classes = (GAUSSIAN_HEADS_OT_build_gallery,)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    global _previews
    _register_classes()
    _previews = bpy.utils.previews.new()
    set_gallery_items(gallery_enum_items)


def unregister():
    global _previews
    set_gallery_items(None)
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    _items_cache.clear()
    _unregister_classes()
