"""Render-farm behaviour: `blender -b file.blend -a` equals F12 frame by frame, and a .blend whose
avatars came from a FLAME file or a generator checkpoint renders where those files do not exist.

There is no blender binary here, only the bpy module: ``-a`` is emulated by a fresh process that
opens the file (``wm.open_mainfile``) and runs ``render(animation=True)``, writing the PNGs to the
file's own relative output path (``//anim/f_``), as a farm node does. Every session is a fresh
process (``bpy_runner.run_bpy``).
"""

from __future__ import annotations

import shutil

import pytest

from tests.blender.bpy_runner import run_bpy
from tests.blender.session_snippets import GAUSSIANS, PROLOGUE, SIZE, assert_same_frames

pytestmark = pytest.mark.slow

_SAVE = f"""
H.setup_camera_scene({SIZE}, distance=0.7, transparent=True)
bpy.context.scene.render.filepath = "//anim/f_"
bpy.ops.wm.save_as_mainfile(filepath=blend_path)
"""


def _farm_node(blend, out, extra: str = "") -> dict:
    """A fresh session that opens ``blend`` and renders its animation (``blender -b blend -a``)."""
    return run_bpy(PROLOGUE + f"""
storage.clear_cache()
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
{extra}
render_animation()
result["models_by_path"] = sorted(k for k in storage._model_cache if not k.startswith("packed:"))
""", out / "user")


def test_animation_render_equals_f12_stills(tmp_path):
    blend = tmp_path / "scene.blend"
    run_bpy(PROLOGUE + f"""
blend_path = {str(blend)!r}
obj = new_avatar(H.make_small_identity(3, {GAUSSIANS}), "GaussianHead.3")
animate(obj)
""" + _SAVE, tmp_path / "user_a")
    _farm_node(blend, tmp_path / "node")
    run_bpy(PROLOGUE + f"""
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
render_stills({str(tmp_path / "still_")!r})
""", tmp_path / "user_c")
    assert_same_frames(tmp_path / "anim" / "f_", tmp_path / "still_")


def test_flame_file_avatar_renders_without_the_file(tmp_path):
    """The head model (a FLAME-layout .npz; here the open model's arrays under another name) is
    packed into the .blend: the file is deleted and the .blend moved before the farm renders."""
    models = tmp_path / "models"
    models.mkdir()
    flame = models / "my_flame.npz"
    home, farm = tmp_path / "home", tmp_path / "farm"
    home.mkdir()
    run_bpy(PROLOGUE + f"""
blend_path = {str(home / "scene.blend")!r}
head_model = H.addon("engine.head_model")
model_storage = H.addon("engine.head_model.storage")
builtin = H.addon("engine.avatar.builtin")
arrays = model_storage.model_to_arrays(head_model.load_head_model("open"))
arrays["name"] = np.array("my_flame")
model_storage.save_npz({str(flame)!r}, arrays)
source = builtin.BuiltinSource(config=builtin.BuiltinSamplerConfig(n_gaussians={GAUSSIANS}),
                               model_spec={str(flame)!r})
identity = source.sample(4)
assert identity.meta["model"] == {str(flame)!r}
obj = new_avatar(identity, "GaussianHead.flame")
animate(obj)
""" + _SAVE + f"""
render_stills({str(tmp_path / "ref_")!r})
""", tmp_path / "user_a")
    shutil.rmtree(models)
    farm.mkdir()
    shutil.copy(home / "scene.blend", farm / "scene.blend")
    result = _farm_node(farm / "scene.blend", tmp_path / "node", extra=f"""
obj = bpy.data.objects["GaussianHead.flame"]
assert storage.load_identity(obj).model.name == "my_flame"
stored = storage.read_stored_arrays(obj)
unpacked = {{k: v for k, v in stored.items() if not k.startswith("headmodel.")}}
try:
    storage.identity_from_arrays(unpacked)
except H.addon("engine.errors").GaussianHeadsError as exc:
    result["unpacked_error"] = str(exc)
""")
    assert result["models_by_path"] == []
    assert str(flame) in result["unpacked_error"] and "not found" in result["unpacked_error"]
    assert_same_frames(farm / "anim" / "f_", tmp_path / "ref_")


def test_checkpoint_avatar_renders_without_the_checkpoint(tmp_path):
    """Sample Identity from a (random-weight, safetensors) checkpoint; the checkpoint's
    deformation branch is packed, so the .blend renders after the checkpoint is gone."""
    pytest.importorskip("torch")
    from engine.generator.checkpoint import save_checkpoint
    from engine.generator.config import small_config
    from engine.generator.networks import build_generator

    checkpoint = tmp_path / "ckpt"
    save_checkpoint(build_generator(small_config(n_gaussians=GAUSSIANS), seed=2), checkpoint)
    home, farm = tmp_path / "home", tmp_path / "farm"
    home.mkdir()
    run_bpy(PROLOGUE + f"""
blend_path = {str(home / "scene.blend")!r}
assert bpy.ops.gaussian_heads.sample_identity(source='CHECKPOINT', checkpoint={str(checkpoint)!r},
                                              seed=4) == {{'FINISHED'}}
obj = bpy.context.active_object
assert storage.load_identity(obj).deformation is not None
animate(obj)
""" + _SAVE + f"""
render_stills({str(tmp_path / "ref_")!r})
""", tmp_path / "user_a")
    shutil.rmtree(checkpoint)
    farm.mkdir()
    shutil.copy(home / "scene.blend", farm / "scene.blend")
    result = _farm_node(farm / "scene.blend", tmp_path / "node", extra=f"""
obj = bpy.data.objects["GaussianHead_4"]
result["runner"] = type(storage.load_identity(obj).deformation.runner).__name__
stored = storage.read_stored_arrays(obj)
unpacked = {{k: v for k, v in stored.items() if not k.startswith("deformation.packed.")}}
try:
    storage.identity_from_arrays(unpacked)
except H.addon("engine.errors").GaussianHeadsError as exc:
    result["unpacked_error"] = str(exc)
""")
    assert result["runner"] == "PackedRunner"
    assert str(checkpoint) in result["unpacked_error"]
    assert_same_frames(farm / "anim" / "f_", tmp_path / "ref_")
