"""What every render backend shares: the result type, the rules, and input checking.

The rules (the same as gsplat 1.5.3's CUDA rasterizer, so that every backend draws the same
picture):

* Projection (EWA splatting). Σ = R S S^T R^T from the normalised quaternion and exp(log_scales);
  Σ_cam = W Σ W^T; Σ_2d = J Σ_cam J^T with J the Jacobian of the projection at the mean. For a
  perspective camera the mean's x/z and y/z used inside J are clamped to 1.3× the half field of
  view (``FOV_CLAMP``) so splats far outside the view do not explode. Orthographic: J = diag(fx, fy).
* Low-pass dilation: Σ_2d += ``EPS2D`` · I (0.3 px²). In ``"antialiased"`` mode each opacity is
  multiplied by sqrt(max(0, det Σ_2d / det(Σ_2d + 0.3 I))) (energy-preserving, Mip-Splatting style);
  ``"classic"`` only dilates.
* Culling: depth z outside [near, far], det(Σ_2d + 0.3 I) <= 0, opacity (after compensation)
  < ``ALPHA_THRESHOLD``, or the splat's box outside the image. The box half-size per axis is
  ceil(k · sqrt(Σ_2d[i,i])) with k = min(3.33, sqrt(2 ln(opacity / ALPHA_THRESHOLD))): outside
  it every pixel's alpha is below ``ALPHA_THRESHOLD``, so the box changes no pixel.
* Per pixel (centre at integer + 0.5), front to back by view depth z:
  σ = ½ d^T Σ_2d⁻¹ d, alpha = min(``MAX_ALPHA``, opacity · exp(-σ)); skip when σ < 0 or
  alpha < ``ALPHA_THRESHOLD``; if T·(1 - alpha) <= ``T_MIN`` stop the pixel *without* adding this
  splat; otherwise add colour · alpha · T, z · alpha · T, then T *= 1 - alpha.
  (gsplat clamps alpha at 0.999, not 0.99, and its stop is exclusive; we follow gsplat.)
* Colour: real SH of degree ``sh_degree`` evaluated for the unit direction camera centre -> mean
  (orthographic cameras too, as gsplat does), colour = max(0, SH + 0.5).
* Output: rgb = Σ colour·alpha·T + T_final · background; alpha = 1 - T_final; depth = expected
  z = Σ z·alpha·T / alpha where alpha > 0 and +inf where alpha == 0 (nothing drawn).
  With the default black background ``rgba`` is premultiplied; with another background the rgb
  is the image over that background and the alpha channel still says what the splats cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError, check_shape
from .camera import Camera

MODES = ("antialiased", "classic")
EPS2D = 0.3               # px², added to the 2D covariance
ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
T_MIN = 1e-4              # a pixel stops when its transmittance would fall to this or below
FOV_CLAMP = 1.3           # perspective Jacobian: |x/z| clamped to the half field of view * 1.3
EXTEND_MAX = 3.33         # box half-size in standard deviations, at most
TILE = 16                 # tile edge in pixels for the tiled backends

# Real spherical-harmonic basis constants (the usual graphics convention, also gsplat's / 3DGS').
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis_terms(x, y, z, degree: int) -> list:
    """The real SH basis functions up to ``degree`` (≤ 3) at unit directions (x, y, z): a list of
    (degree + 1)² arrays shaped like ``x``. Pure arithmetic, so numpy arrays and torch tensors
    both work; the one definition of the basis and its sign convention (as in 3DGS and gsplat)."""
    terms = [x * 0 + SH_C0]
    if degree >= 1:
        terms += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        terms += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy),
                  SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree >= 3:
        terms += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z,
                  SH_C3[2] * y * (4 * zz - xx - yy), SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
                  SH_C3[4] * x * (4 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
                  SH_C3[6] * x * (xx - 3 * yy)]
    return terms


@dataclass(frozen=True)
class RenderResult:
    """One rendered frame.

    rgba  [H, W, 4] float32: rgb + alpha; premultiplied when the background is black.
    depth [H, W] float32: expected view depth z (metres along the camera axis) of what is drawn,
          alpha-weighted and divided by alpha; +inf where alpha == 0.
    alpha [H, W] float32: coverage, 1 - final transmittance (equals rgba[..., 3]).
    Row 0 is the top of the image (OpenCV); Blender's render result wants the bottom row first.
    backend: the backend that drew it ("cpu", "gsplat", "reference"), set by ``raster.render``;
    fallback: why ``backend="auto"`` ended on the CPU after gsplat failed ("" otherwise).
    """

    rgba: np.ndarray
    depth: np.ndarray
    alpha: np.ndarray
    backend: str = ""
    fallback: str = ""


@dataclass(frozen=True)
class RenderInputs:
    """Checked inputs every backend starts from; arrays are the GaussianSet's own (float32).

    means [N, 3], quats [N, 4] (wxyz, not yet normalised: a zero quaternion means identity),
    log_scales [N, 3], opacity_logits [N], sh [N, K, 3] of which the first (sh_degree + 1)^2
    coefficients are used, world_to_cam [4, 4] float64, campos [3] float64, background [3] float32.
    Intrinsics are already scaled to width x height.
    """

    means: np.ndarray
    quats: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray
    sh_degree: int
    world_to_cam: np.ndarray
    campos: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    near: float
    far: float
    orthographic: bool
    width: int
    height: int
    background: np.ndarray
    antialiased: bool

    @property
    def count(self) -> int:
        return int(self.means.shape[0])


def prepare(gaussians: GaussianSet, camera: Camera, width: int, height: int, background,
            mode: str, sh_degree: int | None) -> RenderInputs:
    """Check the render arguments and bring them to the form every backend uses.

    If (width, height) differs from the camera's own size, the intrinsics are scaled to the new
    pixel grid (the same view at another resolution). ``sh_degree=None`` uses every coefficient
    the set has; a higher degree than the set has is clamped to the set's degree.
    """
    if not isinstance(gaussians, GaussianSet):
        raise GaussianHeadsError(f"render needs a GaussianSet, got {type(gaussians).__name__}")
    if not isinstance(camera, Camera):
        raise GaussianHeadsError(f"render needs a Camera, got {type(camera).__name__}")
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise GaussianHeadsError(f"image size must be at least 1x1, got {width}x{height}")
    if mode not in MODES:
        raise GaussianHeadsError(f"render mode must be one of {MODES}, got {mode!r}")
    bg = np.asarray(background, np.float32).reshape(-1)
    check_shape("background", bg, (3,))
    check_shape("camera.world_to_cam", np.asarray(camera.world_to_cam), (4, 4))
    if camera.width < 1 or camera.height < 1:
        raise GaussianHeadsError(f"camera size must be at least 1x1, got {camera.width}x{camera.height}")
    cam = camera.scaled(width, height)
    if not (np.isfinite([cam.fx, cam.fy, cam.cx, cam.cy]).all() and cam.fx > 0 and cam.fy > 0):
        raise GaussianHeadsError(f"camera focal lengths must be positive and finite, got fx={cam.fx}, fy={cam.fy}")
    have = gaussians.sh_degree
    degree = have if sh_degree is None else int(sh_degree)
    if degree < 0 or degree > 3:
        raise GaussianHeadsError(f"SH degree must be 0..3, got {sh_degree}")
    w2c = np.asarray(cam.world_to_cam, np.float64)
    return RenderInputs(
        means=gaussians.means, quats=gaussians.quats, log_scales=gaussians.log_scales,
        opacity_logits=gaussians.opacity_logits, sh=gaussians.sh, sh_degree=min(degree, have),
        world_to_cam=w2c, campos=cam.position,
        fx=float(cam.fx), fy=float(cam.fy), cx=float(cam.cx), cy=float(cam.cy),
        near=float(cam.near), far=float(cam.far), orthographic=bool(cam.orthographic),
        width=width, height=height, background=bg, antialiased=(mode == "antialiased"),
    )


def empty_result(inputs: RenderInputs) -> RenderResult:
    """Nothing drawn: background colour, zero alpha, infinite depth."""
    h, w = inputs.height, inputs.width
    rgba = np.zeros((h, w, 4), np.float32)
    rgba[..., :3] = inputs.background
    return RenderResult(rgba, np.full((h, w), np.inf, np.float32), np.zeros((h, w), np.float32))
