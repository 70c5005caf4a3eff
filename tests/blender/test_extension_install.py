"""The linux-x64 extension zip builds, validates, installs into Blender and runs on its wheels.

How "the bundled wheels are what imports" is made honest: the bpy module runs inside the
development .venv, whose site-packages also holds onnxruntime, scipy, numba, torch... A check
that merely imports onnxruntime after installing would find the .venv copy and prove nothing.
So the second session plays a Blender restart with nothing but Blender's own modules: right
after ``import bpy`` and ``import numpy`` (Blender ships both) it removes the .venv site-packages
folder from ``sys.path``. From then on every third-party import can only be satisfied by the
extension's wheels in ``<user resources>/extensions/.local/lib/python3.11/site-packages``; the
test checks each module's ``__file__`` lies there and that torch (not bundled) is not importable,
which also proves the add-on enables without torch.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pytest

from tests.blender.bpy_runner import REPO_ROOT, run_bpy
from tests.tool_modules import tool_module

ADDON = "bl_ext.user_default.gaussian_heads"
BUNDLED_MODULES = ("onnxruntime", "scipy", "numba", "llvmlite", "safetensors",
                   "google.protobuf", "flatbuffers", "packaging", "pythonosc")


def blender_ext_cli() -> pathlib.Path:
    cli, _tags = _build_tool().blender_ext()
    return cli


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    # Wheels are cached in wheels/: the first run downloads them (PyPI), later runs are offline.
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"),
                           "--platform", "linux-x64", "--output-dir", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = sorted(out.glob("*.zip"))
    assert [z.name for z in zips] == ["gaussian_heads-0.1.0-linux_x64.zip"], proc.stdout
    assert str(zips[0]) in proc.stdout  # the tool says where the zip is
    return zips[0]


@pytest.mark.slow
def test_zip_validates_and_holds_the_extension_and_linux_wheels_only(linux_zip):
    proc = subprocess.run([sys.executable, str(blender_ext_cli()), "validate", str(linux_zip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(linux_zip) as zf:
        names = zf.namelist()
        manifest = zf.read("blender_manifest.toml").decode()
    top = {n.split("/")[0] for n in names}
    assert {"__init__.py", "preferences.py", "blender_manifest.toml", "LICENSE", "engine", "operators",
            "wheels"} <= top
    # Development-only material stays out.
    assert not top & {"tests", "tools", "docs", ".venv", ".git", "Makefile", "requirements.txt", "pytest.ini"}
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    wheels = sorted(n.split("/")[1] for n in names if n.startswith("wheels/") and n.endswith(".whl"))
    dists = {w.split("-")[0].lower() for w in wheels}
    assert dists == {"onnxruntime", "scipy", "numba", "llvmlite", "safetensors",
                     "flatbuffers", "protobuf", "packaging", "python_osc",
                     "pygltflib", "dataclasses_json", "marshmallow", "typing_inspect", "mypy_extensions",
                     "typing_extensions", "deprecated", "wrapt"}
    assert not any(w.startswith(("numpy-", "torch-", "gsplat-")) for w in wheels)
    assert all(("manylinux" in w or w.endswith("-none-any.whl")) for w in wheels), wheels
    # Blender 4.2-5.0 embed CPython 3.11, 5.1-5.3 CPython 3.13: every compiled package is there
    # for both (Blender installs the wheels whose tags match its Python).
    for dist in ("onnxruntime", "scipy", "numba", "llvmlite"):
        abis = {w.split("-")[2] for w in wheels if w.split("-")[0].lower() == dist}
        assert abis == {"cp311", "cp313"}, (dist, abis)
    assert 'platforms = ["linux-x64"]' in manifest
    assert 'blender_version_min = "4.2.0"' in manifest
    assert 'blender_version_max = "5.4.0"' in manifest


def _build_tool():
    return tool_module("build_extension")


@pytest.mark.slow
def test_dependency_closure_check_knows_what_blender_provides(linux_zip, monkeypatch):
    """The build refuses wheels whose numpy needs the oldest allowed Blender does not meet."""
    tool = _build_tool()
    platform = tool.PLATFORMS["linux-x64"]
    pins = tool.pinned_versions()
    wheels = tool.ensure_wheels(REPO_ROOT / "wheels", platform, pins, offline=True)  # cached by linux_zip
    tool.check_closure(wheels, platform, "4.2.0")      # Blender 4.2 LTS ships numpy 1.24.3
    tool.check_closure(wheels, platform, "5.0.1")
    # A Blender with an older numpy than the bundled scipy accepts (>= 1.23.5) is refused.
    monkeypatch.setattr(tool, "BLENDER_NUMPY", (((4, 2, 0), "1.22.4"),))
    with pytest.raises(tool.BuildError, match=r"scipy.*needs numpy.*Blender 4\.2\.0 ships numpy 1\.22\.4"):
        tool.check_closure(wheels, platform, "4.2.0")
    monkeypatch.undo()
    # Python 3.13 (Blender 5.1 ships numpy 1.26.4, 5.2+ numpy >= 2.2): the cp313 set passes for
    # both, and the cp311 scipy pin (numpy < 2.5) would not serve a numpy-2.5 Blender.
    py313 = tool.PYTHONS[1]
    wheels313 = tool.ensure_wheels(REPO_ROOT / "wheels", platform, pins, offline=True, python=py313)
    tool.check_python_target(wheels313, platform, py313, "4.2.0")
    scipy311 = [w for w in wheels if w.name.startswith("scipy-")]
    with pytest.raises(tool.BuildError, match=r"scipy.*numpy<2\.5.*numpy 2\.5"):
        tool.check_closure([*scipy311, *(w for w in wheels313 if not w.name.startswith("scipy-"))], platform,
                           "5.2.0", py313, numpy=tool.Version("2.5.0"))
    # Dropping a bundled dependency (protobuf, needed by onnxruntime) is caught as well.
    without = [w for w in wheels if not w.name.startswith("protobuf-")]
    with pytest.raises(tool.BuildError, match=r"onnxruntime.*protobuf.*neither bundled nor part of Blender"):
        tool.check_closure(without, platform, "4.2.0")


@pytest.mark.slow
def test_macos_intel_zip_bundles_the_releases_that_have_x86_64_wheels(tmp_path):
    """The Intel-Mac zip carries onnxruntime/numba/llvmlite releases that publish macOS x86_64
    wheels (the common pins do not), with onnxruntime 1.23's own dependencies."""
    out = tmp_path / "dist"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"),
                           "--platform", "macos-x64", "--output-dir", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (zip_path,) = sorted(out.glob("*.zip"))
    assert zip_path.name == "gaussian_heads-0.1.0-macos_x64.zip"
    with zipfile.ZipFile(zip_path) as zf:
        manifest = zf.read("blender_manifest.toml").decode()
        wheels = sorted(n.split("/")[1] for n in zf.namelist() if n.startswith("wheels/") and n.endswith(".whl"))
    versions = {w.split("-")[0].lower(): w.split("-")[1] for w in wheels}
    assert versions["onnxruntime"] == "1.23.2" and versions["numba"] == "0.62.1" and versions["llvmlite"] == "0.45.1"
    assert {"coloredlogs", "humanfriendly", "sympy", "mpmath", "scipy"} <= set(versions)
    assert all(("x86_64" in w or "universal2" in w or w.endswith("-none-any.whl")) for w in wheels), wheels
    assert 'platforms = ["macos-x64"]' in manifest


@pytest.mark.slow
def test_install_registers_and_bundled_wheels_import_from_the_extension(tmp_path, linux_zip):
    res = tmp_path / "user_resources"
    installed = run_bpy(f"""
bpy.ops.wm.read_factory_settings(use_empty=True)
ret = bpy.ops.extensions.package_install_files(
    filepath={str(linux_zip)!r}, repo="user_default", enable_on_install=True)
import sys
result["ret"] = sorted(ret)
mod = sys.modules.get({ADDON!r})
result["module_file"] = getattr(mod, "__file__", None)
result["types"] = sorted(n for n in dir(bpy.types) if n.startswith("GAUSSIAN_HEADS"))
result["engines"] = sorted(c.bl_idname for c in bpy.types.RenderEngine.__subclasses__()
                          if c.is_registered and c.__module__.startswith({ADDON!r}))
scene = bpy.data.scenes[0] if bpy.data.scenes else bpy.data.scenes.new("probe")
scene.render.engine = 'GAUSSIAN_HEADS'  # raises TypeError unless the engine is registered
result["scene_engine"] = scene.render.engine
""", res)
    assert installed["ret"] == ["FINISHED"]
    assert pathlib.Path(installed["module_file"]).is_relative_to(res / "extensions" / "user_default" / "gaussian_heads")
    assert installed["engines"] == ["GAUSSIAN_HEADS"] and installed["scene_engine"] == "GAUSSIAN_HEADS"
    assert {"GAUSSIAN_HEADS_OT_install_gpu_deps", "GAUSSIAN_HEADS_OT_check_gpu"} <= set(installed["types"])

    site = res / "extensions" / ".local" / "lib" / "python3.11" / "site-packages"
    assert (site / "onnxruntime").is_dir()

    restarted = run_bpy(f"""
import importlib, os, sys, site as _site, addon_utils
import numpy  # Blender ships numpy: the one package the extension relies on Blender for
dev_site = [p for p in sys.path if os.path.realpath(p) in
            {{os.path.realpath(s) for s in _site.getsitepackages()}}]
result["removed"] = dev_site
for p in dev_site:
    sys.path.remove(p)
importlib.invalidate_caches()

def _raise(exc):
    raise exc
addon_utils.enable({ADDON!r}, default_set=True, handle_error=_raise)
result["types"] = sorted(n for n in dir(bpy.types) if n.startswith("GAUSSIAN_HEADS"))
result["engines"] = sorted(c.bl_idname for c in bpy.types.RenderEngine.__subclasses__()
                          if c.is_registered and c.__module__.startswith({ADDON!r}))
scene = bpy.data.scenes[0] if bpy.data.scenes else bpy.data.scenes.new("probe")
scene.render.engine = 'GAUSSIAN_HEADS'  # raises TypeError unless the engine is registered
result["scene_engine"] = scene.render.engine
result["numba_cache_dir"] = os.environ.get("NUMBA_CACHE_DIR")

files = {{}}
for name in {BUNDLED_MODULES!r}:
    files[name] = importlib.import_module(name).__file__
result["files"] = files
try:
    import torch
    result["torch"] = torch.__file__
except ImportError:
    result["torch"] = None

import onnxruntime
result["ort_providers"] = onnxruntime.get_available_providers()
import numba
result["numba_config_cache_dir"] = numba.config.CACHE_DIR
from numba import njit
@njit
def _sum_of_squares(n):
    total = 0
    for i in range(n):
        total += i * i
    return total
result["numba_value"] = _sum_of_squares(1000)
import scipy.spatial.transform as sst
result["scipy_rot"] = sst.Rotation.from_rotvec([0.0, 0.0, 1.5707963267948966]).apply([1.0, 0.0, 0.0]).round(6).tolist()
""", res, drop_env=("NUMBA_CACHE_DIR",))

    assert restarted["removed"], "the .venv site-packages was not on sys.path?"
    assert restarted["engines"] == ["GAUSSIAN_HEADS"] and restarted["scene_engine"] == "GAUSSIAN_HEADS"
    assert {"GAUSSIAN_HEADS_OT_install_gpu_deps", "GAUSSIAN_HEADS_OT_check_gpu"} <= set(restarted["types"])
    for name, path in restarted["files"].items():
        assert pathlib.Path(path).is_relative_to(site), (name, path)
    assert restarted["torch"] is None
    assert "CPUExecutionProvider" in restarted["ort_providers"]
    assert restarted["numba_value"] == sum(i * i for i in range(1000))
    assert restarted["scipy_rot"] == [0.0, 1.0, 0.0]
    # numba (imported after the add-on registered) caches into the extension's user folder.
    cache = res / "extensions" / ".user" / "user_default" / "gaussian_heads" / "numba_cache"
    assert restarted["numba_cache_dir"] == str(cache) == restarted["numba_config_cache_dir"]
