"""engine.avatar.native_splat: the fast native-attribute conversion equals its reference twin."""

import numpy as np

from engine.avatar.frames import MODEL_TO_BLENDER
from engine.avatar.gaussian_set import GaussianSet, sh_dc_to_rgb
from engine.avatar.native_splat import frame_attributes, frame_attributes_reference, sh_attributes
from engine.avatar.sh_rotation import rotate_sh


def _random_set(n=500, degree=3, seed=0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n, 4)) * rng.uniform(0.2, 3.0, (n, 1))   # not normalised on purpose
    return GaussianSet(rng.normal(size=(n, 3)), rng.normal(-4, 1, (n, 3)), quats, rng.normal(size=n),
                       rng.normal(size=(n, (degree + 1) ** 2, 3)))


def test_fast_conversion_equals_the_reference():
    posed = _random_set()
    fast, ref = frame_attributes(posed), frame_attributes_reference(posed)
    for name in ("position", "scale", "base"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-5, atol=1e-6)
    # q and -q are the same rotation
    dots = np.abs(np.einsum("ij,ij->i", fast.rotation, ref.rotation))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fast.rotation, axis=1), 1.0, atol=1e-5)
    assert all(getattr(fast, n).dtype == np.float32 and getattr(fast, n).flags.c_contiguous
               for n in ("position", "scale", "rotation", "base"))


def test_positions_follow_the_model_to_blender_frame():
    posed = _random_set(n=20, degree=0)
    want = posed.means.astype(np.float64) @ MODEL_TO_BLENDER[:3, :3].T
    np.testing.assert_allclose(frame_attributes(posed).position, want, atol=1e-6)
    base = frame_attributes(posed).base
    np.testing.assert_allclose(sh_dc_to_rgb(base[:, :3]), sh_dc_to_rgb(posed.sh[:, 0]), atol=1e-6)
    np.testing.assert_allclose(base[:, 3], 1 / (1 + np.exp(-posed.opacity_logits)), atol=1e-6)


def test_sh_bands_turn_with_the_frame():
    posed = _random_set(n=50, degree=2)
    bands = sh_attributes(posed.sh)
    assert bands.shape == (8, 50, 3)
    turned = rotate_sh(posed.sh, MODEL_TO_BLENDER[:3, :3])
    np.testing.assert_allclose(bands, np.moveaxis(turned[:, 1:], 1, 0), atol=1e-6)
    assert sh_attributes(posed.sh[:, :1]).shape == (0, 50, 3)
