"""The roofline's counts and the benchmark verbs around the CPU rasterizer (no timing asserted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from engine.avatar.gaussian_set import GaussianSet, rgb_to_sh_dc
from engine.raster import Camera, look_at, render
from engine.raster import roofline
from engine.raster.common import ALPHA_THRESHOLD
from engine.raster.scenes import head_camera, head_shell

REPO = pathlib.Path(__file__).resolve().parents[2]


def _engine(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_one_splat_blends_exactly_the_pixels_it_covers():
    """With one splat (alpha <= 0.999, so no pixel stops), every pixel whose alpha reaches 1/255
    is one blended fragment, and the vector kernel evaluates at least that many lanes."""
    g = GaussianSet(np.array([[0.003, 0.0, -0.002]]), np.log(np.array([[0.01, 0.02, 0.001]])),
                    np.array([[0.9, 0.1, 0.3, 0.2]]), np.array([2.0]), rgb_to_sh_dc(np.array([[[0.8, 0.5, 0.3]]])))
    cam = Camera(look_at((0.0, -0.5, 0.0), (0.0, 0.0, 0.0)), 300.0, 300.0, 40.0, 36.0, 80, 72)
    counts = roofline.count_fragments(g, cam, 80, 72)
    alpha = render(g, cam, 80, 72, backend="cpu").alpha
    assert counts["visible"] == 1 and counts["tile_entries"] >= 4           # the splat spans tiles
    assert counts["fragments"] == int((alpha > 0).sum()) > 100
    assert alpha[alpha > 0].min() >= ALPHA_THRESHOLD * (1 - 1e-4)     # drawn pixels reach 1/255
    assert counts["lane_evaluations"] >= counts["fragments"]
    assert counts["fragments_per_pixel"] == round(counts["fragments"] / (80 * 72), 2)


def test_stage_times_cover_the_three_stages():
    g, cam = head_shell(2000, seed=1), head_camera(64, 64)
    times = roofline.stage_times(g, cam, 64, 64, repeats=2)
    stages = ("project", "sort_bin", "blend")
    assert set(times) == {f"{stage}_{kind}_ms" for stage in stages for kind in ("cpu", "wall")}
    assert all(v >= 0 for v in times.values())


def test_bench_peak_prints_both_roofs_per_thread_count():
    rows = _engine("bench", "peak", "--megabytes", "8")
    assert [r["threads"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert r["fma_gflops"] > 0 and r["copy_gbps"] > 0 and len(r["load"]) == 3


@pytest.mark.slow
def test_bench_render_compares_with_a_git_revision_and_splits_stages():
    """``--compare HEAD`` loads the committed cpu backend beside today's (it compiles once per
    commit, ~15 s), ``--stages`` adds the stage split and the fragment count."""
    rows = _engine("bench", "render", "--backend", "cpu", "--gaussians", "300", "--width", "48", "--height", "32",
                   "--repeats", "2", "--compare", "HEAD", "--stages")
    assert [r.get("backend", r.get("stages")) for r in rows] == ["cpu", "cpu@HEAD", "cpu"]
    assert all(r["cpu_ms_median"] > 0 and len(r["load"]) == 3 for r in rows[:2])
    stages = rows[2]
    assert stages["fragments"] > 0 and stages["visible"] <= 300 and stages["blend_ns_per_fragment"] > 0
