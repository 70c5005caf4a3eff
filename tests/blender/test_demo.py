"""``make demo`` end to end, cut down: 3 frames at 96x96 with 3,000 Gaussians in a temporary folder."""

import subprocess
import sys

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")


@pytest.mark.slow
def test_demo_renders_frames_and_contact_sheet(gh, helpers, tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, str(helpers.REPO_ROOT / "tools" / "demo.py"), "--out", str(out),
                           "--frames", "3", "--size", "96", "--gaussians", "3000"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    frames = [helpers.read_png(out / f"frame_{f:04d}.png") for f in (1, 2, 3)]
    assert all(f.shape[:2] == (96, 96) for f in frames)
    assert frames[0][..., :3].std() > 10                       # a head on the background
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 0.5  # mid-clip differs
    sheet = helpers.read_png(out / "contact_sheet.png")
    assert sheet.shape[0] == 128 and sheet.shape[1] == 8 * 128
    assert (out / "demo.blend").is_file()
    assert (out / ".blender_user").is_dir()                     # Blender's user folder stayed in out/
    assert "contact sheet:" in proc.stdout

    # the saved .blend alone re-renders the same frame in another session (everything is stored)
    bpy.ops.wm.open_mainfile(filepath=str(out / "demo.blend"))
    helpers.addon("operators.storage").clear_cache()
    scene = bpy.context.scene
    scene.frame_set(2)
    scene.render.filepath = str(tmp_path / "again.png")
    scene.render.dither_intensity = 0.0
    assert bpy.ops.render.render(write_still=True) == {'FINISHED'}
    again = helpers.read_png(tmp_path / "again.png").astype(int)
    assert np.abs(again - frames[1].astype(int)).max() <= 1
