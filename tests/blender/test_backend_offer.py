"""scene.gaussian_heads.backend offers Reference only when PyTorch imports, and a .blend that asks
for Reference on a machine without PyTorch renders to one clear error, not an ImportError.

Two fresh bpy sessions (``bpy_runner.run_bpy``): one with torch, which saves a scene set to
Reference; one with torch blocked (``sys.modules["torch"] = None``, what a missing install looks
like), which opens it.
"""

from __future__ import annotations

import pytest

from tests.blender.bpy_runner import REPO_ROOT, run_bpy

pytest.importorskip("torch")

_PROLOGUE = f"""
import sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from tests.blender import conftest as H

def offered():
    props = bpy.context.scene.gaussian_heads
    return [item[0] for item in H.addon("properties")._backend_items(props, bpy.context)]

def can_choose(name):
    try:
        bpy.context.scene.gaussian_heads.backend = name
    except TypeError:
        return False
    return True
"""


@pytest.mark.slow
def test_reference_offered_only_with_torch(tmp_path):
    blend = tmp_path / "reference.blend"
    with_torch = run_bpy(_PROLOGUE + f"""
bpy.ops.wm.read_factory_settings(use_empty=True)
H.enable_addon()
H.setup_camera_scene(24)
H.add_avatar(H.make_small_identity(3, n=1000))
result["offered"] = offered()
result["chosen"] = can_choose('REFERENCE')
scene = bpy.context.scene
scene.render.filepath = {str(tmp_path / "ref.png")!r}
result["rendered"] = sorted(bpy.ops.render.render(write_still=True))
bpy.ops.wm.save_as_mainfile(filepath={str(blend)!r})
""", tmp_path / "user_a")
    assert with_torch == {"offered": ["AUTO", "CPU", "GSPLAT", "REFERENCE"], "chosen": True,
                          "rendered": ["FINISHED"]}

    without = run_bpy(_PROLOGUE + f"""
sys.modules["torch"] = None
bpy.ops.wm.read_factory_settings(use_empty=True)
H.enable_addon()
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
scene = bpy.context.scene
result["offered"] = offered()
result["stored"] = scene.gaussian_heads.backend
result["settings_backend"] = H.addon("render_engine").render_settings(scene).backend
scene.render.filepath = {str(tmp_path / "noref.png")!r}
try:
    bpy.ops.render.render(write_still=True)
    result["error"] = None
except RuntimeError as exc:
    result["error"] = str(exc)
result["chosen"] = can_choose('REFERENCE')
result["cpu_chosen"] = can_choose('CPU')
result["torch_imported"] = sys.modules.get("torch") is not None
""", tmp_path / "user_b")
    assert without["offered"] == ["AUTO", "CPU", "GSPLAT"]
    assert without["stored"] == "" and without["settings_backend"] == "reference"
    assert without["error"] is not None
    assert "the reference renderer needs PyTorch; install it from Preferences > Add-ons > Gaussian Heads" \
        in without["error"]
    assert "ImportError" not in without["error"] and "ModuleNotFoundError" not in without["error"]
    assert without["chosen"] is False and without["cpu_chosen"] is True
    assert without["torch_imported"] is False
