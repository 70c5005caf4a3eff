"""The training renderer's gsplat call, checked without CUDA.

``splat_torch.gsplat_arguments`` prepares one ``gsplat.rasterization`` call per image. These
tests check its shapes and camera matrices, run gsplat 1.5.3's own argument checks on them (the
CUDA projection is replaced by a sentinel that stops the call), compare gsplat's pure-PyTorch
projection and SH twins fed with those arguments against the torch rasterizer's ``project`` and
``sh_colours``, and run the generator -> Gaussians -> arguments path on the "meta" device, which
rejects CPU tensors mixed into another device's computation just as CUDA does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.raster.camera import look_at
from engine.raster.reference import covariances_3d
from engine.train.splat_torch import FAR, NEAR, gsplat_arguments, project, sh_colours

W, H = 40, 32


def batch(n_b=2, n=60, sh_degree=1, seed=0):
    """Gaussians in front of two OpenCV cameras: (means, covs, sh, opacities, world_to_cam, intrinsics)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_b, n, 3, generator=g) * 0.15
    quats = torch.nn.functional.normalize(torch.randn(n_b * n, 4, generator=g), dim=-1)
    scales = torch.exp(torch.randn(n_b * n, 3, generator=g) * 0.4 - 3.5)
    covs = covariances_3d(quats, scales).view(n_b, n, 3, 3)
    sh = torch.randn(n_b, n, (sh_degree + 1) ** 2, 3, generator=g) * 0.4
    opac = torch.rand(n_b, n, generator=g) * 0.9 + 0.05
    eyes = [(0.0, -1.0, 0.1), (0.4, -0.9, -0.2)][:n_b]
    w2c = torch.stack([torch.as_tensor(np.asarray(look_at(e, (0.0, 0.0, 0.0)), np.float32)) for e in eyes])
    intr = torch.tensor([[50.0, 52.0, 20.0, 15.0], [45.0, 44.0, 21.5, 16.5]])[:n_b]
    return means, covs, sh, opac, w2c, intr


def test_arguments_shapes_and_cameras():
    means, covs, sh, opac, w2c, intr = batch(sh_degree=2)
    calls = gsplat_arguments(means, covs, sh, opac, w2c, intr, W, H, (0.1, 0.2, 0.3), 2)
    assert len(calls) == 2
    for i, kw in enumerate(calls):
        assert kw["means"].shape == (60, 3) and kw["covars"].shape == (60, 3, 3) and kw["opacities"].shape == (60,)
        assert kw["quats"] is None and kw["scales"] is None
        assert kw["colors"].shape == (60, 9, 3) and kw["sh_degree"] == 2
        assert kw["viewmats"].shape == (1, 4, 4) and kw["Ks"].shape == (1, 3, 3)
        torch.testing.assert_close(kw["backgrounds"], torch.tensor([[0.1, 0.2, 0.3]]))
        torch.testing.assert_close(kw["viewmats"][0], w2c[i])
        fx, fy, cx, cy = intr[i].tolist()
        torch.testing.assert_close(kw["Ks"][0], torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]))
        assert (kw["width"], kw["height"], kw["near_plane"], kw["far_plane"]) == (W, H, NEAR, FAR)
        assert kw["rasterize_mode"] == "antialiased" and kw["render_mode"] == "RGB"
        assert kw["means"].data_ptr() == means[i].data_ptr()     # views: gradients reach the batch tensors


def test_arguments_pass_gsplat_checks(monkeypatch):
    """gsplat 1.5.3's ``rasterization`` accepts every call up to its CUDA projection."""
    rendering = pytest.importorskip("gsplat.rendering")
    means, covs, sh, opac, w2c, intr = batch()
    seen = []

    class Projected(Exception):
        pass

    def stop(means, covars, quats, scales, viewmats, Ks, width, height, **kwargs):
        seen.append((means, covars, quats, viewmats, Ks, width, height, kwargs))
        raise Projected

    monkeypatch.setattr(rendering, "fully_fused_projection", stop)
    for kw in gsplat_arguments(means, covs, sh, opac, w2c, intr, W, H, (0.0, 0.0, 0.0), 1):
        with pytest.raises(Projected):
            rendering.rasterization(**kw)
    assert len(seen) == 2
    m, cv, q, vm, ks, width, height, kwargs = seen[1]
    upper = covs[1][:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    torch.testing.assert_close(cv, upper)                      # covariances as given, upper triangle
    assert q is None and (width, height) == (W, H) and kwargs["calc_compensations"] is True
    assert vm.shape == (1, 4, 4) and ks.shape == (1, 3, 3)


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_gsplat_torch_twin_projects_and_shades_like_ours(sh_degree):
    """gsplat's PyTorch projection and SH, fed our arguments, agree with the torch rasterizer's."""
    torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, covs, sh, opac, w2c, intr = (t.double() for t in batch(sh_degree=sh_degree, seed=sh_degree))
    uv, conics, depth, factor, valid = project(means, covs, w2c, intr, W, H)
    colours = sh_colours(sh, means, w2c, sh_degree)
    for i, kw in enumerate(gsplat_arguments(means, covs, sh, opac, w2c, intr, W, H, (0.0, 0.0, 0.0), sh_degree)):
        radii, means2d, depths, conics_g, comps = torch_impl._fully_fused_projection(
            kw["means"], kw["covars"], kw["viewmats"], kw["Ks"], W, H, eps2d=0.3, near_plane=kw["near_plane"],
            far_plane=kw["far_plane"], calc_compensations=True)
        seen = (radii[0] > 0).all(-1) & valid[i]
        assert int(seen.sum()) > 20
        torch.testing.assert_close(means2d[0][seen], uv[i][seen])
        torch.testing.assert_close(depths[0][seen], depth[i][seen])
        torch.testing.assert_close(conics_g[0][seen], conics[i][seen])
        torch.testing.assert_close(comps[0][seen], factor[i][seen])
        campos = torch.inverse(kw["viewmats"])[0, :3, 3]
        shaded = torch_impl._spherical_harmonics(sh_degree, kw["means"] - campos, kw["colors"])
        torch.testing.assert_close(torch.clamp_min(shaded + 0.5, 0.0), colours[i])


def test_generator_to_gsplat_arguments_stays_on_device():
    """The CUDA training path (generator, Gaussians, gsplat arguments; augmentation, discriminator,
    loss) creates no tensor on the CPU: run on the meta device."""
    from engine.generator.networks import build_generator
    from engine.head_model import load_head_model
    from engine.train.discriminator import build_discriminator
    from engine.train.losses import augment, generator_loss
    from engine.train.model import GeneratorStep, TrainingHead
    from tests.engine.train_fixtures import tiny_generator_config

    model, cfg, dev, n_b = load_head_model("open"), tiny_generator_config(n_gaussians=64), torch.device("meta"), 2
    head = TrainingHead(model, cfg).to(dev)
    step = GeneratorStep(build_generator(cfg, seed=0).to(dev).train())
    params = {"shape": (model.n_shape,), "expr": (model.n_expr,), "global_rot": (3,), "neck": (3,), "jaw": (3,),
              "eyes": (2, 3), "translation": (3,)}
    params = {k: torch.zeros((n_b,) + s, device=dev) for k, s in params.items()}
    z = torch.randn(n_b, cfg.z_dim).to(dev)
    attributes, residuals = step(z, head.shape_maps(params["shape"]), head.condition(params["expr"], params["jaw"]))
    means, covs, sh, opac = head.gaussians(attributes, residuals, head.vertices(params))
    w2c, intr = torch.eye(4, device=dev).expand(n_b, 4, 4), torch.ones(n_b, 4, device=dev)
    calls = gsplat_arguments(means, covs, sh, opac, w2c, intr, W, H, (0.0, 0.0, 0.0), cfg.sh_degree)
    k = (cfg.sh_degree + 1) ** 2
    for kw in calls:
        tensors = [v for v in kw.values() if isinstance(v, torch.Tensor)]
        assert all(t.device == dev and t.dtype == torch.float32 for t in tensors)
        assert kw["colors"].shape == (64, k, 3) and kw["covars"].shape == (64, 3, 3)
    d = build_discriminator(16, 64, 32, seed=0).to(dev)
    fake, cue = torch.rand(n_b, 3, 16, 16).to(dev), torch.rand(n_b, 3, 16, 16).to(dev)
    logits = d(*augment(fake, cue, 0.5, torch.Generator().manual_seed(0)))   # CPU generator, as the loop's
    assert generator_loss(tuple(lg.float() for lg in logits)).device == dev
