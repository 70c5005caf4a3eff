"""A pip subprocess for the GPU installer, staged so that a failed or cancelled install changes
nothing (no bpy; ``operators/gpu_deps.py`` drives it from Blender).

pip installs into ``<staging>/site-packages``; only when it succeeded and nobody cancelled does the
reader thread ``promote`` that folder to the target (rename the old target aside, rename the new
one in, delete the old one). Otherwise, and afterwards, the staging folder is deleted.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading

STAGING_PREFIX, OLD_PREFIX = "site-packages.partial-", "site-packages.old-"


def pip_command(target: str, requirements: tuple[str, ...], constraints: str,
                extra_index_url: str = "", python: str | None = None,
                extra_args: tuple[str, ...] = ()) -> list[str]:
    """The pip command line the installer runs (Blender's own Python by default)."""
    # --no-cache-dir: no second multi-GB copy of the wheels in ~/.cache/pip (docs/INSTALL.md)
    cmd = [python or sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
           "--no-input", "--no-cache-dir", "--progress-bar", "off", "--upgrade", "--target", target,
           "--constraint", constraints]
    if extra_index_url:
        cmd += ["--extra-index-url", extra_index_url]
    return cmd + [*extra_args, *requirements]


def promote(staging: str, target: str) -> None:
    """Put the complete ``staging`` folder in place of ``target`` (same parent folder).

    The previous ``target`` is renamed aside, ``staging`` renamed to ``target``, then the old one
    deleted; if the second rename fails the previous folder is put back. Raises OSError (e.g. on
    Windows, when a package in ``target`` is loaded in this Blender session)."""
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=OLD_PREFIX, dir=os.path.dirname(target))
        os.rmdir(old)
        os.rename(target, old)
    try:
        os.rename(staging, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(parent: str) -> None:
    """Delete staging/old folders that a crashed Blender left behind in ``parent``."""
    if os.path.isdir(parent):
        for name in os.listdir(parent):
            if name.startswith((STAGING_PREFIX, OLD_PREFIX)):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


class PipJob:
    """A pip subprocess whose output a background thread collects; poll it from a timer.

    With ``staging``/``target`` pip installs into ``<staging>/site-packages``; when pip succeeded
    and nobody cancelled, the reader thread ``promote``s that folder to ``target``; either way it
    then deletes ``staging``.
    ``outcome`` is then "installed", "failed" or "cancelled"."""

    def __init__(self, cmd: list[str], env: dict | None = None, staging: str | None = None,
                 target: str | None = None):
        self.cmd = cmd
        self.env = env
        self.staging, self.target = staging, target
        self.lines: collections.deque[str] = collections.deque(maxlen=400)
        self.returncode: int | None = None
        self.cancelled = False
        self.outcome = ""
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
        with self._lock:  # from here on a cancel no longer changes the outcome
            ok = self._proc.returncode == 0 and not self.cancelled
            outcome = "cancelled" if self.cancelled else ("installed" if ok else "failed")
            if self.staging is not None:
                try:
                    if ok:
                        self.lines.append(f"Moving the packages into {self.target}")
                        promote(os.path.join(self.staging, "site-packages"), self.target)
                except OSError as exc:
                    outcome = "failed"
                    self.lines.append(f"could not replace {self.target} ({exc}); if a package in it is "
                                      "in use, restart Blender and install again")
                finally:
                    shutil.rmtree(self.staging, ignore_errors=True)
            self.outcome = outcome
            rc = self._proc.returncode
            self.returncode = 1 if outcome == "failed" and rc == 0 else rc  # set last: ends `running`

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    def cancel(self) -> None:
        with self._lock:
            if self.returncode is not None or (self._proc is not None and self._proc.poll() is not None):
                return  # pip has ended: too late to cancel (the reader thread decides the outcome)
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
        kept = " (the previous installation is unchanged)" if self.staging is not None else ""
        if self.running:
            return f"pip: {last[:120]}" if last else "pip: starting…"
        if self.cancelled:
            return "Cancelled" + kept
        if self.returncode == 0:
            return "Installed; press Check GPU to render a test frame"
        if self.returncode is not None:
            return f"pip failed ({self.returncode}){kept}: {last[:120]}"
        return ""

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)
