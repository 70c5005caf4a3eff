"""View-dependent colour (SH degree 1-3) turns with every transform applied to an avatar.

Engine level: rotated coefficients equal the original SH evaluated at the inversely rotated
direction (in the rasterizers' own basis), the fast rotation equals its quadrature twin, and
mirrors / non-uniform scales are handled or refused. Pixel level (cpu backend): an identity under a
turned object renders like the same identity seen from the correspondingly turned camera, and like
the identity pre-rotated by the twin.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine.avatar.frames import MODEL_TO_BLENDER
from engine.avatar.gaussian_set import GaussianSet
from engine.avatar.sh_rotation import band_matrices, rotate_sh, rotate_sh_reference, sh_basis
from engine.errors import GaussianHeadsError
from engine.raster import Camera, look_at, render
from engine.raster.reference import sh_to_colour
from engine.scene_render import AvatarInstance, pose_world


def _directions(n, seed):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _colour(sh, dirs):
    """[N, K, 3] coefficients seen from [M, 3] directions -> [N, M, 3] SH value (no +0.5, no clamp)."""
    return np.einsum("mk,nkc->nmc", sh_basis(dirs, {1: 0, 4: 1, 9: 2, 16: 3}[sh.shape[1]]), sh)


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_numpy_basis_is_the_rasterizers_basis(degree):
    k = (degree + 1) ** 2
    dirs = _directions(40, degree)
    # sh_to_colour adds 0.5 and clamps at 0: coefficients of 0.1 keep every value positive
    for j in range(k):
        sh = np.zeros((40, k, 3))
        sh[:, j] = 0.1
        torch_value = sh_to_colour(torch.as_tensor(sh), torch.as_tensor(dirs), degree).numpy() - 0.5
        np.testing.assert_allclose(torch_value[:, 0], 0.1 * sh_basis(dirs, degree)[:, j], atol=1e-12)


@pytest.mark.parametrize("degree", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotated_sh_equals_original_at_inverse_direction(degree, seed):
    k = (degree + 1) ** 2
    rng = np.random.default_rng(seed)
    sh = rng.normal(size=(30, k, 3)).astype(np.float32)
    rot = Rotation.random(random_state=seed).as_matrix()
    dirs = _directions(200, 100 + seed)
    new = _colour(rotate_sh(sh, rot).astype(np.float64), dirs)
    old = _colour(sh.astype(np.float64), dirs @ rot)           # rows: Rᵀ d
    np.testing.assert_allclose(new, old, atol=2e-5 * np.abs(old).max())
    assert np.abs(_colour(sh.astype(np.float64), dirs) - old).max() > 0.1   # the turn matters


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_fast_rotation_equals_quadrature_twin(degree):
    k = (degree + 1) ** 2
    sh = np.random.default_rng(degree).normal(size=(50, k, 3)).astype(np.float32)
    for seed in range(4):
        rot = Rotation.random(random_state=10 + seed).as_matrix()
        np.testing.assert_allclose(rotate_sh(sh, rot), rotate_sh_reference(sh, rot), atol=1e-5)


def test_band_matrices_are_orthogonal_and_compose():
    a, b = Rotation.random(2, random_state=4).as_matrix()
    for da, db, dab in zip(band_matrices(a), band_matrices(b), band_matrices(a @ b)):
        np.testing.assert_allclose(da @ da.T, np.eye(len(da)), atol=1e-10)
        np.testing.assert_allclose(da @ db, dab, atol=1e-10)       # D(A) D(B) = D(AB)
    for d in band_matrices(np.eye(3)):
        np.testing.assert_allclose(d, np.eye(len(d)), atol=1e-12)


def test_reflection_is_exact_and_non_uniform_scale_is_refused():
    sh = np.random.default_rng(5).normal(size=(20, 16, 3)).astype(np.float32)
    mirror = np.diag([-1.0, 1.0, 1.0]) @ Rotation.random(random_state=5).as_matrix()
    dirs = _directions(100, 6)
    np.testing.assert_allclose(_colour(rotate_sh(sh, mirror).astype(np.float64), dirs),
                               _colour(sh.astype(np.float64), dirs @ mirror), atol=1e-4)
    np.testing.assert_allclose(rotate_sh(sh, mirror), rotate_sh_reference(sh, mirror), atol=1e-5)
    for bad in (np.diag([1.0, 2.0, 1.0]), np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                2.0 * np.eye(3)):
        with pytest.raises(GaussianHeadsError, match="non-uniform scale"):
            rotate_sh(sh, bad)
    # a GaussianSet (its quaternions cannot mirror) refuses mirrors and non-uniform scales
    g = _random_set(10, 3)
    for bad in (np.diag([-1.0, 1.0, 1.0, 1.0]), np.diag([1.0, 2.0, 1.0, 1.0])):
        with pytest.raises(GaussianHeadsError):
            g.transformed(bad)


def test_degree_zero_and_uniform_scale():
    g = _random_set(10, 0)
    m = np.eye(4)
    m[:3, :3] = 1.7 * Rotation.random(random_state=1).as_matrix()
    np.testing.assert_array_equal(g.transformed(m).sh, g.sh)      # DC colour does not turn
    g3 = _random_set(10, 3)
    np.testing.assert_allclose(g3.transformed(m).sh, rotate_sh(g3.sh, m[:3, :3] / 1.7), atol=1e-6)


def _random_set(n, degree, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return GaussianSet(rng.normal(size=(n, 3)) * 0.1, np.full((n, 3), -3.0), q / np.linalg.norm(q, axis=1, keepdims=True),
                       np.full(n, 2.0), rng.normal(size=(n, (degree + 1) ** 2, 3)) * 0.4)


# --- pixels -----------------------------------------------------------------------------------

W = H = 96


@pytest.fixture(scope="module")
def sh3_identity():
    """A built-in identity (3,000 Gaussians) given strong random degree-3 view-dependent colour."""
    builtin = pytest.importorskip("engine.avatar.builtin")
    identity = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians=3000)).sample(0)
    canonical = identity.canonical
    rng = np.random.default_rng(7)
    sh = np.zeros((len(canonical), 16, 3), np.float32)
    sh[:, 0] = canonical.sh[:, 0]
    sh[:, 1:] = rng.normal(size=(len(canonical), 15, 3)) * 0.35
    return dataclasses.replace(identity, canonical=dataclasses.replace(canonical, sh=sh))


def _object_matrix(seed, scale=1.0):
    m = np.eye(4)
    m[:3, :3] = scale * Rotation.random(random_state=seed).as_matrix()
    m[:3, 3] = (0.3, -0.2, 0.5)
    return m


def _world_camera(means):
    centre = means.mean(axis=0)
    return Camera(look_at(centre + (0.1, -0.55, 0.15), centre), 110.0, 110.0, W / 2, H / 2, W, H)


@pytest.mark.parametrize("seed", [1, 2])
def test_turned_object_renders_like_the_turned_camera(sh3_identity, seed):
    """Object transform T (and the model→Blender turn) vs the camera moved by T⁻¹ instead."""
    params = sh3_identity.neutral_params()
    to_world = _object_matrix(seed) @ MODEL_TO_BLENDER            # rigid: the camera stays a camera
    world = pose_world(AvatarInstance("a", sh3_identity, params, _object_matrix(seed)))
    camera = _world_camera(world.means)
    model_camera = dataclasses.replace(camera, world_to_cam=camera.world_to_cam @ to_world)
    model = sh3_identity.pose(params)
    a = render(world, camera, W, H, backend="cpu").rgba
    b = render(model, model_camera, W, H, backend="cpu").rgba
    assert a[..., 3].max() > 0.5 and a[..., :3].std() > 0.05
    assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
    # without the SH turn the picture differs: the comparison can see it
    unturned = dataclasses.replace(world, sh=model.sh)
    c = render(unturned, camera, W, H, backend="cpu").rgba
    assert np.abs(c - b).max() > 0.1


def test_turned_object_renders_like_the_pre_rotated_identity(sh3_identity):
    """Scaled + rotated object vs the same Gaussians moved by hand (SH by the quadrature twin)."""
    params = sh3_identity.neutral_params()
    m = _object_matrix(3, scale=1.4) @ MODEL_TO_BLENDER
    world = pose_world(AvatarInstance("a", sh3_identity, params, _object_matrix(3, scale=1.4)))
    model = sh3_identity.pose(params)
    rot = m[:3, :3] / 1.4
    quat = Rotation.from_matrix(rot).as_quat()[[3, 0, 1, 2]]       # wxyz
    w, x, y, z = quat
    qm = np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])  # left product
    by_hand = GaussianSet(model.means @ m[:3, :3].T + m[:3, 3], model.log_scales + np.log(1.4),
                          model.quats @ qm.T, model.opacity_logits, rotate_sh_reference(model.sh, rot))
    camera = _world_camera(world.means)
    a = render(world, camera, W, H, backend="cpu").rgba
    b = render(by_hand, camera, W, H, backend="cpu").rgba
    assert a[..., 3].max() > 0.5
    assert np.abs(a - b).max() < 1e-4, np.abs(a - b).max()
