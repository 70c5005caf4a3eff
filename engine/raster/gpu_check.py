"""Can gsplat render here? Answered by rasterizing a real frame, or by saying exactly why not.

``check_gpu(progress)`` goes step by step and stops at the first that fails, naming it:
torch imports -> torch sees a CUDA device -> gsplat imports -> gsplat rasterizes a test frame
(the first call builds gsplat's CUDA kernels, which can take minutes: run this off the UI thread;
``progress(text)`` says which step is running) -> the frame matches the CPU rasterizer.
No bpy; Blender's "Check GPU" operator (operators/gpu_deps.py) runs it in a thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

# gsplat's CUDA kernels use fast math; the CPU rasterizer does not: they agree to ~1e-3.
MATCH_TOLERANCE = 2e-2


@dataclass(frozen=True)
class GpuCheck:
    torch: str | None        # torch version, None when it does not import
    cuda: str | None         # CUDA device name, None without a device
    gsplat: str | None       # gsplat version, None when it does not import
    rendered: bool = False   # gsplat rasterized the test frame
    ms: float | None = None  # that frame's time (the first call includes the CUDA build)
    max_diff: float | None = None  # largest |gsplat - cpu| over the frame's RGBA
    problem: str = ""        # why gsplat cannot be used ("" when ready)

    @property
    def ready(self) -> bool:
        return self.rendered and not self.problem

    def summary(self) -> str:
        if self.ready:
            return (f"Ready: gsplat {self.gsplat} rendered a test frame on {self.cuda} in {self.ms:.0f} ms "
                    f"(matches the CPU within {self.max_diff:.1e}); torch {self.torch}")
        return f"Not ready: {self.problem}"


def _test_scene(n: int = 2048, size: int = 64):
    from ..avatar.gaussian_set import GaussianSet
    from .camera import Camera, look_at

    rng = np.random.default_rng(0)
    means = rng.normal(size=(n, 3)) * 0.1
    quats = rng.normal(size=(n, 4))
    g = GaussianSet(means, np.full((n, 3), np.log(0.01)) + rng.normal(size=(n, 3)) * 0.2,
                    quats / np.linalg.norm(quats, axis=1, keepdims=True), rng.normal(size=n) + 1.0,
                    rng.normal(size=(n, 1, 3)) * 0.5)
    camera = Camera(look_at((0.0, -0.8, 0.0), (0.0, 0.0, 0.0)), size * 1.2, size * 1.2, size / 2, size / 2, size, size)
    return g, camera, size


def _installed_version(name: str) -> str | None:
    """A distribution's version from its metadata, without importing it (None when absent)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_gpu(progress: Callable[[str], None] = lambda text: None) -> GpuCheck:
    """Run the steps in the module docstring; never raises for a missing or broken GPU stack."""
    progress("importing torch")
    try:
        import torch
    except Exception as exc:
        return GpuCheck(None, None, None, problem=f"torch is not installed ({type(exc).__name__}: {exc})"[:300])
    version = torch.__version__
    progress("looking for a CUDA device")
    try:
        has_cuda = bool(torch.cuda.is_available())
        cuda = torch.cuda.get_device_name(0) if has_cuda else None
    except Exception as exc:
        return GpuCheck(version, None, _installed_version("gsplat"),
                        problem=f"torch {version} cannot query CUDA ({exc})"[:300])
    if cuda is None:
        built = torch.version.cuda
        why = (f"built for CUDA {built}, but it sees no CUDA device (driver or GPU missing)" if built
               else "a CPU-only build: install a CUDA build of torch")
        return GpuCheck(version, None, _installed_version("gsplat"),
                        problem=f"no CUDA device: torch {version} is {why}")
    progress("importing gsplat")
    try:
        import gsplat
    except Exception as exc:
        return GpuCheck(version, cuda, None, problem=f"gsplat is not installed ({type(exc).__name__}: {exc})"[:300])
    gsplat_version = getattr(gsplat, "__version__", "?")
    progress("rasterizing a test frame with gsplat (the first time builds its CUDA kernels: minutes)")
    from ..errors import GaussianHeadsError
    from . import _FAILED, gsplat_backend, render

    gsplat_backend.available.cache_clear()  # gsplat may have been installed since it was asked
    g, camera, size = _test_scene()
    try:
        start = time.perf_counter()
        gpu = render(g, camera, size, size, backend="gsplat")
        ms = (time.perf_counter() - start) * 1000
    except GaussianHeadsError as exc:
        return GpuCheck(version, cuda, gsplat_version, problem=str(exc)[:400])
    progress("comparing with the CPU rasterizer")
    cpu = render(g, camera, size, size, backend="cpu")
    diff = float(np.abs(gpu.rgba - cpu.rgba).max())
    problem = "" if diff <= MATCH_TOLERANCE else (
        f"gsplat rendered, but its frame differs from the CPU rasterizer by {diff:.3f} (> {MATCH_TOLERANCE})")
    if float(cpu.alpha.sum()) == 0.0:
        problem = "the test frame is empty (internal error)"
    if not problem:
        _FAILED.discard("gsplat")  # "auto" may use gsplat again after an earlier failure
    return GpuCheck(version, cuda, gsplat_version, True, ms, diff, problem)
