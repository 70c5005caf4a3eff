"""``limit_blas_threads(n)``: run a block with numpy's OpenBLAS on at most ``n`` threads.

The bake MLP's mat-muls are small ([128, 512] · [512, 256]): a second OpenBLAS thread gains
nothing and costs CPU (and much wall time on a busy machine), like torch's threads did. numpy's
wheels bundle OpenBLAS, whose ``openblas_set_num_threads`` (``…64_`` in the ILP64 builds) is
called through ctypes on the libraries found beside numpy or already mapped into the process.
Best effort: where no OpenBLAS is found (another BLAS, an unusual build) nothing changes.
The setting is process-wide; it is restored on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

_SUFFIXES = ("", "64_", "_64")


def _library_paths() -> list[str]:
    paths: list[str] = []
    for package in ("numpy",):  # libraries of other packages count only once mapped (below)
        module = __import__(package)
        root = os.path.dirname(os.path.abspath(module.__file__))
        for folder in (root + ".libs", os.path.join(root, ".libs"), os.path.join(root, ".dylibs")):
            paths += glob.glob(os.path.join(folder, "*openblas*"))
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths += [line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line]
    except OSError:
        pass
    return sorted(set(p for p in paths if os.path.isfile(p)))


def _controls() -> list[tuple]:
    """[(get, set)] ctypes functions of every OpenBLAS found (cached)."""
    global _CACHE
    if _CACHE is None:
        found = []
        for path in _library_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("openblas", "scipy_openblas"):
                for suffix in _SUFFIXES:
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and set_ is not None:
                        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                        found.append((get, set_))
        _CACHE = found
    return _CACHE


_CACHE: list | None = None


def blas_threads() -> list[int]:
    """Current thread counts of the OpenBLAS libraries found (empty when none)."""
    return [int(get()) for get, _ in _controls()]


@contextlib.contextmanager
def limit_blas_threads(n: int):
    """Within the block every OpenBLAS found uses at most ``n`` threads (n <= 0: unchanged)."""
    controls = _controls() if n > 0 else []
    old = [int(get()) for get, _ in controls]
    try:
        for (_, set_), count in zip(controls, old):
            if count > n:
                set_(int(n))
        yield
    finally:
        for (_, set_), count in zip(controls, old):
            set_(count)
