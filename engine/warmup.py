"""Compile every numba kernel in the background, with progress other threads can read.

A kernel's first call compiles it: all of ours together take 10-45 s on 2 cores the first time
(docs/PERFORMANCE.md, Start-up), later sessions load numba's on-disk cache (``NUMBA_CACHE_DIR``)
in about a second. Blender starts ``start()`` when the add-on is enabled; a render first calls
``wait_for_kernels(on_progress)`` so it never compiles a kernel the warm-up is compiling (numba
would serialise the two compiles on its global lock anyway) and can say why it waits.

Each kernel calls real kernels with tiny inputs of the dtypes and layouts the add-on uses, so
the signatures compiled here are the ones later calls look up. A kernel that fails is reported
(``Progress.errors``) and the rest still run: the render then compiles (or fails) that kernel
itself, with the same error message.

The add-on's kernels compile in a **child process** (``Kernel.child``: Blender's own Python,
``sys.executable``, importing this package under the same module name so numba's on-disk cache,
which records it, serves this process), not in a thread of Blender's: LLVM compiling in a second
thread while Blender's main thread runs Python crashed a test process (a segfault inside
llvmlite), and a child can be stopped at any time. The background thread here only waits for the
child and records its progress; the first real call then loads the kernel from the cache (~0.5 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Collection, Sequence

import numpy as np


@dataclass(frozen=True)
class Kernel:
    name: str                     # shown to the user, e.g. "CPU rasterizer"
    run: Callable[[], None]       # calls the kernel(s) once with tiny inputs (in this process)
    child: str = ""               # if set: the function of this module a child process runs instead
    sources: tuple[str, ...] = () # engine files (relative) whose kernels the child compiles


@dataclass(frozen=True)
class Progress:
    """A snapshot of a warm-up. ``done`` counts kernels attempted (failed ones included)."""

    total: int
    done: int
    current: str                  # the kernel being compiled, "" when none
    errors: tuple[str, ...]       # "name: ExceptionType: message", one per failed kernel
    running: bool
    seconds: float                # since the warm-up started (until it ended)

    def text(self) -> str:
        if self.running:
            return f"Compiling CPU kernels {self.done}/{self.total}: {self.current} ({self.seconds:.0f} s)"
        if self.errors:
            return f"CPU kernels: {len(self.errors)} of {self.total} failed to compile: {self.errors[0]}"
        if self.done < self.total:
            return f"CPU kernel warm-up stopped after {self.done}/{self.total}"
        return f"CPU kernels ready ({self.seconds:.1f} s)"


class Warmup:
    """Runs ``kernels`` one after another in a daemon thread; ``progress()`` is thread-safe."""

    def __init__(self, kernels: Sequence[Kernel]):
        self.kernels = tuple(kernels)
        self._lock = threading.Lock()
        self._done = 0
        self._current = ""
        self._errors: list[str] = []
        self._finished: set[str] = set()   # names of the kernels attempted
        self._start = self._end = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Warmup:
        if self._thread is None:
            self._start = time.perf_counter()
            self._thread = threading.Thread(target=self._run, name="gaussian_heads_warmup", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for kernel in self.kernels:
                if self._stop.is_set():
                    break
                with self._lock:
                    self._current = kernel.name
                try:
                    if kernel.child:
                        if not cache_is_warm(kernel):  # a later session: nothing to compile
                            run_in_child(kernel.child, self._stop)
                            mark_warm(kernel)
                    else:
                        kernel.run()
                except Exception as exc:  # reported, and the other kernels still compile
                    if self._stop.is_set():
                        break
                    with self._lock:
                        self._errors.append(f"{kernel.name}: {type(exc).__name__}: {exc}"[:300])
                with self._lock:
                    self._done += 1
                    self._finished.add(kernel.name)
        finally:
            with self._lock:
                self._current = ""
                self._end = time.perf_counter()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def progress(self) -> Progress:
        with self._lock:
            start, end = self._start, self._end
            now = end if end is not None else time.perf_counter()
            return Progress(len(self.kernels), self._done, self._current, tuple(self._errors),
                            self._thread is not None and end is None, 0.0 if start is None else now - start)

    def wait(self, timeout: float | None = None, on_progress: Callable[[Progress], None] | None = None,
             cancel: Callable[[], bool] | None = None, interval: float = 0.25,
             needed: Collection[str] | None = None) -> Progress:
        """Block until the warm-up ends, or only until the kernels named in ``needed`` are done
        (or ``timeout`` s, or ``cancel()`` is true), calling ``on_progress(progress)`` from the
        caller's thread every ``interval`` s meanwhile."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.running and not self._has(needed):
            if on_progress is not None:
                on_progress(self.progress())
            if cancel is not None and cancel():
                break
            step = interval if deadline is None else min(interval, deadline - time.perf_counter())
            if step <= 0:
                break
            self._thread.join(step)
        return self.progress()

    def _has(self, needed: Collection[str] | None) -> bool:
        if needed is None:
            return False
        with self._lock:
            return set(needed) <= self._finished

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to stop; True when it has ended. A child process compiling is ended at
        once; an in-process kernel finishes first (the thread is a daemon, so it never keeps the
        process alive)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


# --- the add-on's kernels -------------------------------------------------------------------

def _lift() -> None:
    from .avatar.lift_kernel import lift_gaussians

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    faces = np.array([[0, 1, 2]], np.int32)
    bary = np.full((1, 3), 1 / 3, np.float32)
    zeros = np.zeros((1, 3), np.float32)
    quats = np.array([[1, 0, 0, 0]], np.float32)
    lift_gaussians(vertices, faces, np.zeros(1, np.int32), bary, zeros, zeros, quats, impl="numba")


def _raster() -> None:
    from . import scene_colour
    from .raster import cpu

    cpu.warm_up()
    scene_colour.warm_up()


def _blend() -> None:
    """Compiled without running: ``_blend`` is a parallel kernel, and running it here while a
    render runs another parallel kernel is unsafe on numba's workqueue threading layer."""
    import numba

    from .avatar.gaussian_set import GaussianSet
    from .bake import blend_kernel

    n, k = 2, 2
    attributes = ("xyz", "scale", "rotation", "opacity", "color")
    bases = {name: np.full((k, n * (hi - lo)), 0.01, np.float32)
             for name, (lo, hi) in blend_kernel.CHANNELS.items()}
    quats = np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1))
    neutral = blend_kernel.neutral_table(
        GaussianSet(np.zeros((n, 3)), np.zeros((n, 3)), quats, np.zeros(n), np.zeros((n, 1, 3))), attributes)
    eye, zero, q = np.eye(3, dtype=np.float32), np.zeros(3, np.float32), quats[0]
    coef = np.ones((len(attributes), k), np.float32)
    out = (np.empty((n, 3), np.float32), np.empty((n, 3), np.float32), np.empty((n, 4), np.float32),
           np.empty(n, np.float32), np.empty((n, 3), np.float32))
    for quantise in (True, False):  # the int8 and float32 tables are two signatures
        t = blend_kernel.build_tables(bases, attributes, n, k, quantise=quantise)
        args = (coef, t.table, t.scale, t.chan_attr, t.live, t.static, neutral, np.ones(n, np.float32), 2,
                eye, zero, q, eye, zero, q, *out)  # as blend_kernel.blend passes them
        blend_kernel._blend.compile(tuple(numba.typeof(a) for a in args))
    out = np.empty((n, 4), np.float32)
    blend_kernel.rotation_residual(quats, quats, out)


LIFT, RASTER, BLEND = "avatar lifting", "CPU rasterizer", "baked blend"


def default_kernels() -> tuple[Kernel, ...]:
    """Every numba kernel the add-on calls, first-needed first: posing, the rasterizer, then the
    baked-avatar blend (which a render of unbaked avatars need not wait for); each compiles in a
    child process."""
    return (Kernel(LIFT, _lift, child="_lift", sources=("avatar/lift_kernel.py",)),
            Kernel(RASTER, _raster, child="_raster", sources=("raster/cpu.py", "raster/cpu_tiles.py",
                                                                 "raster/common.py", "scene_colour.py")),
            Kernel(BLEND, _blend, child="_blend", sources=("bake/blend_kernel.py",)))


# --- "this cache already holds them" ----------------------------------------------------------
# A child that compiled a kernel leaves a marker in NUMBA_CACHE_DIR with a fingerprint of what
# numba keys its cache on (the source files' paths, sizes and times, numba's and Python's
# versions). A later session whose fingerprint matches starts no child: the first call loads the
# kernels from the cache itself (~0.5 s). Deleting the cache folder deletes the markers too.

def _fingerprint(kernel: Kernel) -> str:
    import hashlib
    from importlib import metadata

    engine_dir = os.path.dirname(os.path.abspath(__file__))
    parts = [sys.version, metadata.version("numba"), kernel.child]
    for rel in kernel.sources:
        path = os.path.join(engine_dir, rel)
        st = os.stat(path)
        parts += [path, str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _marker(kernel: Kernel) -> str | None:
    cache = os.environ.get("NUMBA_CACHE_DIR")
    return os.path.join(cache, f"gaussian_heads_warm{kernel.child}.txt") if cache and kernel.sources else None


def cache_is_warm(kernel: Kernel) -> bool:
    """True when a child already compiled ``kernel`` into this NUMBA_CACHE_DIR from these sources."""
    marker = _marker(kernel)
    try:
        with open(marker, encoding="ascii") as fh:
            return fh.read().strip() == _fingerprint(kernel)
    except (OSError, TypeError, ValueError):
        return False


def mark_warm(kernel: Kernel) -> None:
    marker = _marker(kernel)
    if marker is None:
        return
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w", encoding="ascii") as fh:
            fh.write(_fingerprint(kernel))
    except OSError:
        pass  # no marker: the next session compiles in a child again, which is only slower


# The child: make this package importable under its own full name (``bl_ext.<repo>.<id>`` in
# Blender, whose parents exist only inside Blender), import this module, call one function.
_CHILD = """
import importlib, sys, types
parent, folder, function = sys.argv[1:4]
if parent:
    parts = parent.split(".")
    for i in range(1, len(parts) + 1):
        package = types.ModuleType(".".join(parts[:i]))
        package.__path__ = [folder] if i == len(parts) else []
        sys.modules[package.__name__] = package
else:
    sys.path.insert(0, folder)
getattr(importlib.import_module((parent + "." if parent else "") + "engine.warmup"), function)()
"""


def child_command(function: str) -> list[str]:
    """The command line of a child running ``function`` of this module."""
    executable = sys.executable
    if not executable or not os.path.basename(executable).lower().startswith("python"):
        raise RuntimeError(f"no Python executable to compile in ({executable!r})")
    engine_package = __name__.rsplit(".", 1)[0]                   # "<parent>.engine" or "engine"
    parent = engine_package.rsplit(".", 1)[0] if "." in engine_package else ""
    folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [executable, "-c", _CHILD, parent, folder, function]


def run_in_child(function: str, stop: threading.Event | None = None, poll: float = 0.1) -> None:
    """Run ``function`` of this module in a child process with this process's ``sys.path`` and
    environment (so the same numba, the same ``NUMBA_CACHE_DIR``); raises RuntimeError with the
    child's last error lines if it fails; ends the child if ``stop`` is set meanwhile."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(child_command(function), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            if stop is not None and stop.wait(poll):
                proc.kill()
                proc.wait()
                raise RuntimeError("stopped")
            elif stop is None:
                time.sleep(poll)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    if proc.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"the compile process exited with {proc.returncode}")


# --- the process-wide warm-up ---------------------------------------------------------------

_current: Warmup | None = None
_current_lock = threading.Lock()


def start(kernels: Sequence[Kernel] | None = None) -> Warmup:
    """Start the process-wide warm-up (``default_kernels()`` unless given) and return it.
    With the default kernels, a running (not stopping) or cleanly finished warm-up is reused."""
    global _current
    with _current_lock:
        previous = _current
        if kernels is None and previous is not None:
            p = previous.progress()
            if (p.running and not previous.stopping) or (p.done == p.total and not p.errors):
                return previous
        if previous is not None:
            previous.stop(timeout=0.0)
        _current = Warmup(default_kernels() if kernels is None else kernels).start()
        return _current


def current() -> Warmup | None:
    return _current


def busy() -> bool:
    """True while the process-wide warm-up is compiling."""
    warmup = _current
    return warmup is not None and warmup.running


def wait_for_kernels(on_progress: Callable[[Progress], None] | None = None,
                     cancel: Callable[[], bool] | None = None, timeout: float | None = None,
                     needed: Collection[str] | None = None) -> float:
    """Wait for the process-wide warm-up if one is running (only until the ``needed`` kernels
    are done, when given); returns the seconds waited (0.0 when it did not wait).
    ``on_progress``/``cancel`` as in ``Warmup.wait``."""
    warmup = _current
    if warmup is None or not warmup.running or warmup._has(needed):
        return 0.0
    begin = time.perf_counter()
    warmup.wait(timeout=timeout, on_progress=on_progress, cancel=cancel, needed=needed)
    return time.perf_counter() - begin


def pending(needed: Collection[str]) -> Progress | None:
    """The running warm-up's progress while a kernel in ``needed`` is not done yet, else None."""
    warmup = _current
    if warmup is None or not warmup.running or warmup._has(needed):
        return None
    return warmup.progress()


def stop(timeout: float = 2.0) -> bool:
    """Stop the process-wide warm-up (see ``Warmup.stop``); True when no thread is left."""
    warmup = _current
    return True if warmup is None else warmup.stop(timeout)
