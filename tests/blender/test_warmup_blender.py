"""The background kernel compile inside Blender: enabling the add-on starts it, its progress is
drawn, a render waits for it and says so, the stats name the backend, and disabling the add-on in
the middle of a cold compile neither hangs nor crashes. Each test is a fresh bpy process."""

import pytest

from tests.blender.bpy_runner import REPO_ROOT, run_bpy

_PROLOGUE = f"""
import os, sys, time
sys.path.insert(0, {str(REPO_ROOT)!r})
from tests.blender import conftest as H
bpy.ops.wm.read_factory_settings(use_empty=True)
t0 = time.perf_counter()
H.enable_addon()
result["enable_s"] = time.perf_counter() - t0
warmup = H.addon("engine.warmup")
"""


@pytest.mark.slow
def test_enable_starts_the_warmup_the_panel_shows_it_and_a_render_waits_and_says_so(tmp_path):
    result = run_bpy(_PROLOGUE + """
w = warmup.current()
result["started"] = w is not None and [k.name for k in w.kernels]
w.wait(timeout=600)                       # the shared test cache is usually warm: about a second
result["first"] = [w.progress().done, w.progress().total, list(w.progress().errors)]

# hold a second warm-up on a kernel we release later, so the render has to wait for it
import threading
release = threading.Event()
held = warmup.start([warmup.Kernel("held for the test", lambda: release.wait(60)), *warmup.default_kernels()])

class Layout:                             # what the render panel's status lines draw into
    def __init__(self): self.labels = []
    def label(self, text="", icon='NONE'): self.labels.append((text, icon))
panels = H.addon("panels.render")
layout = Layout()
panels._draw_status(layout)
result["panel_while_running"] = layout.labels

identity = H.make_small_identity(3, n=2000)
H.add_avatar(identity)
H.setup_camera_scene(64)
render_engine = H.addon("render_engine")
stats = []
cls = render_engine.GaussianHeadsRenderEngine
show = cls._show                         # the stats line (update_stats is silent in background)
cls._show = lambda self, text: (stats.append(text), show(self, text))
threading.Timer(1.5, release.set).start()
scene = bpy.context.scene
scene.render.filepath = os.path.join(os.getcwd(), "still.png")
sys.stdout.flush()
saved, log = os.dup(1), open("render.log", "w+")
os.dup2(log.fileno(), 1)                  # Blender prints reports to stdout in background mode
try:
    finished = bpy.ops.render.render(write_still=True)
finally:
    os.dup2(saved, 1)
assert finished == {'FINISHED'}
result["log"] = open("render.log").read()
image = bpy.data.images.load(scene.render.filepath)
pixels = __import__("numpy").array(image.pixels[:]).reshape(-1, 4)
result["covered"] = float((pixels[:, 3] > 0.5).mean())
result["stats"] = stats
last = render_engine.last_stats
result["last"] = [last.backend, last.n_gaussians, last.waited_s, last.text()]
held.wait(timeout=600)  # the baked-blend kernel may still be compiling after the render
result["held_done"] = [held.progress().done, held.progress().total]
layout = Layout()
panels._draw_status(layout)
result["panel_after"] = layout.labels
""", tmp_path / "res")

    assert result["started"] == ["avatar lifting", "CPU rasterizer", "baked blend"]
    assert result["first"] == [3, 3, []]
    assert any(text.startswith("Compiling CPU kernels") and "held for the test" in text and icon == 'SORTTIME'
               for text, icon in result["panel_while_running"]), result["panel_while_running"]
    waiting = [s for s in result["stats"] if "waiting for the first-use compile" in s]
    assert waiting and "held for the test" in waiting[0], result["stats"]
    assert "Gaussian Heads: waited" in result["log"] and "for the CPU kernels to compile" in result["log"], result["log"]
    backend, n, waited, text = result["last"]
    assert backend == "cpu" and n == 2000 and waited > 0
    assert text.startswith("Gaussian Heads · cpu · 2,000 splats · ") and text.endswith(" ms")
    assert result["stats"][-1] == text
    assert result["held_done"] == [4, 4]
    assert result["covered"] > 0.01                       # a head was drawn
    assert ("Last render: cpu, 2,000 splats", "INFO") in [(t.rsplit(",", 1)[0], i) for t, i in result["panel_after"]]


@pytest.mark.slow
def test_disabling_during_a_cold_compile_returns_promptly_and_the_process_exits_cleanly(tmp_path):
    result = run_bpy(_PROLOGUE + """
import addon_utils
time.sleep(0.5)
result["busy"] = warmup.busy()
t0 = time.perf_counter()
addon_utils.disable(H.ADDON_MODULE, default_set=True)
result["disable_s"] = time.perf_counter() - t0
result["stopping"] = warmup.current().stopping
H.enable_addon()                           # enabling again starts a new warm-up, not the stopping one
result["restarted"] = warmup.current().running and not warmup.current().stopping
addon_utils.disable(H.ADDON_MODULE, default_set=True)
""", tmp_path / "res", env={"NUMBA_CACHE_DIR": str(tmp_path / "empty_cache")})
    assert result["busy"] is True             # an empty cache: still compiling
    assert result["disable_s"] < 20.0         # joins the thread for 1 s at most, never the ~45 s compile
    assert result["stopping"] is True and result["restarted"] is True
