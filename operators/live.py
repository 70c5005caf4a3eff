"""Live capture: Start / Stop / Record / Stop Recording / Set Neutral (the "Live" panel).

Thin adapters over ``engine.live``: Start opens a :class:`Receiver` on the address and port the
user picked (nothing listens before, nor after Stop); a ``bpy.app.timers`` timer (every 1/60 s)
takes the newest frame, maps it with :class:`LiveDrive` (the importers' mapping) and sets the
avatar's sliders. Record collects every frame; Stop Recording (or Stop) turns the take into
keys from the frame where Record was pressed, through ``prepare_import`` (retimed to the scene's
fps) and ``keyframes.build_curves`` / ``write_curves``, in one undo step. Stop, loading a file
and disabling the add-on always close the socket.
"""

from __future__ import annotations

import socket
import time
from collections import deque

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..engine.animation import ImportOptions, prepare_import
from ..engine.errors import GaussianHeadsError
from ..engine.live.drive import LIVE_MAP_OPTIONS, Calibration, DriveOptions, LiveDrive
from ..engine.live.receiver import Receiver
from ..engine.live.take import sequence_from_frames
from . import keyframes, live_settings
from .anim_io import _target_object, avatar_target_spec

TICK_S = 1.0 / 60.0
STATUS_EVERY_S = 0.5


class _Session:
    """The one running live session (module state: a socket cannot live in an ID property)."""

    def __init__(self, receiver: Receiver, drive: LiveDrive, obj_name: str, scene_name: str):
        self.receiver = receiver
        self.drive = drive
        self.obj_name = obj_name
        self.scene_name = scene_name
        self.record_frame: float | None = None  # scene frame where Record was pressed
        self.tick_ms: deque[float] = deque(maxlen=600)  # timer callback cost
        self.latency_ms: deque[float] = deque(maxlen=600)  # packet arrival -> sliders set
        self.last_status = 0.0


_session: _Session | None = None


def session() -> _Session | None:
    return _session


def _settings(scene):
    return scene.gaussian_heads_live


def _calibration(settings, names) -> Calibration:
    by_name = {c.name: c for c in settings.calibration}
    neutral = np.array([by_name[n].neutral if n in by_name else 0.0 for n in names], np.float32)
    gains = np.array([by_name[n].gain if n in by_name else 1.0 for n in names], np.float32)
    return Calibration(neutral, gains, np.array(settings.neutral_head, np.float64))


def _phone_address(host: str, port: int) -> str:
    """The address to type into the phone: the host picked, or this machine's LAN addresses."""
    if host not in ("0.0.0.0", ""):
        return f"{host}:{port}"
    try:
        addrs = sorted({a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")})
    except OSError:
        addrs = []
    return (", ".join(f"{a}:{port}" for a in addrs) or f"this computer's address, port {port}")


def apply_pose(obj, pose) -> None:
    """Set the avatar's sliders to ``pose`` (an engine.live.drive.Pose) and redraw."""
    props = obj.gaussian_heads
    if len(props.expr) == pose.expr.shape[0]:
        props.expr.foreach_set("value", np.clip(pose.expr, -10.0, 10.0).astype(np.float32))
    props.jaw, props.neck, props.head_rot = pose.jaw, pose.neck, pose.head_rot
    props.eyes = pose.eyes
    obj.update_tag()
    wm = bpy.context.window_manager
    for window in (wm.windows if wm is not None else ()):
        for area in window.screen.areas:
            if area.type == 'VIEW_3D':
                area.tag_redraw()


def tick() -> float | None:
    """The timer: apply the newest frame to the avatar. Returns the next interval (None ends it)."""
    s = _session
    if s is None:
        return None
    t0 = time.perf_counter()
    obj = bpy.data.objects.get(s.obj_name)
    scene = bpy.data.scenes.get(s.scene_name)
    if obj is None or scene is None or not s.receiver.running:
        stop_session(write_take=False, reason="the avatar was removed" if obj is None else "the stream stopped")
        return None
    frame = s.receiver.latest()
    if frame is not None:
        apply_pose(obj, s.drive.step(frame))
        now = time.perf_counter()
        s.latency_ms.append((now - frame.received) * 1e3)
        s.tick_ms.append((now - t0) * 1e3)
    if t0 - s.last_status > STATUS_EVERY_S:
        s.last_status = t0
        st = s.receiver.stats
        bad = st.malformed + st.nonfinite + st.oversized + st.unknown
        _settings(scene).status = f"{st.frames} frames, {bad} dropped packets" + (
            f", {s.receiver.n_recorded} recorded" if s.receiver.recording else "")
    return TICK_S


def write_take(obj, scene, frames, start_frame: float, drive: LiveDrive) -> tuple[int, int]:
    """Keys for the recorded ``frames`` on ``obj`` from ``start_frame`` -> (keys per curve, curves).
    Raises GaussianHeadsError (nothing written) for an empty take."""
    seq = sequence_from_frames(frames, source_format="live")
    options = ImportOptions(scene_fps=scene.render.fps / scene.render.fps_base, start_frame=float(start_frame),
                            map_options=LIVE_MAP_OPTIONS)
    result = prepare_import(seq, drive.target, options)
    mapped = drive.calibrate_sequence(result.sequence)
    missing = set(result.report.missing)
    channels = [i for i, n in enumerate(drive.target.expr_names) if n not in missing]
    curves = keyframes.build_curves(mapped, result.frames, expr_channels=channels)
    if not curves:
        raise GaussianHeadsError("the take drives none of the avatar's channels")
    keyframes.write_curves(obj, curves, f"{obj.name}.live")
    return mapped.n_frames, len(curves)


def _finish_recording(s: _Session, scene) -> str | None:
    """End the take and write it; returns a report line (None when nothing was recording)."""
    if s.record_frame is None:
        return None
    frames = s.receiver.stop_recording()
    start, s.record_frame = s.record_frame, None
    _settings(scene).recording = False
    obj = bpy.data.objects.get(s.obj_name)
    if obj is None:
        raise GaussianHeadsError("the avatar was removed; the take was not written")
    keys, n = write_take(obj, scene, frames, start, s.drive)
    return f"{len(frames)} frames recorded -> {keys} keys on {n} F-curves of '{obj.name}' from frame {start:g}"


def stop_session(*, write_take: bool = True, reason: str = "") -> str | None:
    """Stop the running session (if any): write a take in progress, close the socket."""
    global _session
    s, _session = _session, None
    if s is None:
        return None
    line = None
    try:
        scene = bpy.data.scenes.get(s.scene_name)
        if write_take and scene is not None:
            line = _finish_recording(s, scene)
    finally:
        s.receiver.stop()
        if bpy.app.timers.is_registered(tick):
            bpy.app.timers.unregister(tick)
        scene = bpy.data.scenes.get(s.scene_name)
        if scene is not None:
            st = _settings(scene)
            st.running = st.recording = False
            st.status = f"stopped{': ' + reason if reason else ''}"
    return line


class GAUSSIAN_HEADS_OT_live_start(bpy.types.Operator):
    """Listen for face capture packets and drive the avatar's sliders with them"""

    bl_idname = "gaussian_heads.live_start"
    bl_label = "Start Live"
    bl_options = {'REGISTER'}

    def execute(self, context):
        global _session
        if _session is not None:
            self.report({'ERROR'}, "a live session is already running; press Stop first")
            return {'CANCELLED'}
        settings = _settings(context.scene)
        try:
            obj = _target_object(context, settings.target)
            target = avatar_target_spec(obj)
            if not target.expr_names:
                raise GaussianHeadsError(f"'{obj.name}' has no expression channels")
            drive = LiveDrive(target, DriveOptions(smoothing=settings.smoothing, gain=settings.gain),
                              _calibration(settings, target.expr_names))
            receiver = Receiver(settings.protocol.lower(), settings.host.strip() or "0.0.0.0", settings.port)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        _session = _Session(receiver, drive, obj.name, context.scene.name)
        settings.running, settings.recording = True, False
        settings.phone_address = _phone_address(settings.host.strip(), receiver.port)
        settings.status = f"listening on {receiver.host}:{receiver.port}"
        bpy.app.timers.register(tick, first_interval=TICK_S)
        self.report({'INFO'}, f"Live: {settings.status}; send to {settings.phone_address}")
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_live_stop(bpy.types.Operator):
    """Stop listening (a take being recorded is written as keys first) and release the port"""

    bl_idname = "gaussian_heads.live_stop"
    bl_label = "Stop Live"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        try:
            line = stop_session()
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, f"{exc}; the port was released")
            return {'CANCELLED'}
        if line:
            self.report({'INFO'}, line)
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_live_record(bpy.types.Operator):
    """Record the stream from the current frame (Stop Recording writes it as keyframes)"""

    bl_idname = "gaussian_heads.live_record"
    bl_label = "Record"
    bl_options = {'REGISTER'}

    @classmethod
    def poll(cls, context):
        return _session is not None and _session.record_frame is None

    def execute(self, context):
        _session.record_frame = float(context.scene.frame_current)
        _session.receiver.start_recording()
        _settings(context.scene).recording = True
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_live_record_stop(bpy.types.Operator):
    """End the take and write it as keyframes on the avatar (one undo step)"""

    bl_idname = "gaussian_heads.live_record_stop"
    bl_label = "Stop Recording"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _session is not None and _session.record_frame is not None

    def execute(self, context):
        try:
            line = _finish_recording(_session, context.scene)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, line)
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_live_set_neutral(bpy.types.Operator):
    """Take the current face as the neutral: live values are measured from it"""

    bl_idname = "gaussian_heads.live_set_neutral"
    bl_label = "Set Neutral"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return _session is not None

    def execute(self, context):
        frame = _session.receiver.latest(new_only=False)
        if frame is None:
            self.report({'ERROR'}, "no frame has arrived yet; face the camera and try again")
            return {'CANCELLED'}
        cal = _session.drive.set_neutral(frame)
        settings = _settings(context.scene)
        gains = {c.name: c.gain for c in settings.calibration}
        settings.calibration.clear()
        for name, neutral in zip(_session.drive.target.expr_names, cal.neutral):
            item = settings.calibration.add()
            item.name, item.neutral, item.gain = name, float(neutral), gains.get(name, 1.0)
        settings.neutral_head = tuple(float(v) for v in cal.head)
        self.report({'INFO'}, "neutral set from the current frame")
        return {'FINISHED'}


@persistent
def _on_load_pre(*_args):
    stop_session(write_take=False, reason="a file was loaded")


classes = (GAUSSIAN_HEADS_OT_live_start, GAUSSIAN_HEADS_OT_live_stop, GAUSSIAN_HEADS_OT_live_record,
           GAUSSIAN_HEADS_OT_live_record_stop, GAUSSIAN_HEADS_OT_live_set_neutral)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    live_settings.register()
    _register()
    bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister():
    try:
        stop_session(write_take=False, reason="the add-on was disabled")
    finally:
        if _on_load_pre in bpy.app.handlers.load_pre:
            bpy.app.handlers.load_pre.remove(_on_load_pre)
        _unregister()
        live_settings.unregister()
