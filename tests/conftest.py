"""Shared test set-up: keep caches out of the source tree and point at the shared samples."""

import os
import pathlib
import tempfile

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", str(pathlib.Path(tempfile.gettempdir()) / "gaussian_heads_numba_cache"))

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT.parent / "shared" / "samples"


@pytest.fixture
def samples_dir() -> pathlib.Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"public samples folder {SAMPLES} is absent")
    return SAMPLES
