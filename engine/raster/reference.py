"""Reference rasterizer: plain PyTorch (float64), written to be read, the truth the others match.

Every Gaussian is projected, the survivors are sorted front to back by view depth, and each one
is composited into every pixel of the image in turn. There is no tiling and no bounding box:
that is why it is slow (O(pixels x Gaussians)) and why it is the truth. Keep scenes small.
The rules are written down in ``common.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..avatar.gaussian_set import GaussianSet
from .camera import Camera
from .common import (ALPHA_THRESHOLD, EPS2D, EXTEND_MAX, FOV_CLAMP, MAX_ALPHA, T_MIN, RenderInputs,
                     RenderResult, empty_result, prepare, sh_basis_terms)

DTYPE = torch.float64


def covariances_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[N, 4] unit wxyz quaternions, [N, 3] standard deviations -> [N, 3, 3] Σ = R S S^T R^T."""
    w, x, y, z = quats.unbind(-1)
    rot = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)
    m = rot * scales[:, None, :]          # R S
    return m @ m.transpose(1, 2)


def sh_to_colour(sh: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """[N, K, 3] coefficients, [N, 3] view directions -> [N, 3] colour max(0, SH(dir) + 0.5)."""
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z = d.unbind(-1)
    b = torch.stack(sh_basis_terms(x, y, z, degree), dim=-1)                    # [N, K]
    return (b[..., None] * sh[:, : b.shape[1]]).sum(dim=1).add(0.5).clamp_min(0.0)


@dataclass(frozen=True)
class Projection:
    """Every Gaussian in screen space (torch float64; N = all Gaussians, culled ones included).

    means2d [N, 2] pixels; cov2d [N, 2, 2] before dilation; conics [N, 3] = (a, b, c) of the
    inverse of the dilated covariance (sigma = a dx²/2 + b dx dy + c dy²/2); opacities [N] after
    the antialiasing compensation (if any); compensations [N] (ones in classic mode); depths [N]
    view z; radii [N, 2] box half-sizes in pixels; colours [N, 3]; keep [N] bool (not culled).
    """

    means2d: torch.Tensor
    cov2d: torch.Tensor
    conics: torch.Tensor
    opacities: torch.Tensor
    compensations: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    colours: torch.Tensor
    keep: torch.Tensor


def project(inp: RenderInputs) -> Projection:
    """Project checked inputs (``common.prepare``) to screen space; the rules are in common.py."""
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=DTYPE)  # noqa: E731
    width, height = inp.width, inp.height

    # 1. World -> camera (OpenCV: x right, y down, z forward).
    w2c = t(inp.world_to_cam)
    rot_wc, trans_wc = w2c[:3, :3], w2c[:3, 3]
    means = t(inp.means)
    mean_c = means @ rot_wc.T + trans_wc                               # [N, 3]
    quats = t(inp.quats)
    qnorm = quats.norm(dim=-1, keepdim=True)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=DTYPE).expand_as(quats)
    quats = torch.where(qnorm > 0, quats / qnorm.clamp_min(1e-300), identity)
    cov_c = rot_wc @ covariances_3d(quats, torch.exp(t(inp.log_scales))) @ rot_wc.T   # [N, 3, 3]
    x, y, z = mean_c.unbind(-1)

    # 2. Projection of the mean and the local affine approximation J (EWA).
    n = inp.count
    jac = torch.zeros(n, 2, 3, dtype=DTYPE)
    if inp.orthographic:
        u, v = inp.fx * x + inp.cx, inp.fy * y + inp.cy
        jac[:, 0, 0], jac[:, 1, 1] = inp.fx, inp.fy
    else:
        safe_z = torch.where(z > 0, z, torch.ones_like(z))       # culled below anyway
        u, v = inp.fx * x / safe_z + inp.cx, inp.fy * y / safe_z + inp.cy
        tan_x, tan_y = 0.5 * width / inp.fx, 0.5 * height / inp.fy
        lim_xp = (width - inp.cx) / inp.fx + (FOV_CLAMP - 1) * tan_x
        lim_xn = inp.cx / inp.fx + (FOV_CLAMP - 1) * tan_x
        lim_yp = (height - inp.cy) / inp.fy + (FOV_CLAMP - 1) * tan_y
        lim_yn = inp.cy / inp.fy + (FOV_CLAMP - 1) * tan_y
        tx = safe_z * (x / safe_z).clamp(-lim_xn, lim_xp)
        ty = safe_z * (y / safe_z).clamp(-lim_yn, lim_yp)
        jac[:, 0, 0] = inp.fx / safe_z
        jac[:, 0, 2] = -inp.fx * tx / safe_z**2
        jac[:, 1, 1] = inp.fy / safe_z
        jac[:, 1, 2] = -inp.fy * ty / safe_z**2
    cov2d = jac @ cov_c @ jac.transpose(1, 2)                          # [N, 2, 2]

    # 3. Low-pass dilation and the antialiasing compensation.
    det_orig = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    a = cov2d[:, 0, 0] + EPS2D
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    c = cov2d[:, 1, 1] + EPS2D
    det = a * c - b * b
    opacity = torch.sigmoid(t(inp.opacity_logits))
    compensation = torch.ones_like(opacity)
    if inp.antialiased:
        compensation = torch.sqrt((det_orig / det.clamp_min(1e-300)).clamp_min(0.0))
        opacity = opacity * compensation

    # 4. Culling (see common.py); the box only culls splats that cannot reach a pixel.
    keep = (z >= inp.near) & (z <= inp.far) & (det > 0) & (opacity >= ALPHA_THRESHOLD)
    extend = torch.sqrt(2 * torch.log(opacity.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(EXTEND_MAX)
    rx = torch.ceil(extend * torch.sqrt(a.clamp_min(0)))
    ry = torch.ceil(extend * torch.sqrt(c.clamp_min(0)))
    keep &= (rx > 0) | (ry > 0)
    keep &= (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height)

    # 5. Colour for the view direction; conic = inverse of the dilated 2D covariance.
    colour = sh_to_colour(t(inp.sh[:, : (inp.sh_degree + 1) ** 2]), means - t(inp.campos), inp.sh_degree)
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)
    return Projection(torch.stack([u, v], dim=-1), cov2d, conics, opacity, compensation, z,
                      torch.stack([rx, ry], dim=-1), colour, keep)


def composite(proj: Projection, width: int, height: int, background) -> RenderResult:
    """Blend the kept Gaussians front to back into every pixel (rules in common.py)."""
    idx = torch.nonzero(proj.keep).flatten()
    u, v = proj.means2d.unbind(-1)
    conic_a, conic_b, conic_c = proj.conics.unbind(-1)
    opacity, z, colour = proj.opacities, proj.depths, proj.colours
    order = idx[torch.argsort(z[idx], stable=True)]

    py, px = torch.meshgrid(torch.arange(height, dtype=DTYPE) + 0.5,
                            torch.arange(width, dtype=DTYPE) + 0.5, indexing="ij")
    trans = torch.ones(height, width, dtype=DTYPE)
    rgb = torch.zeros(height, width, 3, dtype=DTYPE)
    depth_sum = torch.zeros(height, width, dtype=DTYPE)
    active = torch.ones(height, width, dtype=torch.bool)
    for g in order.tolist():
        dx, dy = u[g] - px, v[g] - py
        sigma = 0.5 * (conic_a[g] * dx * dx + conic_c[g] * dy * dy) + conic_b[g] * dx * dy
        alpha = (opacity[g] * torch.exp(-sigma)).clamp_max(MAX_ALPHA)
        hit = active & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        next_t = trans * (1 - alpha)
        finished = hit & (next_t <= T_MIN)
        active &= ~finished
        hit &= ~finished
        weight = torch.where(hit, alpha * trans, torch.zeros_like(alpha))
        rgb += weight[..., None] * colour[g]
        depth_sum += weight * z[g]
        trans = torch.where(hit, next_t, trans)
        if not bool(active.any()):
            break

    alpha_img = 1 - trans
    rgb = rgb + trans[..., None] * torch.as_tensor(np.asarray(background), dtype=DTYPE)
    depth = torch.where(alpha_img > 0, depth_sum / alpha_img.clamp_min(1e-300), torch.full_like(depth_sum, np.inf))
    rgba = torch.cat([rgb, alpha_img[..., None]], dim=-1)
    f32 = lambda a: a.numpy().astype(np.float32)  # noqa: E731
    return RenderResult(f32(rgba), f32(depth), f32(alpha_img))


def render(gaussians: GaussianSet, camera: Camera, width: int, height: int, background=(0.0, 0.0, 0.0),
           *, mode: str = "antialiased", sh_degree: int | None = None, backend: str = "reference") -> RenderResult:
    """Render ``gaussians`` [N] seen by ``camera`` into a ``height`` x ``width`` image.

    Returns RenderResult(rgba [H, W, 4], depth [H, W], alpha [H, W]), float32; see common.py.
    ``backend`` is accepted for the shared signature and ignored.
    """
    inp = prepare(gaussians, camera, width, height, background, mode, sh_degree)
    if inp.count == 0:
        return empty_result(inp)
    proj = project(inp)
    if not bool(proj.keep.any()):
        return empty_result(inp)
    return composite(proj, inp.width, inp.height, inp.background)
