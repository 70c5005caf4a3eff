"""Avatars posed at the current frame inside Blender's own data.

Blender 5.3+: an avatar's point cloud is a native ``GAUSSIAN_SPLAT`` whose ``position``,
``scale``, ``rotation`` and ``radiance:base`` always hold the pose at the current frame and whose
``radiance:sh_k`` hold its view-dependent colour (the layout of ``splat_data``), so Cycles, EEVEE
and Workbench render it with the rest of the scene. Its identity (``gh.*``, ``operators/storage``)
stays beside them: our own engine always poses from the identity and never reads this copy
(``splat_data.is_splat_object`` excludes avatars). Blender 4.2-5.2: only the display ``position``
follows the pose (Solid view), as before.

When it poses (``HANDLERS``; ``operators/splat_io.py`` registers them):

* ``frame_change_post``, with the depsgraph that changed frame: the viewport's (scrubbing,
  playback) or a render job's (F12, animation render, ``blender -b -a``). Blender evaluates a
  depsgraph again when a frame-change handler tagged data, so the render sees this frame's pose.
* ``depsgraph_update_post``: a slider, keyframe or driver edit re-poses the avatars the update
  names. Each point cloud remembers the key (identity, parameters) it was last posed with and is
  only written when the key changes: the update our own write causes ends there, and dragging a
  slider poses once per distinct value (a pose is a few milliseconds, docs/PERFORMANCE.md).
* ``load_post``, ``undo_post``, ``redo_post`` forget the keys (the data may be older than them).

It does not pose while our own engine renders (it poses from the identity), nor, before 5.3, while
rendering or in background mode (nobody looks at Solid view there; tests set
``POSE_IN_BACKGROUND``). On 5.3 it poses in background mode too: that data is what Cycles renders.
Library-linked avatars are read-only and keep the pose they were saved with in native renders;
linked duplicates (Alt+D) share one point cloud and so one native pose.
"""

from __future__ import annotations

from collections import OrderedDict

import bpy
import numpy as np

from . import splat_data
from .engine.errors import GaussianHeadsError

_posed: dict[int, bytes] = {}               # point cloud pointer -> key of the pose written last
_sh_written: dict[int, str] = {}            # point cloud pointer -> identity key of its SH bands
_sh_cache: "OrderedDict[str, np.ndarray]" = OrderedDict()   # identity key -> sh_attributes(...)
_rendering = False   # set between render_init and render_complete/render_cancel
#: pose Solid-view displays in background mode before 5.3 (off: scripts and render farms pay
#: nothing; tests switch it on)
POSE_IN_BACKGROUND = False


def _identity_key(obj, identity) -> str:
    from .engine.bake.baked import BakedIdentity

    props = obj.data.gaussian_heads
    return props.content_hash + ("+bake:" + props.bake_hash if isinstance(identity, BakedIdentity) else "")


def _params_key(params) -> bytes:
    return b"".join(np.ascontiguousarray(getattr(params, name), np.float32).tobytes()
                    for name in ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation"))


def _sh_bands(identity_key: str, sh: np.ndarray) -> np.ndarray:
    from .engine.avatar.native_splat import sh_attributes

    bands = _sh_cache.get(identity_key)
    if bands is None or bands.shape[1] != sh.shape[0]:
        bands = sh_attributes(sh)
        _sh_cache[identity_key] = bands
        while len(_sh_cache) > 4:
            _sh_cache.popitem(last=False)
    return bands


def pose_avatar(obj, depsgraph, force: bool = False) -> bool:
    """Write avatar ``obj``'s pose at the depsgraph's state into its point cloud: the native
    splat attributes on 5.3+, the display ``position`` before. Returns whether it wrote (not
    when the same pose is there already, unless ``force``)."""
    from .operators import storage
    from .render_engine import avatar_identity, head_params

    original = obj.original
    pointcloud = original.data
    if not storage.has_identity(original) or pointcloud.library is not None:
        return False
    evaluated = original.evaluated_get(depsgraph)
    identity = avatar_identity(evaluated)
    params = head_params(evaluated, identity)
    native = splat_data.native_supported()
    identity_key = _identity_key(original, identity)
    key = b"%d:%s:" % (native, identity_key.encode()) + _params_key(params)
    pointer = pointcloud.as_pointer()
    if not force and _posed.get(pointer) == key:
        return False
    _wait_for_lift()
    posed = identity.pose(params)
    if len(posed) != len(pointcloud.points):
        return False
    from .engine.avatar.native_splat import frame_attributes

    frame = frame_attributes(posed)
    if native:
        if (force or _sh_written.get(pointer) != identity_key or pointcloud.type != 'GAUSSIAN_SPLAT'
                or pointcloud.attributes.get(splat_data.BASE) is None):
            splat_data.write_native_sh(pointcloud, _sh_bands(identity_key, posed.sh))
            _sh_written[pointer] = identity_key
        splat_data.write_native_frame(pointcloud, frame)
    else:
        pointcloud.attributes["position"].data.foreach_set("vector", frame.position.reshape(-1))
    pointcloud.update_tag()
    _posed[pointer] = key
    return True


def _wait_for_lift() -> None:
    """Posing needs the lifting kernel: wait for the background compile (first use only)
    instead of compiling it a second time in this process."""
    from .engine import warmup

    if warmup.pending((warmup.LIFT,)) is not None:
        warmup.wait_for_kernels(needed={warmup.LIFT})


def lock_interface_for_native(scene) -> bool:
    """Blender 5.3+: turn on Render > Lock Interface, so an animation render started from the UI
    runs the per-frame posing while nothing else edits the data (Blender's advice for add-ons that
    change data per frame). -> whether it changed the setting."""
    if not splat_data.native_supported() or scene.render.use_lock_interface:
        return False
    scene.render.use_lock_interface = True
    return True


def may_pose(scene) -> bool:
    """Whether the handlers pose now (see the module docstring)."""
    rendering = _rendering or bpy.app.is_job_running('RENDER')
    if splat_data.native_supported():
        from .render_engine import ENGINE_ID

        return not (rendering and scene.render.engine == ENGINE_ID)
    return not rendering and (not bpy.app.background or POSE_IN_BACKGROUND)


def _is_avatar(obj) -> bool:
    return obj is not None and obj.type == 'POINTCLOUD' and obj.gaussian_heads.is_avatar


def _pose_all(objects, depsgraph) -> None:
    for obj in objects:
        try:
            pose_avatar(obj, depsgraph)
        except GaussianHeadsError:
            pass  # the viewport and F12 report the problem; the data keeps its last pose


@bpy.app.handlers.persistent
def pose_on_frame_change(scene, depsgraph=None):
    """``frame_change_post``: every avatar the depsgraph evaluates follows the frame."""
    if not may_pose(scene):
        return
    if depsgraph is None:
        depsgraph = bpy.context.evaluated_depsgraph_get()
    _pose_all([obj for obj in depsgraph.objects if _is_avatar(obj)], depsgraph)


@bpy.app.handlers.persistent
def pose_on_depsgraph_update(scene, depsgraph):
    """``depsgraph_update_post``: avatars named by the update (slider, keyframe, driver edits)
    follow their parameters; unchanged ones are skipped by their pose key."""
    if not may_pose(scene):
        return
    updated = [update.id for update in depsgraph.updates if isinstance(update.id, bpy.types.Object)]
    _pose_all([obj for obj in updated if _is_avatar(obj)], depsgraph)


@bpy.app.handlers.persistent
def forget_poses(*_args):
    """``load_post``/``undo_post``/``redo_post``: the data may be older than the remembered keys."""
    _posed.clear()
    _sh_written.clear()


@bpy.app.handlers.persistent
def _render_started(*_args):
    global _rendering
    _rendering = True


@bpy.app.handlers.persistent
def _render_ended(*_args):
    global _rendering
    _rendering = False


#: (handler list name, function) pairs that ``operators/splat_io.py`` registers
HANDLERS = (("render_init", _render_started), ("render_complete", _render_ended),
            ("render_cancel", _render_ended), ("load_post", forget_poses), ("undo_post", forget_poses),
            ("redo_post", forget_poses), ("frame_change_post", pose_on_frame_change),
            ("depsgraph_update_post", pose_on_depsgraph_update))
