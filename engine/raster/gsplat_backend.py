"""gsplat backend: ``gsplat.rasterization`` on a CUDA device.

gsplat is imported only inside ``render`` and only once ``torch.cuda.is_available()`` is true:
its first rasterization call JIT-compiles CUDA whenever ``nvcc`` exists, and that build fails on
machines without a GPU. ``available()`` answers without importing gsplat.

That first build takes minutes and must never run on Blender's UI thread: ``ready()`` says whether
a rasterization has succeeded in this process, and ``build_in_background()`` starts the build (one
tiny frame) in a daemon thread; ``build_status()`` is its progress or failure, for the UI.
Interactive callers (the viewport) render on the CPU until ``ready()``.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
import time

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError
from .camera import Camera
from .common import RenderInputs, RenderResult, empty_result, prepare


_READY = threading.Event()              # a rasterization succeeded in this process
_BUILD_LOCK = threading.Lock()
_build: dict = {"thread": None, "started": 0.0, "error": ""}


def ready() -> bool:
    """True once gsplat has rasterized in this process (its CUDA kernels are built)."""
    return _READY.is_set()


def build_in_background() -> None:
    """Start the first-use CUDA build (one tiny frame) in a daemon thread, once per process."""
    with _BUILD_LOCK:
        if _READY.is_set() or _build["thread"] is not None:
            return
        _build["started"] = time.perf_counter()

        def build():
            from ..avatar.gaussian_set import GaussianSet as _Set
            from .camera import look_at

            one = _Set(np.zeros((1, 3)), np.full((1, 3), -3.0), np.array([[1.0, 0.0, 0.0, 0.0]]),
                       np.zeros(1), np.zeros((1, 1, 3)))
            try:
                render(one, Camera(look_at((0.0, -1.0, 0.0), (0.0, 0.0, 0.0)), 20.0, 20.0, 8.0, 8.0, 16, 16), 16, 16)
            except Exception as exc:  # shown by build_status(); the CPU keeps rendering
                _build["error"] = str(exc)

        _build["thread"] = threading.Thread(target=build, name="gaussian_heads_gsplat_build", daemon=True)
        _build["thread"].start()


def build_status() -> str:
    """"" (never started or done), the build's progress, or why it failed."""
    if _READY.is_set():
        return ""
    if _build["error"]:
        return f"gsplat could not build its CUDA kernels: {_build['error']}"
    if _build["thread"] is not None:
        return f"gsplat is compiling its CUDA kernels (first use, {time.perf_counter() - _build['started']:.0f} s)"
    return ""


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when gsplat and torch are installed and torch sees a CUDA device (asked once)."""
    try:
        if importlib.util.find_spec("gsplat") is None or importlib.util.find_spec("torch") is None:
            return False
        import torch
    except (ImportError, OSError, ValueError):  # blocked or broken install: not available
        return False
    return bool(torch.cuda.is_available())


def render(gaussians: GaussianSet, camera: Camera, width: int, height: int, background=(0.0, 0.0, 0.0),
           *, mode: str = "antialiased", sh_degree: int | None = None, backend: str = "gsplat") -> RenderResult:
    """Render ``gaussians`` [N] seen by ``camera`` into a ``height`` x ``width`` image with gsplat.

    Returns RenderResult(rgba [H, W, 4], depth [H, W], alpha [H, W]), float32 numpy, the same
    picture as ``reference.render``. Raises GaussianHeadsError without CUDA.
    """
    inp = prepare(gaussians, camera, width, height, background, mode, sh_degree)
    if not available():
        raise GaussianHeadsError("the gsplat backend needs gsplat and a CUDA GPU; use the 'cpu' backend")
    if inp.count == 0:
        return empty_result(inp)
    try:
        colours, alphas = _rasterize(inp)
    except ImportError as exc:  # gsplat or one of its dependencies does not import
        from . import backend_import_error

        raise backend_import_error("gsplat", exc) from exc
    except Exception as exc:  # CUDA build, driver or out-of-memory failures: say what to do
        raise GaussianHeadsError(f"gsplat could not render on this GPU ({type(exc).__name__}: {exc}); "
                                 "choose the CPU backend") from exc
    _READY.set()
    colours = colours[0].float().cpu().numpy()                    # [H, W, 4]: rgb, expected depth
    alpha = np.ascontiguousarray(alphas[0, ..., 0].float().cpu().numpy())
    rgba = np.concatenate([colours[..., :3], alpha[..., None]], axis=-1).astype(np.float32)
    depth = np.where(alpha > 0, colours[..., 3], np.inf).astype(np.float32)
    return RenderResult(np.ascontiguousarray(rgba), depth, alpha)


def _rasterize(inp: RenderInputs):
    """gsplat.rasterization on CUDA -> (colours [1, H, W, 4] rgb + expected depth, alphas [1, H, W, 1])."""
    import torch
    from gsplat import rasterization

    dev = torch.device("cuda")
    f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    quats = f(inp.quats)
    norm = quats.norm(dim=-1, keepdim=True)
    quats = torch.where(norm > 0, quats, torch.tensor([1.0, 0.0, 0.0, 0.0], device=dev))
    k = (inp.sh_degree + 1) ** 2
    intrinsics = torch.tensor([[inp.fx, 0.0, inp.cx], [0.0, inp.fy, inp.cy], [0.0, 0.0, 1.0]],
                              dtype=torch.float32, device=dev)
    with torch.no_grad():
        colours, alphas, _ = rasterization(
            means=f(inp.means), quats=quats, scales=torch.exp(f(inp.log_scales)),
            opacities=torch.sigmoid(f(inp.opacity_logits)), colors=f(inp.sh[:, :k]),
            viewmats=f(inp.world_to_cam)[None], Ks=intrinsics[None],
            width=inp.width, height=inp.height, near_plane=inp.near, far_plane=inp.far,
            sh_degree=inp.sh_degree, packed=False, backgrounds=f(inp.background)[None],
            render_mode="RGB+ED", rasterize_mode="antialiased" if inp.antialiased else "classic",
            camera_model="ortho" if inp.orthographic else "pinhole",
        )
    return colours, alphas
