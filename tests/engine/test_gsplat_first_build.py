"""gsplat's first-use CUDA build never runs inline in an interactive (viewport) render: it starts
in the background and the CPU renders meanwhile, saying so; a failed build is reported. The GPU
is simulated (no CUDA here): ``available`` is forced true and ``_rasterize`` stands in for the
build + rasterization."""

import threading

import numpy as np
import pytest

from engine.errors import GaussianHeadsError
from engine.raster import gsplat_backend, render
from engine.raster import scenes


@pytest.fixture
def fake_gpu(monkeypatch):
    gsplat_backend.available.cache_clear()
    monkeypatch.setattr(gsplat_backend, "available", lambda: True)
    monkeypatch.setattr(gsplat_backend, "_READY", threading.Event())
    monkeypatch.setattr(gsplat_backend, "_build", {"thread": None, "started": 0.0, "error": ""})
    release = threading.Event()
    state = {"fail": False, "calls": 0}

    def rasterize(inp):
        state["calls"] += 1
        release.wait(10)  # the "CUDA build"
        if state["fail"]:
            raise RuntimeError("nvcc fatal: unsupported gpu architecture")
        import torch

        h, w = inp.height, inp.width
        return torch.zeros((1, h, w, 4)), torch.zeros((1, h, w, 1))

    monkeypatch.setattr(gsplat_backend, "_rasterize", rasterize)
    yield release, state
    release.set()
    t = gsplat_backend._build["thread"]
    if t is not None:
        t.join(10)
    from engine import raster

    raster._FAILED.discard("gsplat")


def _scene():
    return scenes.head_shell(n=200, sh_degree=0), scenes.head_camera(32, 32), 32, 32


def test_viewport_renders_on_cpu_while_gsplat_builds_then_uses_it(fake_gpu):
    release, state = fake_gpu
    gaussians, camera, w, h = _scene()
    first = render(gaussians, camera, w, h, backend="auto", interactive=True)
    assert first.backend == "cpu" and "compiling its CUDA kernels" in first.fallback
    assert not gsplat_backend.ready() and gsplat_backend._build["thread"].is_alive()
    again = render(gaussians, camera, w, h, backend="auto", interactive=True)
    assert again.backend == "cpu" and state["calls"] == 1  # one build, in its own thread
    release.set()
    gsplat_backend._build["thread"].join(10)
    assert gsplat_backend.ready() and gsplat_backend.build_status() == ""
    assert render(gaussians, camera, w, h, backend="auto", interactive=True).backend == "gsplat"


def test_failed_build_is_shown_and_the_cpu_keeps_rendering(fake_gpu):
    release, state = fake_gpu
    state["fail"] = True
    gaussians, camera, w, h = _scene()
    assert render(gaussians, camera, w, h, backend="gsplat", interactive=True).backend == "cpu"
    release.set()
    gsplat_backend._build["thread"].join(10)
    assert "unsupported gpu architecture" in gsplat_backend.build_status()
    with pytest.raises(GaussianHeadsError, match="could not build its CUDA kernels"):
        render(gaussians, camera, w, h, backend="gsplat", interactive=True)
    auto = render(gaussians, camera, w, h, backend="auto", interactive=True)
    assert auto.backend == "cpu" and "could not build" in auto.fallback
    assert render(gaussians, camera, w, h, backend="auto").backend == "cpu"  # auto skips it from now on
