"""Composite with Cycles/EEVEE: our layer Z-combined with the scene's own render (4.2–5.2).

**Set-up** (``gaussian_heads.composite_setup``) adds a *companion scene* rendered by Gaussian Heads
and compositor nodes in the main scene (``composite_nodes.py``) that Z-combine the two layers, so a
mesh in front of a head hides it and the head hides what is behind it. F12, animation renders and
``blender -b file.blend -a`` all produce the composite: Blender renders every scene a Render
Layers node names, at the main scene's frame and size.

* The companion **links** (never copies) the main view layer's avatars and splat objects and its
  camera, so edits, keyframes and drivers are shared. Its resolution, border, pixel aspect, frame
  range, fps and camera are copied from the main scene by :func:`sync_companion`, run by a
  ``render_pre`` handler (every render, also headless) and a ``depsgraph_update_post`` handler (the
  UI); it also links avatars added later and unlinks removed ones.
* The main scene keeps the avatars but hides them from its own render, so they do not show up
  as grey spheres in the Cycles layer: a Python-free driver sets ``hide_render`` from the
  rendering scene's ``HIDE_PROPERTY`` (1 in the main scene, 0 in the companion; every engine,
  Workbench included), and their ray visibility is turned off (which also hides them in the
  Cycles/EEVEE rendered viewport). An object whose ``hide_render`` the user animates gets no
  driver (only the ray flags: Workbench would draw its points).
* The companion's film is transparent; our premultiplied layer is converted to straight alpha
  for Z Combine's "Use Alpha" mix (``engine/composite.py``). Both layers reach the compositor in
  scene-linear space; the main scene's view transform then applies to both (use 'Standard' for
  avatars' own colours, as the panel says).

Everything set-up changed is recorded on the main scene (:data:`RECORD_KEY`, JSON
``CompositeRecord``); **removal** (``gaussian_heads.composite_remove``) restores exactly that and
deletes the companion. Both operators are undoable.
"""

from __future__ import annotations

import dataclasses

import bpy
from bpy.app.handlers import persistent

from ..engine.composite import (COMPOSITE_ENGINES, HIDE_PROPERTY, RAY_VISIBILITY, SYNCED_RENDER,
                                SYNCED_SCENE, CompositeRecord, HiddenObject)
from ..engine.errors import GaussianHeadsError
from ..render_engine import ENGINE_ID
from . import composite_nodes

RECORD_KEY = "gaussian_heads_composite"         # main scene: JSON CompositeRecord
COMPANION_KEY = "gaussian_heads_companion"      # main scene -> its companion scene
MAIN_KEY = "gaussian_heads_composite_of"        # companion scene -> its main scene


# --- which scenes and objects --------------------------------------------------------------

def companion_of(scene):
    """The companion scene of a composited main scene, or None."""
    companion = scene.get(COMPANION_KEY)
    return companion if isinstance(companion, bpy.types.Scene) else None


def main_of(scene):
    """The main scene a companion scene belongs to, or None."""
    main = scene.get(MAIN_KEY)
    return main if isinstance(main, bpy.types.Scene) else None


def is_composited(scene) -> bool:
    return RECORD_KEY in scene


def composited_objects(view_layer) -> list:
    """Avatars and splat objects in ``view_layer`` (what the companion links)."""
    from ..splat_data import is_splat_object

    return [obj for obj in view_layer.objects if obj.type == 'POINTCLOUD'
            and (obj.gaussian_heads.is_avatar or is_splat_object(obj))]


def main_view_layer(scene, record: CompositeRecord):
    layer = scene.view_layers.get(record.view_layer)
    if layer is None:
        raise GaussianHeadsError(f"scene '{scene.name}' has no view layer '{record.view_layer}' any more "
                                 "(the composite was set up for it)")
    return layer


def read_record(scene) -> CompositeRecord:
    return CompositeRecord.from_json(scene[RECORD_KEY], f"scene '{scene.name}'")


# --- keeping the companion in step -----------------------------------------------------------

def _copy(source, target, names) -> None:
    for name in names:
        value = getattr(source, name)
        if getattr(target, name) != value:   # no write, no update: the handlers stay quiet
            setattr(target, name, value)


def _editable(obj) -> bool:
    return obj.library is None   # library overrides have no library: they are local, editable


def _animated_visibility(obj) -> bool:
    """Whether ``obj``'s hide_render is driven or keyframed already (by the user)."""
    from .keyframes import curves_of

    animation = obj.animation_data
    if animation is None:
        return False
    if animation.drivers.find("hide_render") is not None:
        return True
    curves = curves_of(animation.action, obj) if animation.action is not None else None
    return curves is not None and curves.find("hide_render") is not None


def _add_hide_driver(obj) -> None:
    """hide_render = the active scene's HIDE_PROPERTY: 1 in the main scene, 0 in the companion
    (and 0 in any other scene, where the property is missing and the variable reads nothing)."""
    driver = obj.driver_add("hide_render").driver
    driver.type = 'SUM'                      # no Python: runs with "Auto Run Scripts" off
    variable = driver.variables.new()
    variable.name = "composited"
    variable.type = 'CONTEXT_PROP'
    variable.targets[0].context_property = 'ACTIVE_SCENE'
    variable.targets[0].data_path = f'["{HIDE_PROPERTY}"]'


def hide_from_render(objects) -> tuple[HiddenObject, ...]:
    """Hide ``objects`` from the main scene's render (ray visibility off, per-scene hide_render
    driver unless the user animates hide_render); returns what each had."""
    hidden = []
    for obj in objects:
        driver = not _animated_visibility(obj)
        hidden.append(HiddenObject(obj.name, tuple(bool(getattr(obj, f)) for f in RAY_VISIBILITY),
                                   bool(obj.hide_render), driver, obj.animation_data is not None))
        for flag in RAY_VISIBILITY:
            setattr(obj, flag, False)
        if driver:
            _add_hide_driver(obj)
    return tuple(hidden)


def restore_visibility(hidden: HiddenObject) -> None:
    obj = bpy.data.objects.get(hidden.name)
    if obj is None:          # deleted or renamed since: nothing to restore
        return
    for flag, value in zip(RAY_VISIBILITY, hidden.flags):
        setattr(obj, flag, value)
    if hidden.driver:
        obj.driver_remove("hide_render")
        animation = obj.animation_data
        if (not hidden.had_animation and animation is not None and animation.action is None
                and not animation.drivers and not animation.nla_tracks):
            obj.animation_data_clear()
    obj.hide_render = hidden.hide_render   # the driver wrote the evaluated value back


def sync_companion(main, companion, record: CompositeRecord) -> CompositeRecord:
    """Copy render settings and camera to ``companion``; link the main view layer's avatars and
    splat objects there (hiding new ones from the main render), unlink those gone. Returns the
    record, extended by newly hidden objects. Writes nothing when all is in step."""
    _copy(main.render, companion.render, SYNCED_RENDER)
    _copy(main, companion, SYNCED_SCENE)
    wanted = composited_objects(main_view_layer(main, record))
    if main.camera is not None:
        wanted.append(main.camera)
    if companion.camera != main.camera:
        companion.camera = main.camera
    linked = companion.collection.objects
    for obj in list(linked):
        if obj not in wanted:
            linked.unlink(obj)
    known = {h.name for h in record.hidden}
    new = [obj for obj in wanted if obj.name not in linked and (obj.type != 'POINTCLOUD' or _editable(obj))]
    for obj in new:
        linked.link(obj)
    return record.with_hidden(hide_from_render([obj for obj in new if obj.type == 'POINTCLOUD'
                                                and obj.name not in known]))


def sync_all() -> None:
    """:func:`sync_companion` for every composited scene (damaged ones are skipped, the panel
    shows their error)."""
    for scene in bpy.data.scenes:
        if not is_composited(scene):
            continue
        companion = companion_of(scene)
        if companion is None:
            continue
        try:
            record = read_record(scene)
            updated = sync_companion(scene, companion, record)
        except GaussianHeadsError:
            continue
        if updated is not record:
            scene[RECORD_KEY] = updated.to_json()


@persistent
def _on_render_pre(*_args):
    sync_all()


@persistent
def _on_depsgraph_update(scene, depsgraph):
    if any(is_composited(s) for s in bpy.data.scenes):
        sync_all()


# --- set-up and removal ---------------------------------------------------------------------

def setup(scene, view_layer) -> tuple[object, CompositeRecord]:
    """Add the companion scene and the compositor nodes; returns (companion, record)."""
    objects = composited_objects(view_layer)
    if not objects:
        raise GaussianHeadsError(f"view layer '{view_layer.name}' of scene '{scene.name}' shows no "
                                 "Gaussian Heads avatar or splat object")
    if scene.camera is None:
        raise GaussianHeadsError(f"scene '{scene.name}' has no camera")
    linked = [obj.name for obj in objects if not _editable(obj)]
    if linked:
        raise GaussianHeadsError(f"cannot hide {', '.join(linked)} from the scene's own render: linked from "
                                 "a library (make a library override first)")
    companion = bpy.data.scenes.new(f"{scene.name} · Gaussian Heads")
    companion.render.engine = ENGINE_ID
    companion.render.film_transparent = True
    companion.view_settings.view_transform = 'Standard'   # irrelevant to the composite: no warning
    companion.view_settings.look = 'None'
    companion.view_layers[0].use_pass_z = True
    companion.view_layers[0].use_pass_combined = True
    companion[MAIN_KEY] = scene
    companion[HIDE_PROPERTY] = 0
    scene[HIDE_PROPERTY] = 1

    use_pass_z = view_layer.use_pass_z
    view_layer.use_pass_z = True                 # the Depth output the Z Combine needs
    try:
        record = composite_nodes.build(scene, view_layer.name, companion)
    except Exception:  # noqa: BLE001  leave no companion or property behind, then say why
        view_layer.use_pass_z = use_pass_z
        bpy.data.scenes.remove(companion)
        del scene[HIDE_PROPERTY]
        raise
    record = dataclasses.replace(record, use_pass_z=use_pass_z)
    record = sync_companion(scene, companion, record)
    scene[COMPANION_KEY] = companion
    scene[RECORD_KEY] = record.to_json()
    return companion, record


def remove(scene) -> CompositeRecord:
    """Undo :func:`setup` on ``scene`` exactly as recorded (a damaged record changes nothing)."""
    record = read_record(scene)
    composite_nodes.unbuild(scene, record)
    for hidden in record.hidden:
        restore_visibility(hidden)
    layer = scene.view_layers.get(record.view_layer)
    if layer is not None:
        layer.use_pass_z = record.use_pass_z
    companion = companion_of(scene)
    if companion is not None:
        bpy.data.scenes.remove(companion)
    for key in (RECORD_KEY, COMPANION_KEY, HIDE_PROPERTY):
        if key in scene:
            del scene[key]
    return record


class GAUSSIAN_HEADS_OT_composite_setup(bpy.types.Operator):
    """Render the avatars with Gaussian Heads in a companion scene and Z-combine them with this scene's render (F12, animation and command-line renders)"""

    bl_idname = "gaussian_heads.composite_setup"
    bl_label = "Composite with Gaussian Heads"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        scene = context.scene
        if scene is None or scene.render.engine not in COMPOSITE_ENGINES:
            cls.poll_message_set("the scene must render with Cycles, EEVEE or Workbench")
            return False
        if main_of(scene) is not None:
            cls.poll_message_set("this is a companion scene of a composite")
            return False
        if is_composited(scene):
            cls.poll_message_set("the scene is composited already")
            return False
        if not composited_objects(context.view_layer):
            cls.poll_message_set("the view layer shows no Gaussian Heads avatar or splat object")
            return False
        return True

    def execute(self, context):
        scene = context.scene
        try:
            companion, record = setup(scene, context.view_layer)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Gaussian Heads: {len(record.hidden)} object(s) render in scene "
                              f"'{companion.name}', Z-combined with '{scene.name}'")
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_composite_remove(bpy.types.Operator):
    """Remove the Gaussian Heads composite: delete the companion scene and restore this scene's nodes and object visibility"""

    bl_idname = "gaussian_heads.composite_remove"
    bl_label = "Remove Composite"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        if context.scene is None or not is_composited(context.scene):
            cls.poll_message_set("the scene has no Gaussian Heads composite")
            return False
        return True

    def execute(self, context):
        try:
            remove(context.scene)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Gaussian Heads: composite removed from '{context.scene.name}'")
        return {'FINISHED'}


classes = (GAUSSIAN_HEADS_OT_composite_setup, GAUSSIAN_HEADS_OT_composite_remove)
_register, _unregister = bpy.utils.register_classes_factory(classes)
_HANDLERS = ((bpy.app.handlers.render_pre, _on_render_pre),
             (bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update))


def register():
    _register()
    for handlers, func in _HANDLERS:
        handlers.append(func)


def unregister():
    for handlers, func in _HANDLERS:
        if func in handlers:
            handlers.remove(func)
    _unregister()
