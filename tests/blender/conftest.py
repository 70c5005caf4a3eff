"""In-process bpy fixtures: the dev checkout registered as an extension, factory settings per test.

Blender reads ``BLENDER_USER_RESOURCES`` when bpy is first imported, so this conftest sets it
(to a per-session temporary folder) before anything imports bpy; nothing touches ``~``.
The repository is linked into a temporary extension repository ``ghdev`` as ``gaussian_heads``,
so the add-on imports as ``bl_ext.ghdev.gaussian_heads`` exactly like an installed extension
(relative imports, ``__package__``, ``extension_path_user``).

Fixtures:
- ``gh``: resets to empty factory settings, enables the add-on, returns its module.
- ``small_identity``: a built-in identity cut down to a few thousand Gaussians (fast tests).
- ``avatar``: a sampled avatar object in the scene (seed 3), stored small.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_SESSION_DIR = pathlib.Path(tempfile.mkdtemp(prefix="gh_blender_tests_"))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(_SESSION_DIR / "user"))

REPO_MODULE = "ghdev"
EXTENSION_ID = "gaussian_heads"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}"
TEST_GAUSSIANS = 5000


def _repo_dir() -> pathlib.Path:
    repo = _SESSION_DIR / "extensions"
    link = repo / EXTENSION_ID
    if not link.exists():
        repo.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    return repo


def enable_addon():
    """Register the dev checkout as an extension repository and enable the add-on."""
    import addon_utils
    import bpy

    prefs = bpy.context.preferences
    if not any(r.module == REPO_MODULE for r in prefs.extensions.repos):
        prefs.extensions.repos.new(name=REPO_MODULE, module=REPO_MODULE,
                                   custom_directory=str(_repo_dir()), source='USER')
    module = addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=None)
    if module is None:
        raise RuntimeError(f"could not enable {ADDON_MODULE}")
    return module


@pytest.fixture
def gh():
    """Empty factory scene with the add-on enabled; yields the add-on's package module."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    module = enable_addon()
    from importlib import import_module

    storage = import_module(f"{ADDON_MODULE}.operators.storage")
    storage.clear_cache()
    yield module


def addon(name: str):
    """A submodule of the enabled add-on, e.g. ``addon("operators.storage")``."""
    from importlib import import_module

    return import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def small_identity(gh):
    """A built-in identity (seed 3) reduced to TEST_GAUSSIANS Gaussians."""
    return make_small_identity(3)


def make_small_identity(seed: int, n: int = TEST_GAUSSIANS):
    import numpy as np

    builtin = addon("engine.avatar.builtin")
    identity = builtin.BuiltinSource().sample(seed)
    total = len(identity.binding)
    if total <= n:
        return identity
    keep = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
    from dataclasses import replace

    binding_cls = type(identity.binding)
    binding = binding_cls(identity.binding.face_idx[keep], identity.binding.bary[keep], identity.binding.uv[keep])
    return replace(identity, binding=binding, canonical=identity.canonical.subset(keep))


def add_avatar(identity, name: str = "GaussianHead.test", seed: int = 3):
    """Store ``identity`` in a new avatar object (what Sample Identity does), active + selected."""
    import bpy

    storage = addon("operators.storage")
    sample = addon("operators.sample")
    obj = storage.create_avatar_object(name, identity, bpy.context.scene.collection)
    sample.fill_avatar_properties(obj, identity, sample.SampleSettings(seed=seed))
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    return obj


@pytest.fixture
def avatar(small_identity):
    return add_avatar(small_identity)


def setup_camera_scene(size: int = 128, distance: float = 0.6, transparent: bool = False):
    """A camera in front of the avatar (Blender Front view: looking along +Y), Standard view
    transform, ``size``² output."""
    import bpy
    import mathutils

    scene = bpy.context.scene
    cam_data = bpy.data.cameras.new("Camera")
    cam_data.lens = 50.0
    cam = bpy.data.objects.new("Camera", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.0, -distance, 0.0)
    cam.rotation_euler = mathutils.Euler((1.5707963267948966, 0.0, 0.0), 'XYZ')
    scene.camera = cam
    scene.render.engine = 'GAUSSIAN_HEADS'
    scene.render.resolution_x = size
    scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = transparent
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGBA'
    scene.view_settings.view_transform = 'Standard'
    scene.view_settings.look = 'None'
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.gaussian_heads.backend = 'CPU'
    if scene.world is None:
        scene.world = bpy.data.worlds.new("World")
    scene.world.color = (0.0, 0.0, 0.0)
    return cam


def read_png(path) -> "np.ndarray":
    """[H, W, C] uint8, top row first."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image).copy()


@pytest.fixture
def helpers():
    """This module (its helper functions), for tests: ``helpers.add_avatar(...)``."""
    import sys

    return sys.modules[__name__]
