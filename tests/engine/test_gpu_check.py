"""Which backend ran comes back with the image, and the GPU check says exactly why gsplat cannot
be used (or, with CUDA, proves it by rasterizing a frame that matches the CPU)."""

import sys

import pytest
import torch

import engine.raster as raster
from engine.raster import gpu_check, gsplat_backend, render
from engine.raster.gpu_check import check_gpu


def _scene():
    g, camera, size = gpu_check._test_scene(n=200, size=32)
    return g, camera, size


def test_the_backend_that_ran_comes_back_with_the_result():
    g, camera, size = _scene()
    result = render(g, camera, size, size, backend="cpu")
    assert (result.backend, result.fallback) == ("cpu", "")
    assert result.alpha.sum() > 0
    expected = "gsplat" if gsplat_backend.available() else "cpu"
    assert render(g, camera, size, size, backend="auto").backend == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a broken GPU on a CPU-only machine")
def test_auto_names_the_cpu_and_says_why_when_gsplat_fails(monkeypatch):
    pytest.importorskip("gsplat")  # the failure simulated is gsplat's own
    monkeypatch.setattr(gsplat_backend, "available", lambda: True)     # pretend CUDA is there
    monkeypatch.setattr(raster, "_FAILED", set())
    g, camera, size = _scene()
    result = render(g, camera, size, size, backend="auto")
    assert result.backend == "cpu"
    assert result.fallback.startswith("gsplat failed, so the CPU rendered: gsplat could not render")
    assert render(g, camera, size, size, backend="auto").fallback == ""   # said once; cpu from now on


def test_check_names_the_missing_cuda_device_or_renders_a_matching_frame():
    steps = []
    status = check_gpu(steps.append)
    assert steps[:2] == ["importing torch", "looking for a CUDA device"]
    assert status.torch == torch.__version__
    if torch.cuda.is_available():
        assert status.ready and status.rendered and status.max_diff <= gpu_check.MATCH_TOLERANCE, status.summary()
        assert status.summary().startswith(f"Ready: gsplat {status.gsplat} rendered a test frame on {status.cuda}")
    else:
        assert not status.ready and status.cuda is None and not status.rendered
        kind = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        assert status.summary() == f"Not ready: no CUDA device: torch {torch.__version__} is {kind}" + (
            ", but it sees no CUDA device (driver or GPU missing)" if torch.version.cuda
            else ": install a CUDA build of torch")


def test_check_names_a_missing_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)     # import torch -> ImportError
    status = check_gpu()
    assert (status.torch, status.cuda, status.gsplat, status.ready) == (None, None, None, False)
    assert status.summary().startswith("Not ready: torch is not installed (ModuleNotFoundError")


def test_check_names_a_missing_gsplat_when_cuda_is_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    monkeypatch.setitem(sys.modules, "gsplat", None)
    status = check_gpu()
    assert (status.cuda, status.gsplat, status.ready) == ("Test GPU", None, False)
    assert status.summary().startswith("Not ready: gsplat is not installed (ModuleNotFoundError")


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a broken GPU on a CPU-only machine")
def test_check_reports_why_gsplat_could_not_rasterize(monkeypatch):
    pytest.importorskip("gsplat")  # the failure simulated is gsplat's own
    """CUDA claimed but unusable (what a failed CUDA build looks like): the reason is the render's."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    monkeypatch.setattr(gsplat_backend, "available", _always_true)
    monkeypatch.setattr(gsplat_backend, "_rasterize", _failing_build)
    status = check_gpu()
    assert not status.ready and not status.rendered
    assert "gsplat could not render on this GPU (RuntimeError: Error building extension 'gsplat_cuda')" \
        in status.summary()
    assert status.max_diff is None and status.ms is None


def _always_true():
    return True


_always_true.cache_clear = lambda: None


def _failing_build(inp):
    raise RuntimeError("Error building extension 'gsplat_cuda'")
