"""Optional render backends whose library does not import fail with one clear GaussianHeadsError.

Each library is blocked the way a missing install looks (``sys.modules[name] = None`` makes
``import name`` raise ImportError); the backend module is dropped from ``sys.modules`` so that it
is imported afresh. monkeypatch puts everything back afterwards.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import engine.raster as raster
from engine.avatar.gaussian_set import GaussianSet
from engine.errors import GaussianHeadsError
from engine.raster import Camera, look_at

CAMERA = Camera(look_at((0, -1, 0), (0, 0, 0)), 50.0, 50.0, 16.0, 12.0, 32, 24)
ONE = GaussianSet(np.zeros((1, 3)), np.full((1, 3), -2.0), [[1, 0, 0, 0]], [2.0], np.zeros((1, 1, 3)))


def _block(monkeypatch, library: str, backend_module: str) -> None:
    monkeypatch.setitem(sys.modules, library, None)
    monkeypatch.delitem(sys.modules, f"engine.raster.{backend_module}", raising=False)


def test_reference_without_torch_is_not_offered_and_says_what_to_install(monkeypatch):
    _block(monkeypatch, "torch", "reference")
    assert not raster.torch_importable()
    assert "reference" not in raster.offered_backends() and "reference" not in raster.available_backends()
    assert raster.offered_backends() == ["gsplat", "cpu"]
    with pytest.raises(GaussianHeadsError, match=r"the reference renderer needs PyTorch; install it from "
                                                 r"Preferences > Add-ons > Gaussian Heads"):
        raster.render(ONE, CAMERA, 32, 24, backend="reference")
    # auto still renders (cpu), and never needs torch
    assert raster.render(ONE, CAMERA, 32, 24, backend="auto").alpha.max() > 0.5


def test_reference_import_error_itself_becomes_the_same_message(monkeypatch):
    """torch looks installed (find_spec) but its import fails: the import is converted too."""
    _block(monkeypatch, "torch", "reference")
    monkeypatch.setattr(raster, "torch_importable", lambda: True)
    with pytest.raises(GaussianHeadsError, match="the reference renderer needs PyTorch") as info:
        raster.render(ONE, CAMERA, 32, 24, backend="reference")
    assert isinstance(info.value.__cause__, ImportError)


def test_cpu_without_numba(monkeypatch):
    _block(monkeypatch, "numba", "cpu")
    with pytest.raises(GaussianHeadsError, match="the CPU renderer needs numba"):
        raster.render(ONE, CAMERA, 32, 24, backend="cpu")


def test_gsplat_import_failure_and_broken_torch(monkeypatch):
    from engine.raster import gsplat_backend

    # gsplat looks usable (CUDA, find_spec) but does not import: the import error, not a GPU error
    monkeypatch.setattr(gsplat_backend, "available", lambda: True)
    monkeypatch.setitem(sys.modules, "gsplat", None)
    with pytest.raises(GaussianHeadsError, match="the gsplat renderer needs PyTorch and gsplat; install"):
        raster.render(ONE, CAMERA, 32, 24, backend="gsplat")
    monkeypatch.undo()
    # a torch that fails to import makes gsplat unavailable instead of raising ImportError
    gsplat_backend.available.cache_clear()
    try:
        monkeypatch.setitem(sys.modules, "torch", None)
        assert gsplat_backend.available() is False
        assert raster.resolve_backend("auto") == "cpu"
    finally:
        monkeypatch.undo()
        gsplat_backend.available.cache_clear()


def test_torch_importable_on_this_machine():
    pytest.importorskip("torch")
    assert raster.torch_importable() and "reference" in raster.offered_backends()
