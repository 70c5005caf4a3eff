"""Bake Blendshapes (AGORA-M) and Clear Bake.

The bake itself (``engine.bake.bake``) runs on a worker thread that touches no Blender data; the
modal operator shows its progress (progress bar, status text) and Esc cancels it. Nothing is
written to the object until the bake has finished, so a cancelled or failed bake leaves the object
exactly as it was. The finished bake is stored in the .blend beside the identity (point
attributes ``gh.bake.*``, see ``storage.store_bake``) and 'Render Baked' switches to it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from ..engine.errors import GaussianHeadsError
from . import storage
from .context import poll_active_avatar, poll_avatar_with_identity


@dataclass(frozen=True)
class BakeSettings:
    n_samples: int = 2000
    k: int = 32
    seed: int = 0


class BakeJob:
    """One bake on a worker thread: ``progress``/``text`` while running, then ``result`` or
    ``error`` (``cancelled`` when the user stopped it). Plain Python, no bpy."""

    def __init__(self, identity, settings: BakeSettings, config=None):
        self.identity = identity
        self.settings = settings
        self.config = config  # engine.bake.config.BakeConfig, None for the defaults
        self.progress = 0.0
        self.text = "starting"
        self.result = None
        self.error: str | None = None
        self.cancelled = False
        self.seconds = 0.0
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gaussian_heads_bake", daemon=True)

    def start(self) -> "BakeJob":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress, self.text = float(fraction), str(text)

    def _run(self) -> None:
        from ..engine.bake.bake import BakeCancelled, bake

        start = time.perf_counter()
        s = self.settings
        config = self.config
        if config is None:  # the user's bake: measure held-out PSNR so the panel can show quality
            from ..engine.bake.config import BakeConfig, ReportConfig

            config = BakeConfig(report=ReportConfig(psnr=True))
        try:
            self.result = bake(self.identity, s.n_samples, s.k, s.seed, progress=self._on_progress,
                               cancel=self._cancel.is_set, config=config)
        except BakeCancelled:
            self.cancelled = True
        except GaussianHeadsError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bug: shown to the user rather than lost on the thread
            self.error = f"bake failed: {type(exc).__name__}: {exc}"
        self.seconds = time.perf_counter() - start


def bake_settings(obj) -> BakeSettings:
    props = obj.gaussian_heads
    return BakeSettings(n_samples=int(props.bake_samples), k=int(props.bake_components),
                        seed=int(props.bake_seed))


def summary(baked, seconds: float) -> str:
    text = f"K={baked.k}, {baked.n_gaussians:,} Gaussians, {seconds:.0f} s"
    report = getattr(baked, "report", None)
    if report is not None:
        if report.psnr_mean is not None:
            text += f", held-out PSNR {report.psnr_mean:.1f} dB (min {report.psnr_min:.1f})"
        if report.heldout_rmse.get("xyz") is not None:
            text += f", position RMSE {report.heldout_rmse['xyz'] * 1000:.2f} mm"
    return text


def apply_result(obj, job: BakeJob, source_hash: str) -> tuple[str, str]:
    """Store a finished job's bake on ``obj``. Returns (report level, message)."""
    if job.cancelled:
        return 'INFO', "Bake cancelled; the avatar is unchanged"
    if job.error is not None:
        return 'ERROR', job.error
    if obj is None or storage.stored_hash(obj) != source_hash:
        return 'WARNING', "The avatar changed or was removed during the bake; the bake was discarded"
    storage.store_bake(obj, job.result)
    props = obj.gaussian_heads
    props.bake_status = summary(job.result, job.seconds)
    props.show_baked = True
    return 'INFO', f"Baked '{obj.name}': {props.bake_status}"


_running: dict[str, BakeJob] = {}  # object name -> job (one bake per avatar)


class GAUSSIAN_HEADS_OT_bake_blendshapes(bpy.types.Operator):
    """Bake the active avatar into Gaussian blendshapes for fast playback (Esc cancels)"""

    bl_idname = "gaussian_heads.bake_blendshapes"
    bl_label = "Bake Blendshapes"
    bl_options = {'REGISTER', 'UNDO'}

    n_samples: IntProperty(name="Samples", default=0, min=0,
                           description="Poses sampled (0: the avatar's setting)")
    k: IntProperty(name="Components", default=0, min=0, description="Blendshapes (0: the avatar's setting)")

    _timer = None
    _job: BakeJob | None = None
    _object_name = ""
    _source_hash = ""

    @classmethod
    def poll(cls, context):
        obj = poll_avatar_with_identity(cls, context)
        if obj is None:
            return False
        if obj.name in _running:
            cls.poll_message_set(f"'{obj.name}' is already baking")
            return False
        return True

    def _settings(self, obj) -> BakeSettings:
        s = bake_settings(obj)
        return BakeSettings(n_samples=self.n_samples or s.n_samples, k=self.k or s.k, seed=s.seed)

    def _start(self, context):
        obj = context.active_object
        identity = storage.load_identity(obj)
        self._object_name = obj.name
        self._source_hash = storage.stored_hash(obj)
        self._job = BakeJob(identity, self._settings(obj))
        return self._job

    def execute(self, context):
        """Blocking bake (scripts, background mode)."""
        try:
            job = self._start(context).start()
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        job.wait()
        return self._finish(context)

    def invoke(self, context, event):
        try:
            job = self._start(context)
        except GaussianHeadsError as exc:
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        _running[self._object_name] = job
        job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        job = self._job
        if event.type == 'ESC' and event.value == 'PRESS':
            job.cancel()
        if event.type != 'TIMER':
            return {'RUNNING_MODAL'} if event.type == 'ESC' else {'PASS_THROUGH'}
        context.window_manager.progress_update(int(job.progress * 1000))
        status = f"Baking '{self._object_name}': {job.progress * 100:.0f}% {job.text} (Esc cancels)"
        if context.workspace is not None:
            context.workspace.status_text_set(status)
        if not job.done:
            return {'RUNNING_MODAL'}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        return self._finish(context)

    def _finish(self, context):
        _running.pop(self._object_name, None)
        job = self._job
        obj = bpy.data.objects.get(self._object_name)
        try:
            level, message = apply_result(obj, job, self._source_hash)
        except GaussianHeadsError as exc:
            level, message = 'ERROR', str(exc)
        self.report({level}, message)
        return {'FINISHED'} if level == 'INFO' and job.result is not None else {'CANCELLED'}


class GAUSSIAN_HEADS_OT_clear_bake(bpy.types.Operator):
    """Remove the active avatar's baked blendshapes"""

    bl_idname = "gaussian_heads.clear_bake"
    bl_label = "Clear Bake"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        obj = poll_active_avatar(cls, context)
        if obj is None:
            return False
        if not storage.has_bake(obj):
            cls.poll_message_set(f"'{obj.name}' has no bake")
            return False
        if obj.name in _running:
            cls.poll_message_set(f"'{obj.name}' is baking")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        storage.clear_bake(obj)
        obj.gaussian_heads.bake_status = ""
        obj.gaussian_heads.show_baked = False
        obj.update_tag()
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_export_bake(bpy.types.Operator, ExportHelper):
    """Write the active avatar's bake as one self-contained .npz (neutral Gaussians, blendshape
    bases, coefficient MLP as ONNX) that a web or game runtime can play (docs/BAKED_FORMAT.md)"""

    bl_idname = "gaussian_heads.export_bake"
    bl_label = "Export Baked Avatar"
    bl_options = {'REGISTER'}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={'HIDDEN'})

    @classmethod
    def poll(cls, context):
        obj = poll_active_avatar(cls, context)
        if obj is None:
            return False
        if not storage.has_bake(obj):
            cls.poll_message_set(f"'{obj.name}' has no bake: run Bake Blendshapes first")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        try:
            baked = storage.load_bake(obj, storage.load_identity(obj))
            baked.save(self.filepath)
        except (GaussianHeadsError, OSError) as exc:
            self.report({'ERROR'}, f"{self.filepath}: {exc}" if isinstance(exc, OSError) else str(exc))
            return {'CANCELLED'}
        self.report({'INFO'}, f"Wrote {self.filepath}: {baked.n_gaussians} Gaussians, K = {baked.k}")
        return {'FINISHED'}


classes = (GAUSSIAN_HEADS_OT_bake_blendshapes, GAUSSIAN_HEADS_OT_clear_bake, GAUSSIAN_HEADS_OT_export_bake)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()


def unregister():
    for job in _running.values():
        job.cancel()
    _running.clear()
    _unregister_classes()
