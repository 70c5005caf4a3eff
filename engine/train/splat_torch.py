"""Differentiable Gaussian rasterizer in torch for small training renders (CPU), plus the gsplat path (CUDA).

``rasterize(means, covs, colours, opacities, cameras, width, height, background)`` follows the
rules of ``engine/raster/common.py`` (EWA projection with the 1.3x field-of-view clamp, 0.3 px²
dilation, antialiased opacity compensation, alpha clamp 0.999, skip below 1/255, stop at
T <= 1e-4, front to back by view depth) with one approximation: a splat only reaches the
``window x window`` pixels around its centre. When every splat's box fits the window it draws
exactly what ``engine.raster.reference`` draws (``tests/engine/test_train_raster.py``).

How: every (splat, window pixel) pair gets its alpha; pairs are sorted by (image, pixel, depth
rank); the transmittance in front of each pair is the exclusive segmented product of (1 − alpha),
taken as a cumulative sum of log(1 − alpha) in float64; weights alpha·T are scattered into the
pixels. Memory and time are O(B · N · window²), independent of the image size.

Shapes: B images, N Gaussians each. means [B, N, 3] world; covs [B, N, 3, 3] world covariance;
colours [B, N, 3]; opacities [B, N] in (0, 1); cameras: world_to_cam [B, 4, 4] (OpenCV) and
intrinsics [B, 4] = (fx, fy, cx, cy) in pixels; background [3]. Returns rgb [B, 3, H, W] and
alpha [B, 1, H, W].
"""

from __future__ import annotations

import torch

from ..raster.common import ALPHA_THRESHOLD, EPS2D, FOV_CLAMP, MAX_ALPHA, T_MIN, sh_basis_terms

NEAR, FAR = 0.01, 100.0


def project(means, covs, world_to_cam, intrinsics, width: int, height: int, antialiased: bool = True):
    """-> (uv [B, N, 2] pixels, conics [B, N, 3] (a, b, c), depth [B, N], opacity factor [B, N], valid [B, N])."""
    rot, trans = world_to_cam[:, None, :3, :3], world_to_cam[:, None, :3, 3]
    pc = (rot @ means[..., None])[..., 0] + trans                                  # [B, N, 3]
    cov_c = rot @ covs @ rot.transpose(-1, -2)
    x, y, z = pc.unbind(-1)
    fx, fy, cx, cy = (intrinsics[:, i, None] for i in range(4))
    valid = (z >= NEAR) & (z <= FAR)
    zs = torch.where(valid, z, torch.ones_like(z))
    u, v = fx * x / zs + cx, fy * y / zs + cy
    lim_xp = (width - cx) / fx + (FOV_CLAMP - 1) * 0.5 * width / fx
    lim_xn = cx / fx + (FOV_CLAMP - 1) * 0.5 * width / fx
    lim_yp = (height - cy) / fy + (FOV_CLAMP - 1) * 0.5 * height / fy
    lim_yn = cy / fy + (FOV_CLAMP - 1) * 0.5 * height / fy
    tx = zs * torch.maximum(torch.minimum(x / zs, lim_xp), -lim_xn)
    ty = zs * torch.maximum(torch.minimum(y / zs, lim_yp), -lim_yn)
    zero = torch.zeros_like(zs)
    j = torch.stack([fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2], -1).reshape(*zs.shape, 2, 3)
    cov2d = j @ cov_c @ j.transpose(-1, -2)
    det_orig = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    a, c = cov2d[..., 0, 0] + EPS2D, cov2d[..., 1, 1] + EPS2D
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    det = a * c - b * b
    valid = valid & (det > 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    factor = torch.ones_like(det)
    if antialiased:
        factor = torch.sqrt((det_orig / safe_det).clamp_min(1e-12))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], -1)
    return torch.stack([u, v], -1), conics, z, factor, valid


def rasterize(means, covs, colours, opacities, world_to_cam, intrinsics, width: int, height: int,
              background, window: int = 7, antialiased: bool = True):
    """See the module docstring. window: odd splat footprint in pixels (its side)."""
    n_b, n = means.shape[:2]
    dev, dt = means.device, means.dtype
    uv, conics, depth, factor, valid = project(means, covs, world_to_cam, intrinsics, width, height, antialiased)
    opac = opacities * factor
    valid = valid & (opac >= ALPHA_THRESHOLD)
    k = window // 2
    offs = torch.arange(-k, k + 1, device=dev)
    oy, ox = torch.meshgrid(offs, offs, indexing="ij")
    centre = torch.floor(uv).long()                                              # [B, N, 2]
    px = centre[..., 0, None] + ox.reshape(-1)                                  # [B, N, W²]
    py = centre[..., 1, None] + oy.reshape(-1)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height) & valid[..., None]
    dx = uv[..., 0, None] - (px.to(dt) + 0.5)
    dy = uv[..., 1, None] - (py.to(dt) + 0.5)
    ca, cb, cc = (conics[..., i, None] for i in range(3))
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    alpha = (opac[..., None] * torch.exp(-sigma)).clamp_max(MAX_ALPHA)
    keep = inside & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)

    # depth rank of every splat within its image (front to back, stable like the reference)
    order = torch.argsort(depth.detach(), dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=dev).expand(n_b, n))
    pix = (torch.arange(n_b, device=dev)[:, None, None] * (height * width) + py * width + px)
    key = (pix * n + rank[..., None])[keep]
    alpha_k = alpha[keep]
    col_k = colours[:, :, None, :].expand(-1, -1, window * window, -1)[keep]
    pix_k = pix[keep]
    srt = torch.argsort(key)
    alpha_k, col_k, pix_k = alpha_k[srt], col_k[srt], pix_k[srt]

    log_t = torch.log1p(-alpha_k.double())
    incl = torch.cumsum(log_t, 0)
    start = torch.searchsorted(pix_k, pix_k)                                    # first pair of each pixel
    base = torch.where(start > 0, incl[(start - 1).clamp_min(0)], torch.zeros_like(incl))
    excl = incl - log_t - base
    t_incl = torch.exp(excl + log_t)
    contributes = t_incl > T_MIN
    weight = (alpha_k.double() * torch.exp(excl) * contributes).to(dt)
    n_pix = n_b * height * width
    rgb = torch.zeros(n_pix, 3, device=dev, dtype=dt).index_add(0, pix_k, weight[:, None] * col_k)
    log_final = torch.zeros(n_pix, device=dev, dtype=torch.float64).index_add(0, pix_k, log_t * contributes)
    t_final = torch.exp(log_final).to(dt)
    rgb = rgb + t_final[:, None] * torch.as_tensor(background, device=dev, dtype=dt)
    rgb = rgb.reshape(n_b, height, width, 3).permute(0, 3, 1, 2)
    alpha_img = (1.0 - t_final).reshape(n_b, 1, height, width)
    return rgb, alpha_img


def sh_colours(sh, means, world_to_cam, degree: int):
    """sh [B, N, K, 3], means [B, N, 3] -> colours [B, N, 3] = max(0, SH(dir from camera) + 0.5)."""
    rot, trans = world_to_cam[:, :3, :3], world_to_cam[:, :3, 3]
    campos = -(rot.transpose(1, 2) @ trans[..., None])[..., 0]                  # [B, 3]
    d = means - campos[:, None]
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = torch.stack(sh_basis_terms(d[..., 0], d[..., 1], d[..., 2], degree), -1)  # [B, N, K]
    return ((basis[..., None] * sh[..., : basis.shape[-1], :]).sum(-2) + 0.5).clamp_min(0.0)


def gsplat_arguments(means, covs, sh, opacities, world_to_cam, intrinsics, width: int, height: int,
                     background, sh_degree: int) -> list[dict]:
    """Keyword arguments of ``gsplat.rasterization`` (gsplat 1.5.3) for each of the B images.

    Every image has its own Gaussians, so each gets its own call without batch dimensions:
    means [N, 3], covars [N, 3, 3] (quats and scales None: gsplat reads the upper triangle),
    opacities [N], colors = SH coefficients [N, (sh_degree + 1)², 3] with ``sh_degree`` (gsplat
    evaluates max(0, SH(dir from the camera centre) + 0.5), as ``sh_colours`` does), viewmats
    [1, 4, 4] world-to-camera in OpenCV axes, Ks [1, 3, 3] from (fx, fy, cx, cy), backgrounds
    [1, 3] (added as T · background, as ``rasterize`` does). One call per image rather than
    gsplat's [B, N, …] batch form: its packed backward sums gradients in a warp by Gaussian id
    alone, so a warp spanning two images could mix their gradients.
    """
    n_b, dev, dt = means.shape[0], means.device, means.dtype
    ks = torch.zeros(n_b, 3, 3, device=dev, dtype=dt)
    fx, fy, cx, cy = intrinsics.to(dt).unbind(-1)
    ks[:, 0, 0], ks[:, 1, 1], ks[:, 0, 2], ks[:, 1, 2], ks[:, 2, 2] = fx, fy, cx, cy, 1.0
    viewmats = world_to_cam.to(dt)
    bg = torch.as_tensor(background, device=dev, dtype=dt).reshape(1, 3)
    k = (sh_degree + 1) ** 2
    return [dict(means=means[i], quats=None, scales=None, covars=covs[i], opacities=opacities[i],
                 colors=sh[i, :, :k], sh_degree=sh_degree, viewmats=viewmats[i, None], Ks=ks[i, None],
                 width=width, height=height, near_plane=NEAR, far_plane=FAR, backgrounds=bg,
                 rasterize_mode="antialiased", render_mode="RGB")
            for i in range(n_b)]


def rasterize_gsplat(means, covs, sh, opacities, world_to_cam, intrinsics, width: int, height: int,
                     background, sh_degree: int):
    """The same picture with gsplat on CUDA (rasterize_mode='antialiased'); differentiable.

    Arguments as ``rasterize`` but ``sh`` [B, N, K, 3] SH coefficients instead of colours;
    returns rgb [B, 3, H, W] and alpha [B, 1, H, W].
    """
    from gsplat import rasterization

    rgbs, alphas = [], []
    for kwargs in gsplat_arguments(means, covs, sh, opacities, world_to_cam, intrinsics, width, height,
                                   background, sh_degree):
        col, alpha, _ = rasterization(**kwargs)                                 # [1, H, W, 3], [1, H, W, 1]
        rgbs.append(col[0].permute(2, 0, 1))
        alphas.append(alpha[0].permute(2, 0, 1))
    return torch.stack(rgbs), torch.stack(alphas)
