"""The 'Standard' view transform for scenes that show Gaussian avatars.

Gaussian colours are display-referred sRGB (as in every 3DGS file); the render engine hands them
to Blender as scene-linear values that the 'Standard' view transform maps back to the same 8-bit
values. Blender's default view transform, AgX (and Filmic), tone-maps them again: avatars look
washed out (5.4/255 mean difference, docs/DEVELOPING.md).

So, while ``scene.gaussian_heads.auto_standard_view`` is on, a scene gets 'Standard' (look
'None') at the two moments a user starts working with avatars, and the info log says so:

* the scene's render engine switches to Gaussian Heads: a ``depsgraph_update_post`` handler
  compares each scene's engine with the one it saw last. It fires in the UI and headless (a
  ``bpy.msgbus`` subscription fires only in the UI event loop, and is dropped on file load), and
  it leaves a later, deliberate choice of AgX alone: it acts on the switch, not on the state.
* Sample Identity adds an avatar (:func:`after_avatar_added`).

A file loaded with another view transform is not changed: the render panel shows the state and
the one-click fix (:class:`GAUSSIAN_HEADS_OT_use_standard_view`), and a render warns.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent
from bpy.props import StringProperty

from ..render_engine import ENGINE_ID

STANDARD_VIEW = 'Standard'
WHY = "avatar colours are sRGB values that AgX and Filmic wash out"

#: Render engine last seen per scene (``session_uid``), to act on switches only.
_seen_engines: dict[int, str] = {}


def view_problem(scene) -> str | None:
    """What in the scene's colour management alters avatar colours, or None when nothing does."""
    view = scene.view_settings
    if view.view_transform != STANDARD_VIEW:
        return f"view transform '{view.view_transform}'"
    if view.look != 'None':
        return f"look '{view.look}'"
    return None


def use_standard_view(scene) -> str | None:
    """Set view transform 'Standard' and look 'None'. Returns what it replaced (None: nothing)."""
    problem = view_problem(scene)
    if problem is not None:
        scene.view_settings.view_transform = STANDARD_VIEW
        scene.view_settings.look = 'None'
    return problem


def change_message(scene, replaced: str, reason: str = "") -> str:
    because = f" ({reason})" if reason else ""
    return (f"Gaussian Heads: scene '{scene.name}' now uses the 'Standard' view transform instead "
            f"of {replaced}{because}: {WHY}")


def after_avatar_added(operator, scene) -> None:
    """Called by operators that add an avatar: switch to 'Standard' and report it; on 5.3+ also
    lock the interface during renders (native splats are posed per frame; ``avatar_pose``)."""
    from ..avatar_pose import lock_interface_for_native

    if lock_interface_for_native(scene):
        operator.report({'INFO'}, f"Gaussian Heads: scene '{scene.name}' now locks the interface while "
                                  "rendering, so each frame's pose is written before Cycles/EEVEE draw it")
    if not scene.gaussian_heads.auto_standard_view:
        return
    replaced = use_standard_view(scene)
    if replaced is not None:
        operator.report({'INFO'}, change_message(scene, replaced, "an avatar was added"))


class GAUSSIAN_HEADS_OT_use_standard_view(bpy.types.Operator):
    """Use the 'Standard' view transform (look 'None'): Gaussian avatars then render with their own colours"""

    bl_idname = "gaussian_heads.use_standard_view"
    bl_label = "Use Standard View"
    bl_options = {'REGISTER', 'UNDO'}

    scene: StringProperty(name="Scene", description="Scene to change (empty: the current scene)",
                          default="", options={'HIDDEN', 'SKIP_SAVE'})
    reason: StringProperty(name="Reason", default="", options={'HIDDEN', 'SKIP_SAVE'})

    def execute(self, context):
        scene = bpy.data.scenes.get(self.scene) if self.scene else context.scene
        if scene is None:
            self.report({'ERROR'}, f"no scene named '{self.scene}'")
            return {'CANCELLED'}
        replaced = use_standard_view(scene)
        if replaced is None:
            self.report({'INFO'}, f"Gaussian Heads: scene '{scene.name}' already uses the 'Standard' view")
        else:
            self.report({'INFO'}, change_message(scene, replaced, self.reason))
        return {'FINISHED'}


def _switched_to_engine(scene) -> None:
    reason = "the scene switched to the Gaussian Heads engine"
    try:  # an operator's report is what reaches the info log
        bpy.ops.gaussian_heads.use_standard_view(scene=scene.name, reason=reason)
    except RuntimeError:  # no usable context: change it all the same and say so on the console
        replaced = use_standard_view(scene)
        if replaced is not None:
            print(change_message(scene, replaced, reason))


@persistent
def _on_depsgraph_update(scene, depsgraph):
    if not depsgraph.id_type_updated('SCENE'):
        return
    engine = scene.render.engine
    previous = _seen_engines.get(scene.session_uid)
    _seen_engines[scene.session_uid] = engine
    if (previous is not None and previous != engine == ENGINE_ID
            and scene.gaussian_heads.auto_standard_view and view_problem(scene) is not None):
        _switched_to_engine(scene)


def _remember_engines() -> None:
    _seen_engines.clear()
    try:
        scenes = list(bpy.data.scenes)
    except AttributeError:  # bpy.data is restricted while add-ons register at start-up
        return
    for scene in scenes:
        _seen_engines[scene.session_uid] = scene.render.engine


@persistent
def _on_load_post(*_args):
    _remember_engines()


classes = (GAUSSIAN_HEADS_OT_use_standard_view,)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.app.handlers.depsgraph_update_post.append(_on_depsgraph_update)
    bpy.app.handlers.load_post.append(_on_load_post)
    _remember_engines()


def unregister():
    for handlers, func in ((bpy.app.handlers.load_post, _on_load_post),
                           (bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update)):
        if func in handlers:
            handlers.remove(func)
    _seen_engines.clear()
    _unregister()
