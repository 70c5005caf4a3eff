"""Opt-in installer for the GPU packages (torch, gsplat) and the GPU check.

The extension zip does not bundle torch or gsplat (several GB, CUDA-specific). A user who wants
the gsplat render backend presses "Install GPU dependencies" in the add-on preferences; this runs
Blender's own Python (``sys.executable``) as ``python -m pip install --target <staging> ...``.
<staging> is a new folder next to the final one, ``bpy.utils.extension_path_user(<add-on>,
path="site-packages")`` (the only place the add-on may write). Only when pip succeeds is the
staging folder renamed into place (the previous folder is renamed aside first and deleted after);
a failed or cancelled run deletes the staging folder, so the previous installation stays exactly
as it was. ``preferences.register()`` appends the final folder to ``sys.path`` at start-up.

Network use is gated on ``bpy.app.online_access``: the operator's poll refuses (and says why)
when Blender's "Allow Online Access" is off. pip runs in a subprocess (``pip_job.PipJob``, no bpy);
a reader thread collects its output and moves the result into place; a modal timer shows the
latest line and lets Esc or the Cancel button stop it.

numpy is pinned to the version Blender runs (a constraint), so pip never fetches numpy 2.x
for gsplat; the copy it places in the target folder is shadowed by Blender's own numpy because
the folder is appended to the end of ``sys.path``.

"Check GPU" runs ``engine.raster.gpu_check.check_gpu`` in a thread: it rasterizes a real frame
with gsplat (whose first call builds its CUDA kernels, minutes) or says exactly why it cannot.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import bpy

from .. import preferences
from .pip_job import STAGING_PREFIX, PipJob, pip_command, promote, remove_leftovers  # noqa: F401 (API)

# The versions the project develops and tests against (requirements.txt).
GPU_REQUIREMENTS = ("torch==2.13.0", "gsplat==1.5.3", "packaging")


_job: PipJob | None = None


def current_job() -> PipJob | None:
    return _job


def start_install(extra_index_url: str = "", requirements: tuple[str, ...] = GPU_REQUIREMENTS,
                  extra_args: tuple[str, ...] = ()) -> PipJob:
    """Start pip for ``requirements`` into a staging folder next to the GPU packages' folder;
    returns the running job (it moves the result into place when pip succeeds)."""
    global _job, _check
    import numpy

    target = preferences.gpu_site_packages(create=False)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    remove_leftovers(parent)
    staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)
    constraints = os.path.join(staging, "constraints.txt")  # beside pip's --target, not in it
    with open(constraints, "w", encoding="utf-8") as fh:
        fh.write(f"numpy=={numpy.__version__}\n")
    cmd = pip_command(os.path.join(staging, "site-packages"), requirements, constraints, extra_index_url,
                      extra_args=extra_args)
    _job = PipJob(cmd, staging=staging, target=target)
    _check = None
    _job.start()
    return _job


def _finish(job: PipJob) -> str:
    """After pip ends: put the folder on sys.path; the message to report."""
    if job.returncode == 0:
        preferences.add_gpu_site_packages()
        return f"GPU packages installed into {preferences.gpu_site_packages()}; press Check GPU"
    return job.status_line()
# --- the GPU check ---------------------------------------------------------------------------

class GpuCheckJob:
    """``check_gpu`` in a daemon thread (gsplat's first call builds CUDA kernels: minutes)."""

    def __init__(self):
        self.step = "starting"
        self.result = None
        self._thread = threading.Thread(target=self._run, name="gaussian_heads_gpu_check", daemon=True)
        self._start = 0.0

    def start(self) -> GpuCheckJob:
        import time

        self._start = time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        from ..engine.raster.gpu_check import check_gpu

        def progress(step):
            self.step = step

        try:
            self.result = check_gpu(progress)
        except Exception as exc:  # an unexpected failure is still an answer the user sees
            from ..engine.raster.gpu_check import GpuCheck

            self.result = GpuCheck(None, None, None, problem=f"the check failed: {type(exc).__name__}: {exc}")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None):
        self._thread.join(timeout)
        return self.result

    def status_line(self) -> str:
        import time

        return f"Checking: {self.step} ({time.perf_counter() - self._start:.0f} s)"


_check = None                        # GpuCheck of the last finished check
_check_job: GpuCheckJob | None = None


def last_status():
    """The last finished check's ``GpuCheck`` (torch, cuda, gsplat, ready, summary()), or None."""
    return _check


def check_job() -> GpuCheckJob | None:
    return _check_job


def start_check() -> GpuCheckJob:
    global _check_job
    preferences.add_gpu_site_packages()  # sys.path changes stay on the main thread
    _check_job = GpuCheckJob().start()
    return _check_job


def _online_poll(cls, context) -> bool:
    if not bpy.app.online_access:
        cls.poll_message_set("Online access is off: enable Preferences > System > Network > "
                             "Allow Online Access to download the GPU packages")
        return False
    if _job is not None and _job.running:
        cls.poll_message_set("The GPU packages are being installed")
        return False
    return True


def _redraw_preferences(context) -> None:
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == 'PREFERENCES':
                area.tag_redraw()


def _status_text(context, text) -> None:
    if context.workspace is not None:
        context.workspace.status_text_set(text)


class GAUSSIAN_HEADS_OT_install_gpu_deps(bpy.types.Operator):
    """Download torch and gsplat from PyPI into the add-on's user folder (several GB)"""

    bl_idname = "gaussian_heads.install_gpu_deps"
    bl_label = "Install GPU Dependencies"

    _timer = None

    @classmethod
    def poll(cls, context):
        return _online_poll(cls, context)

    def _prefs(self, context):
        return context.preferences.addons[preferences.ADDON_PACKAGE].preferences

    def invoke(self, context, event):
        try:
            start_install(self._prefs(context).extra_index_url)
        except OSError as exc:
            self.report({'ERROR'}, f"Could not start pip with {sys.executable}: {exc}")
            return {'CANCELLED'}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        self.report({'INFO'}, "Installing GPU packages (Esc cancels)")
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        job = current_job()
        if event.type == 'ESC' and job is not None and job.running:
            job.cancel()
            return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        _redraw_preferences(context)
        if job is not None and job.running:
            _status_text(context, job.status_line())
            return {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self._timer)
        _status_text(context, None)
        if job is None or job.cancelled:
            self.report({'WARNING'}, "GPU install cancelled")
            return {'CANCELLED'}
        job.wait()
        message = _finish(job)
        if job.returncode != 0:
            print(job.output(), file=sys.stderr)
            self.report({'ERROR'}, message)
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}

    def execute(self, context):
        # Scripted/background use: run to the end, echoing pip's output.
        try:
            job = start_install(self._prefs(context).extra_index_url)
        except OSError as exc:
            self.report({'ERROR'}, f"Could not start pip with {sys.executable}: {exc}")
            return {'CANCELLED'}
        job.wait()
        print(job.output())
        message = _finish(job)
        if job.returncode != 0:
            self.report({'ERROR'}, message)
            return {'CANCELLED'}
        self.report({'INFO'}, message)
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_cancel_gpu_install(bpy.types.Operator):
    """Stop the running GPU package installation"""

    bl_idname = "gaussian_heads.cancel_gpu_install"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context):
        if _job is None or not _job.running:
            cls.poll_message_set("No installation is running")
            return False
        return True

    def execute(self, context):
        _job.cancel()
        return {'FINISHED'}


class GAUSSIAN_HEADS_OT_check_gpu(bpy.types.Operator):
    """Render a test frame with gsplat on the GPU, or say exactly why that is not possible
    (the first time builds gsplat's CUDA kernels: minutes, in the background)"""

    bl_idname = "gaussian_heads.check_gpu"
    bl_label = "Check GPU"

    _timer = None

    @classmethod
    def poll(cls, context):
        if _check_job is not None and _check_job.running:
            cls.poll_message_set("A GPU check is running")
            return False
        return True

    def _done(self, job):
        global _check
        _check = job.result
        self.report({'INFO'} if _check.ready else {'WARNING'}, _check.summary())
        return {'FINISHED'}

    def invoke(self, context, event):
        start_check()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.25, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        _redraw_preferences(context)
        job = _check_job
        if job is not None and job.running:
            _status_text(context, job.status_line())
            return {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self._timer)
        _status_text(context, None)
        return self._done(job)

    def execute(self, context):
        # Scripted/background use: wait for the answer.
        job = start_check()
        job.wait()
        return self._done(job)


classes = (GAUSSIAN_HEADS_OT_install_gpu_deps, GAUSSIAN_HEADS_OT_cancel_gpu_install,
           GAUSSIAN_HEADS_OT_check_gpu)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()


def unregister():
    if _job is not None and _job.running:
        _job.cancel()  # deletes the staging folder; the installed folder stays as it was
    _unregister_classes()
