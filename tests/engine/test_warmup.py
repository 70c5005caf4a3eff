"""engine.warmup: background compilation of the numba kernels, its progress and its errors."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from engine import warmup
from engine.warmup import Kernel, Warmup

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_progress_reaches_total_and_a_failing_kernel_is_reported():
    ran = []

    def bad():
        raise ValueError("no such signature")

    w = Warmup([Kernel("a", lambda: ran.append("a")), Kernel("broken", bad), Kernel("c", lambda: ran.append("c"))])
    assert not w.progress().running and w.progress().done == 0   # not started yet
    p = w.start().wait(timeout=30)
    assert ran == ["a", "c"]                                      # the failure did not stop the rest
    assert (p.total, p.done, p.running, p.current) == (3, 3, False, "")
    assert p.errors == ("broken: ValueError: no such signature",)
    assert "1 of 3 failed" in p.text() and "no such signature" in p.text()


def test_wait_reports_progress_from_the_callers_thread_while_a_kernel_runs():
    release = threading.Event()
    seen = []

    def on_progress(p):
        seen.append(p)
        release.set()              # let the kernel finish once a running snapshot was seen

    w = Warmup([Kernel("slow kernel", lambda: release.wait(30)), Kernel("next", lambda: None)]).start()
    final = w.wait(timeout=30, on_progress=on_progress, interval=0.01)
    assert seen and seen[0].running and seen[0].current == "slow kernel" and seen[0].done == 0
    assert "Compiling CPU kernels 0/2: slow kernel" in seen[0].text()
    assert (final.done, final.total, final.errors, final.running) == (2, 2, (), False)
    assert final.text().startswith("CPU kernels ready")


def test_stop_ends_after_the_current_kernel_and_never_blocks_longer_than_asked():
    release = threading.Event()
    ran = []
    w = Warmup([Kernel("long", lambda: release.wait(30)), Kernel("never", lambda: ran.append(1))]).start()
    assert w.stop(timeout=0.05) is False        # the kernel in progress cannot be interrupted
    release.set()
    assert w.stop(timeout=30) is True
    p = w.progress()
    assert ran == [] and (p.done, p.total, p.running) == (1, 2, False)
    assert "stopped after 1/2" in p.text()


def test_a_caller_can_wait_only_for_the_kernels_it_needs():
    release = threading.Event()
    try:
        w = warmup.start([Kernel("needed", lambda: None), Kernel("other", lambda: release.wait(30))])
        warmup.wait_for_kernels(needed=["needed"], timeout=30)
        p = w.progress()
        assert p.running and p.current == "other" and p.done == 1       # still compiling the rest
        assert warmup.pending(["needed"]) is None
        assert warmup.pending(["needed", "other"]).current == "other"
    finally:
        release.set()
        assert warmup.stop(timeout=30)
    assert warmup.pending(["needed", "other"]) is None                   # nothing running


def test_wait_for_kernels_waits_for_the_process_wide_warmup_only_while_it_runs():
    release = threading.Event()
    try:
        w = warmup.start([Kernel("held", lambda: release.wait(30))])
        assert warmup.busy() and warmup.current() is w
        timer = threading.Timer(0.2, release.set)
        timer.start()
        texts = []
        waited = warmup.wait_for_kernels(on_progress=lambda p: texts.append(p.text()))
        assert waited > 0 and texts and "held" in texts[0]
        assert not warmup.busy() and warmup.wait_for_kernels() == 0.0
        # cancel: the caller stops waiting, the warm-up goes on
        release.clear()
        warmup.start([Kernel("held again", lambda: release.wait(30))])
        warmup.wait_for_kernels(cancel=lambda: True)
        assert warmup.busy()
    finally:
        release.set()
        assert warmup.stop(timeout=30)


_REAL_USE = """
import json, os, sys
import numpy as np
sys.path.insert(0, {repo!r})
from engine import warmup
p = warmup.start().wait()
from engine.avatar.lift_kernel import _kernels
from engine.bake import blend_kernel
from engine import scene_colour, scene_render
from engine.raster import cpu, cpu_tiles
dispatchers = {{"lift_face": _kernels()[0], "lift_gaussian": _kernels()[1], "project": cpu._project,
               "depth_order": cpu_tiles._depth_order, "bin": cpu_tiles._bin,
               "rasterize": cpu_tiles._rasterize, "scene_linear": scene_colour._to_scene_linear,
               "blend": blend_kernel._blend, "rotation_residual": blend_kernel.rotation_residual}}
before = {{k: len(d.signatures) for k, d in dispatchers.items()}}  # the warm-up ran in a child: none
# what the add-on really does: sample and pose a built-in head, render it on the cpu, bake and blend
from engine.avatar.builtin import BuiltinSource
from engine.raster import render, look_at, Camera
identity = BuiltinSource().sample(3)
g = identity.pose(identity.neutral_params())
cam = Camera(look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0), up=(0.0, -1.0, 0.0)), 200.0, 200.0, 48.0, 48.0, 96, 96)
image = render(g, cam, 96, 96, backend="cpu")
for world in (None, (0.05, 0.05, 0.05)):   # what F12 and the viewport hand Blender
    scene_render.display_to_scene_linear(image.rgba, world)
from tests.engine.test_bake import SynthIdentity
from engine.bake import BakeConfig, BakedIdentity, MLPConfig, SVDConfig, ReportConfig, bake
small = SynthIdentity(n_gaussians=300)
baked = bake(small, 24, 4, seed=0, config=BakeConfig(mlp=MLPConfig(hidden=(8, 8), steps=5, batch_size=8),
             svd=SVDConfig(block_rows=8), report=ReportConfig(n_heldout=2)))
for backend in ("int8", "float32"):
    fast = BakedIdentity.from_arrays(baked.to_arrays())
    fast.blend_backend = backend
    fast.pose(fast.neutral_params())
after = {{k: len(d.signatures) for k, d in dispatchers.items()}}
misses = {{k: sum(d.stats.cache_misses.values()) for k, d in dispatchers.items()}}  # compiled here
files = sorted(f for _, _, fs in os.walk(os.environ["NUMBA_CACHE_DIR"]) for f in fs if f.endswith(".nbi"))
print("@@" + json.dumps(dict(done=p.done, total=p.total, errors=p.errors, before=before, after=after, misses=misses,
                             drawn=float(image.alpha.sum()), index=files)))
"""


@pytest.mark.slow
def test_default_kernels_fill_an_empty_cache_with_the_signatures_the_add_on_uses(tmp_path):
    """A cold warm-up in a fresh process: every kernel compiles, lands in the on-disk cache, and
    the real work afterwards (pose, cpu render, baked int8/float32 blend) compiles nothing new."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(_REAL_USE.format(repo=REPO_ROOT))], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    r = json.loads(out.stdout.rsplit("@@", 1)[1])
    assert (r["done"], r["total"], r["errors"]) == (3, 3, [])
    # The child compiled every kernel into the cache: this process compiled nothing itself,
    # every signature the real work used came from the cache.
    assert set(r["before"].values()) == {0}
    assert all(r["after"][k] >= 1 for k in ("lift_face", "lift_gaussian", "project", "rasterize", "scene_linear",
                                            "blend")), r["after"]
    assert set(r["misses"].values()) == {0}, f"a kernel compiled a signature the warm-up missed: {r['misses']}"
    assert r["after"]["blend"] == 2                                     # int8 and float32 tables
    assert r["drawn"] > 0
    for name in ("lift_kernel._face_loop", "lift_kernel._gaussian_loop", "cpu._project", "cpu_tiles._rasterize",
                 "blend_kernel._blend", "blend_kernel.rotation_residual"):
        assert any(f.startswith(name + "-") for f in r["index"]), (name, r["index"])


def test_a_warm_cache_starts_no_child_and_a_changed_source_does(tmp_path, monkeypatch):
    """The child leaves a marker keyed on the kernel's sources; a later warm-up with the same
    sources starts no child, and one whose source changed (size/time) compiles again."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "engine_src.py"
    source.write_text("x = 1\n")
    kernel = warmup.Kernel("probe", lambda: None, child="_probe", sources=(str(source),))  # absolute: join keeps it
    runs = []
    monkeypatch.setattr(warmup, "run_in_child", lambda name, stop=None: runs.append(name))
    for _ in range(2):
        warmup.Warmup([kernel]).start().wait(timeout=30)
    assert runs == ["_probe"] and warmup.cache_is_warm(kernel)
    source.write_text("x = 22\n")
    warmup.Warmup([kernel]).start().wait(timeout=30)
    assert runs == ["_probe", "_probe"]
