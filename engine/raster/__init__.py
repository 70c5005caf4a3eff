"""Render backends with one signature: reference (torch), cpu (numba), gsplat (CUDA).

``render(gaussians, camera, width, height, background=(0, 0, 0), *, mode="antialiased",
sh_degree=None, backend="auto") -> RenderResult`` with ``rgba [H, W, 4]`` (premultiplied on the
default black background), ``depth [H, W]`` (expected view depth, +inf where nothing is drawn)
and ``alpha [H, W]``, all float32 numpy. ``backend="auto"`` is gsplat when torch sees CUDA,
otherwise cpu. The rules every backend follows are written in ``common.py``. Backends are
imported on first use, so importing this package loads neither numba nor gsplat; a backend whose
library does not import raises one ``GaussianHeadsError`` saying what to install
(``backend_import_error``), never a bare ImportError.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys

# Idle OpenMP workers sleep rather than spin (see cpu.py). Set here, before anything in this
# package imports torch, whose bundled OpenMP runtime reads it once when it loads and is then the
# one numba's kernels use: spinning workers cost 30-60% more CPU time per frame on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError
from .camera import Camera, look_at
from .common import MODES, RenderResult

BACKENDS = ("gsplat", "cpu", "reference")
_MODULES = {"gsplat": "gsplat_backend", "cpu": "cpu", "reference": "reference"}

__all__ = ["BACKENDS", "MODES", "Camera", "RenderResult", "available_backends", "backend_import_error",
           "look_at", "offered_backends", "render", "resolve_backend", "torch_importable"]

#: Where the user installs the optional GPU libraries (torch, gsplat).
INSTALL_HINT = "Preferences > Add-ons > Gaussian Heads > Install GPU dependencies"
_NEEDS = {"reference": "the reference renderer needs PyTorch; install it from " + INSTALL_HINT,
          "gsplat": "the gsplat renderer needs PyTorch and gsplat; install them from " + INSTALL_HINT,
          "cpu": "the CPU renderer needs numba, which ships with the add-on; reinstall the add-on"}


def backend_import_error(backend: str, exc: Exception) -> GaussianHeadsError:
    """The one user-facing error for an optional backend whose library does not import."""
    return GaussianHeadsError(f"{_NEEDS[backend]} ({type(exc).__name__}: {exc})")


def torch_importable() -> bool:
    """True when ``import torch`` can succeed, without importing it (cheap: UI enum callbacks).

    A module already imported counts; a module blocked in ``sys.modules`` (None) or absent does not.
    """
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def offered_backends() -> list[str]:
    """Backend names the UI offers (besides "auto"): cpu and gsplat always (gsplat explains what
    it needs when chosen without a GPU), reference only when torch can be imported."""
    return [b for b in BACKENDS if b != "reference" or torch_importable()]


def _gsplat_available() -> bool:
    from .gsplat_backend import available

    return available()


def available_backends() -> list[str]:
    """Backends that can render on this machine, fastest first (gsplat only with CUDA, reference
    only with torch)."""
    return [b for b in BACKENDS if (b != "gsplat" or _gsplat_available())
            and (b != "reference" or torch_importable())]


_FAILED: set[str] = set()   # backends that failed at run time in this process ("auto" skips them)


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"gsplat"`` with CUDA (unless it failed before), else ``"cpu"``."""
    if backend == "auto":
        return "gsplat" if "gsplat" not in _FAILED and _gsplat_available() else "cpu"
    if backend not in BACKENDS:
        raise GaussianHeadsError(f"unknown render backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    if backend == "reference" and not torch_importable():
        raise GaussianHeadsError(_NEEDS["reference"])
    if backend == "gsplat" and not _gsplat_available():
        raise GaussianHeadsError("the gsplat backend needs a CUDA GPU, which this machine lacks; use 'cpu'")
    return backend


def render(gaussians: GaussianSet, camera: Camera, width: int, height: int, background=(0.0, 0.0, 0.0),
           *, mode: str = "antialiased", sh_degree: int | None = None, backend: str = "auto",
           interactive: bool = False) -> RenderResult:
    """Render ``gaussians`` [N] seen by ``camera`` into a ``height`` x ``width`` image.

    gaussians: GaussianSet (means [N,3], log_scales [N,3], quats [N,4], opacity_logits [N],
        sh [N,K,3]) in world space. camera: Camera (OpenCV); if its size is not width x height,
        its intrinsics are scaled to that grid. background: [3] rgb behind the splats.
    mode: "antialiased" (opacity compensated for the 0.3 px dilation) or "classic".
    sh_degree: None for all the set has, else 0..3 (clamped to what the set has).
    Returns RenderResult(rgba [H,W,4], depth [H,W], alpha [H,W]) float32, ``backend`` (the one that
    ran) and ``fallback`` (why "auto" did not use gsplat after all, else "").
    With ``"auto"``, a gsplat failure (CUDA build, driver) falls back to cpu for the rest of the
    process; asking for ``"gsplat"`` by name raises the GaussianHeadsError instead.
    Non-finite attributes (NaN, inf) raise GaussianHeadsError rather than poison the image.
    ``interactive`` (the viewport, on Blender's UI thread): gsplat's first-use CUDA build is
    started in the background instead (``gsplat_backend.build_in_background``) and the CPU renders,
    saying so in ``fallback``, until it is ready; a failed build is raised for "gsplat" by name and
    falls back to cpu for "auto".
    """
    if isinstance(gaussians, GaussianSet):  # other types are refused by the backend's checks
        gaussians.validate_finite("Gaussians to render")
    name = resolve_backend(backend)
    if interactive and name == "gsplat":
        from . import gsplat_backend

        if not gsplat_backend.ready():
            gsplat_backend.build_in_background()
            status = gsplat_backend.build_status()
            if status.startswith("gsplat could not build"):
                if backend != "auto":
                    raise GaussianHeadsError(status)
                _FAILED.add("gsplat")
            result = render(gaussians, camera, width, height, background, mode=mode, sh_degree=sh_degree,
                            backend="cpu")
            return dataclasses.replace(result, fallback=f"{status}; the CPU renders meanwhile")
    try:
        module = importlib.import_module(f".{_MODULES[name]}", __package__)
    except (ImportError, OSError) as exc:   # OSError: a library's shared objects fail to load
        raise backend_import_error(name, exc) from exc
    try:
        result = module.render(gaussians, camera, width, height, background, mode=mode,
                               sh_degree=sh_degree, backend=name)
    except GaussianHeadsError as exc:
        if backend != "auto" or name != "gsplat":
            raise
        _FAILED.add("gsplat")
        result = render(gaussians, camera, width, height, background, mode=mode, sh_degree=sh_degree,
                        backend="auto")
        return dataclasses.replace(result, fallback=f"gsplat failed, so the CPU rendered: {exc}")
    return dataclasses.replace(result, backend=name)  # the backend that actually ran
