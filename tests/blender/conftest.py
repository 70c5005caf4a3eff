"""In-process bpy fixtures: the dev checkout registered as an extension, factory settings per test.

Blender reads ``BLENDER_USER_RESOURCES`` when bpy is first imported, so this conftest sets it
(to a per-session temporary folder) before anything imports bpy; nothing touches ``~``.
The repository is linked into a temporary extension repository ``ghdev`` as ``gaussian_heads``,
so the add-on imports as ``bl_ext.ghdev.gaussian_heads`` exactly like an installed extension
(relative imports, ``__package__``, ``extension_path_user``).

Fixtures:
- ``gh``: resets to empty factory settings, enables the add-on, returns its module.
- ``small_identity``: a built-in identity with a few thousand Gaussians (fast tests).
- ``avatar``: a sampled avatar object in the scene (seed 3), stored small.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import struct
import tempfile

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_SESSION_DIR = pathlib.Path(tempfile.mkdtemp(prefix="gh_blender_tests_"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ["BLENDER_USER_RESOURCES"] = str(_SESSION_DIR / "user")  # never the real ~/.config/blender

REPO_MODULE = "ghdev"
EXTENSION_ID = "gaussian_heads"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.{EXTENSION_ID}"
TEST_GAUSSIANS = 5000


def _repo_dir() -> pathlib.Path:
    """A folder holding ``gaussian_heads`` -> the checkout. Its path is stable across sessions
    (keyed by the checkout's path) so numba's on-disk cache, keyed by source path, stays valid."""
    import hashlib

    key = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:12]
    repo = pathlib.Path(tempfile.gettempdir()) / f"gaussian_heads_dev_ext_{key}"
    link = repo / EXTENSION_ID
    if not link.is_symlink():
        repo.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(REPO_ROOT, target_is_directory=True)
        except FileExistsError:  # another session made it meanwhile
            pass
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
    # The kernel warm-up (a child process) starts at enable; tests of other features start from
    # its end, as a user does after the first seconds (tests/blender/test_warmup_blender.py tests it).
    warmup = import_module(f"{ADDON_MODULE}.engine.warmup").current()
    if warmup is not None:
        warmup.wait(timeout=600)
    yield module


def addon(name: str):
    """A submodule of the enabled add-on, e.g. ``addon("operators.storage")``."""
    from importlib import import_module

    return import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def small_identity(gh):
    """A built-in identity (seed 3) with TEST_GAUSSIANS Gaussians."""
    return make_small_identity(3)


_IDENTITY_ARRAYS: dict = {}


def make_small_identity(seed: int, n: int = TEST_GAUSSIANS):
    """Built-in identity with ``n`` Gaussians (what ``python -m engine render --gaussians n``
    samples for the same seed). Sampled once per session; later calls rebuild it from its arrays
    with the add-on's current classes (re-enabling the add-on re-imports its modules)."""
    key = (seed, n)
    if key not in _IDENTITY_ARRAYS:
        builtin = addon("engine.avatar.builtin")
        source = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians=n))
        identity = source.sample(seed)
        _IDENTITY_ARRAYS[key] = identity.to_arrays()
        return identity
    return addon("engine.avatar.identity").BoundIdentity.from_arrays(_IDENTITY_ARRAYS[key])


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
    scene.render.dither_intensity = 0.0          # no noise in 8-bit outputs: exact comparisons
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


def read_png(path) -> np.ndarray:
    """[H, W, C] uint8, top row first."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image).copy()


@pytest.fixture
def helpers():
    """This module (its helper functions), for tests: ``helpers.add_avatar(...)``."""
    import sys

    return sys.modules[__name__]


# --- a minimal reader for the uncompressed EXR files the depth tests write ---------------------

def _exr_header(data: bytes, pos: int):
    attrs = {}
    while data[pos] != 0:
        end = data.index(b"\0", pos)
        name = data[pos:end].decode()
        pos = data.index(b"\0", end + 1) + 1          # skip the type name
        size = struct.unpack_from("<i", data, pos)[0]
        attrs[name] = data[pos + 4:pos + 4 + size]
        pos += 4 + size
    return attrs, pos + 1


def _exr_channels(raw: bytes):
    out, p = [], 0
    while raw[p] != 0:
        end = raw.index(b"\0", p)
        out.append((raw[p:end].decode(), struct.unpack_from("<i", raw, end + 1)[0]))
        p = end + 1 + 16
    return out


def read_exr(path) -> dict:
    """{channel name: [H, W] float32 (top row first)} of an uncompressed scanline EXR, single
    or multi-part (Blender 5 writes multilayer EXR as one part per layer)."""
    data = pathlib.Path(path).read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01", "not an EXR file"
    multi = bool(struct.unpack_from("<i", data, 4)[0] & 0x1000)
    pos, headers = 8, []
    while True:
        attrs, pos = _exr_header(data, pos)
        headers.append(attrs)
        if not multi or data[pos] == 0:
            pos += 1 if multi else 0
            break
    tables = []
    for attrs in headers:
        assert attrs["compression"][0] == 0, "only uncompressed EXR files"
        ymin, ymax = struct.unpack("<4i", attrs["dataWindow"])[1::2]
        h = ymax - ymin + 1
        tables.append(struct.unpack_from(f"<{h}Q", data, pos))
        pos += 8 * h
    out = {}
    for attrs, offsets in zip(headers, tables):
        xmin, ymin, xmax, ymax = struct.unpack("<4i", attrs["dataWindow"])
        w, h = xmax - xmin + 1, ymax - ymin + 1
        channels = _exr_channels(attrs["channels"])
        planes = {name: np.empty((h, w), np.float32) for name, _ in channels}
        for offset in offsets:
            q = offset + (4 if multi else 0)                  # multi-part chunks start with the part
            y = struct.unpack_from("<i", data, q)[0]
            q += 8
            for name, pixel_type in channels:
                dtype = np.dtype({0: "<u4", 1: "<f2", 2: "<f4"}[pixel_type])
                planes[name][y - ymin] = np.frombuffer(data, dtype, w, q).astype(np.float32)
                q += w * dtype.itemsize
        out.update(planes)
    return out
