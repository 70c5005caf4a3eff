"""Opt-in installer for the GPU packages (torch, gsplat) and the GPU status check.

The extension zip does not bundle torch or gsplat (several GB, CUDA-specific). A user who wants
the gsplat render backend presses "Install GPU dependencies" in the add-on preferences; this runs
Blender's own Python (``sys.executable``) as ``python -m pip install --target <folder> ...`` where
<folder> is ``bpy.utils.extension_path_user(<add-on>, path="site-packages")``, the only place the
add-on may write. ``preferences.register()`` appends that folder to ``sys.path`` at start-up.

Network use is gated on ``bpy.app.online_access``: the operator's poll refuses (and says why)
when Blender's "Allow Online Access" is off. pip runs in a subprocess; a reader thread collects its
output; a modal timer shows the latest line and lets Esc or the Cancel button stop it. pip
installs into a temporary folder and moves the result into place at the end, so a cancelled run
leaves nothing half-installed in the target.

numpy is pinned to the version Blender runs (a constraint), so pip never fetches numpy 2.x
for gsplat; the copy it places in the target folder is shadowed by Blender's own numpy because
the folder is appended to the end of ``sys.path``.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading

import bpy

from .. import preferences

# The versions the project develops and tests against (requirements.txt).
GPU_REQUIREMENTS = ("torch==2.13.0", "gsplat==1.5.3", "packaging")


@dataclasses.dataclass(frozen=True)
class GpuStatus:
    torch: str | None     # torch version, None when it does not import
    cuda: str | None      # CUDA device name, None when torch sees no CUDA device
    gsplat: str | None    # gsplat version, None when it does not import
    problem: str = ""     # first import error, if any

    @property
    def ready(self) -> bool:
        return bool(self.torch and self.cuda and self.gsplat)

    def summary(self) -> str:
        if self.ready:
            return f"Ready: torch {self.torch}, gsplat {self.gsplat}, {self.cuda}"
        parts = [f"torch {self.torch}" if self.torch else "torch missing",
                 self.cuda or "no CUDA device",
                 f"gsplat {self.gsplat}" if self.gsplat else "gsplat missing"]
        tail = f" ({self.problem})" if self.problem else ""
        return "Not ready: " + ", ".join(parts) + tail


def probe_gpu() -> GpuStatus:
    """Import torch and gsplat (in this process) and ask torch for a CUDA device."""
    torch_version = cuda = gsplat_version = None
    problem = ""
    try:
        import torch
        torch_version = torch.__version__
        if torch.cuda.is_available():
            cuda = torch.cuda.get_device_name(0)
    except Exception as exc:  # any import failure means "not available", and we say why
        problem = f"torch: {exc}"
    try:
        import gsplat
        gsplat_version = getattr(gsplat, "__version__", "?")
    except Exception as exc:
        problem = problem or f"gsplat: {exc}"
    return GpuStatus(torch_version, cuda, gsplat_version, problem[:200])


_status: GpuStatus | None = None


def last_status() -> GpuStatus | None:
    """The result of the last check, or None before the first one."""
    return _status


def pip_command(target: str, requirements: tuple[str, ...], constraints: str,
                extra_index_url: str = "", python: str | None = None,
                extra_args: tuple[str, ...] = ()) -> list[str]:
    """The pip command line the installer runs (Blender's own Python by default)."""
    cmd = [python or sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", "--progress-bar", "off", "--upgrade", "--target", target,
           "--constraint", constraints]
    if extra_index_url:
        cmd += ["--extra-index-url", extra_index_url]
    return cmd + [*extra_args, *requirements]


class PipJob:
    """A pip subprocess whose output a background thread collects; poll it from a timer."""

    def __init__(self, cmd: list[str], env: dict | None = None):
        self.cmd = cmd
        self.env = env
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self.returncode: int | None = None
        self.cancelled = False
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, bufsize=1, env=self.env)
        self._thread = threading.Thread(target=self._read, name="gaussian_heads_pip", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip()
            if line:
                with self._lock:
                    self.lines.append(line)
        self._proc.wait()
        self.returncode = self._proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    def cancel(self) -> None:
        self.cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.returncode

    def status_line(self) -> str:
        with self._lock:
            last = self.lines[-1] if self.lines else ""
        if self.running:
            return f"pip: {last[:120]}" if last else "pip: starting…"
        if self.cancelled:
            return "Cancelled"
        if self.returncode == 0:
            return "Installed; press Check to test CUDA"
        if self.returncode is not None:
            return f"pip failed ({self.returncode}): {last[:120]}"
        return ""

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


_job: PipJob | None = None


def current_job() -> PipJob | None:
    return _job


def start_install(extra_index_url: str = "") -> PipJob:
    """Start pip for the GPU packages into the user folder; returns the running job."""
    global _job, _status
    import numpy

    target = preferences.gpu_site_packages(create=True)
    work = tempfile.mkdtemp(prefix="gaussian_heads_pip_")
    constraints = os.path.join(work, "constraints.txt")
    with open(constraints, "w", encoding="utf-8") as fh:
        fh.write(f"numpy=={numpy.__version__}\n")
    _job = PipJob(pip_command(target, GPU_REQUIREMENTS, constraints, extra_index_url))
    _status = None
    _job.start()
    return _job


def _finish(job: PipJob) -> str:
    """After pip ends: put the folder on sys.path; the message to report."""
    if job.returncode == 0:
        preferences.add_gpu_site_packages()
        return f"GPU packages installed into {preferences.gpu_site_packages()}; press Check"
    return job.status_line()


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
    """Import torch and gsplat and look for a CUDA device (may take a few seconds)"""

    bl_idname = "gaussian_heads.check_gpu"
    bl_label = "Check GPU"

    def execute(self, context):
        global _status
        preferences.add_gpu_site_packages()
        _status = probe_gpu()
        self.report({'INFO'} if _status.ready else {'WARNING'}, _status.summary())
        return {'FINISHED'}


classes = (GAUSSIAN_HEADS_OT_install_gpu_deps, GAUSSIAN_HEADS_OT_cancel_gpu_install,
           GAUSSIAN_HEADS_OT_check_gpu)
_register_classes, _unregister_classes = bpy.utils.register_classes_factory(classes)


def register():
    _register_classes()


def unregister():
    if _job is not None and _job.running:
        _job.cancel()
    _unregister_classes()
