"""gsplat backend: ``gsplat.rasterization`` on a CUDA device.

gsplat is imported only inside ``render`` and only once ``torch.cuda.is_available()`` is true:
its first rasterization call JIT-compiles CUDA whenever ``nvcc`` exists, and that build fails on
machines without a GPU. ``available()`` answers without importing gsplat.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError
from .camera import Camera
from .common import RenderInputs, RenderResult, empty_result, prepare


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
