"""The reference projection agrees with gsplat's own pure-PyTorch twin (runs on CPU, no CUDA).

gsplat's ``_torch_impl`` mirrors its CUDA projection and SH kernels; it imports and runs without
a GPU and never starts a CUDA build. This pins our reference to gsplat's rules (EWA Jacobian with
the field-of-view clamp, 0.3 px dilation, compensation, conic layout, SH basis) on machines where
the gsplat-vs-reference image test is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.avatar.gaussian_set import GaussianSet
from engine.raster.camera import Camera, look_at
from engine.raster.common import prepare
from engine.raster.reference import project
from engine.raster.scenes import head_camera, head_shell

torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")


def persp_camera(eye=(0.0, -1.0, 0.1), w=64, h=48, f=60.0):
    return Camera(look_at(eye, (0.0, 0.0, 0.0)), f, f, w / 2, h / 2, w, h)


def ortho_camera(w=64, h=48, ppm=150.0):
    return Camera(look_at((0.0, -1.0, 0.1), (0, 0, 0)), ppm, ppm, w / 2 + 3.0, h / 2 - 2.0, w, h, 0.01, 100.0, True)


def random_gaussians(n=300, sh_degree=3, seed=0, spread=0.12):
    rng = np.random.default_rng(seed)
    return GaussianSet(rng.normal(0, spread, (n, 3)), rng.normal(-3.3, 0.6, (n, 3)), rng.normal(size=(n, 4)),
                       rng.normal(1.0, 2.0, n), rng.normal(0, 0.6, (n, (sh_degree + 1) ** 2, 3)))


def gsplat_projection(inp):
    f64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    quats = f64(inp.quats)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    covars, _ = torch_impl._quat_scale_to_covar_preci(quats, torch.exp(f64(inp.log_scales)),
                                                      compute_covar=True, compute_preci=False)
    ks = f64([[inp.fx, 0.0, inp.cx], [0.0, inp.fy, inp.cy], [0.0, 0.0, 1.0]])[None]
    radii, means2d, depths, conics, comps = torch_impl._fully_fused_projection(
        f64(inp.means), covars, f64(inp.world_to_cam)[None], ks, inp.width, inp.height, eps2d=0.3,
        near_plane=inp.near, far_plane=inp.far, calc_compensations=True,
        camera_model="ortho" if inp.orthographic else "pinhole")
    k = (inp.sh_degree + 1) ** 2
    colours = torch_impl._spherical_harmonics(inp.sh_degree, f64(inp.means) - f64(inp.campos),
                                              f64(inp.sh[:, :k]))
    return radii[0], means2d[0], depths[0], conics[0], comps[0], torch.clamp_min(colours + 0.5, 0.0)


@pytest.mark.parametrize("scene", ["random", "head", "ortho", "side"])
@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_projection_matches_gsplat_torch(scene, sh_degree):
    if scene == "head":
        g, cam = head_shell(300, seed=1), head_camera(64, 48, fill=0.8)
    elif scene == "ortho":
        g, cam = random_gaussians(seed=5), ortho_camera()
    elif scene == "side":      # many splats off to the side: exercises the Jacobian's clamp
        g, cam = random_gaussians(seed=6, spread=0.6), persp_camera(eye=(0.0, -0.8, 0.0), f=80.0)
    else:
        g, cam = random_gaussians(seed=4), persp_camera()
    inp = prepare(g, cam, cam.width, cam.height, (0, 0, 0), "antialiased", sh_degree)
    ours = project(inp)
    radii, means2d, depths, conics, comps, colours = gsplat_projection(inp)
    theirs = (radii > 0).any(dim=-1)
    # we also cull splats whose compensated opacity is below 1/255 and use gsplat's CUDA
    # (opacity-aware) box, which is never larger than the torch twin's 3.33-sigma box
    assert bool((ours.keep & ~theirs).sum() == 0)
    keep = ours.keep
    assert int(keep.sum()) > 20
    torch.testing.assert_close(ours.means2d[keep], means2d[keep], rtol=1e-9, atol=1e-7)
    torch.testing.assert_close(ours.depths[keep], depths[keep], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.conics[keep], conics[keep], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.compensations[keep], comps[keep], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.colours[keep], colours[keep], rtol=1e-9, atol=1e-9)
    assert bool((ours.radii[keep] <= radii[keep]).all())


def test_classic_mode_has_no_compensation():
    inp = prepare(random_gaussians(seed=2), persp_camera(), 64, 48, (0, 0, 0), "classic", None)
    proj = project(inp)
    assert bool((proj.compensations == 1).all())
    aa = project(prepare(random_gaussians(seed=2), persp_camera(), 64, 48, (0, 0, 0), "antialiased", None))
    torch.testing.assert_close(aa.opacities, proj.opacities * aa.compensations)
