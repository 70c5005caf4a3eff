"""The repository, linked as a development extension, registers and unregisters cleanly.

Each test runs in a fresh bpy process (tests/blender/bpy_runner.py) with its own
BLENDER_USER_RESOURCES, so nothing touches the real user configuration. The repository folder
is not named after the extension id, so a temporary repo directory holds a symlink
``gaussian_heads -> <repo>`` and Blender loads it as ``bl_ext.dev.gaussian_heads``.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

from tests.blender.bpy_runner import REPO_ROOT, run_bpy

ADDON = "bl_ext.dev.gaussian_heads"

# Defines: link_dev_repo(path), enable(), disable(), snapshot() -> dict of what is registered.
_HELPERS = f"""
import os, sys, addon_utils

ADDON = {ADDON!r}

def _raise(exc):
    raise exc

def link_dev_repo(path):
    bpy.context.preferences.extensions.repos.new(
        name="dev", module="dev", custom_directory=path, source='USER')

def enable():
    addon_utils.enable(ADDON, default_set=True, handle_error=_raise)

def disable():
    addon_utils.disable(ADDON, default_set=True, handle_error=_raise)

def ours(obj):
    module = getattr(obj, "__module__", "") or ""
    return module == ADDON or module.startswith(ADDON + ".")

def engine_selectable():
    scene = bpy.data.scenes[0] if bpy.data.scenes else bpy.data.scenes.new("probe")
    previous = scene.render.engine
    try:
        scene.render.engine = 'GAUSSIAN_HEADS'
    except TypeError:
        return False
    scene.render.engine = previous
    return True

def snapshot():
    handlers = {{}}
    for name in dir(bpy.app.handlers):
        value = getattr(bpy.app.handlers, name)
        if isinstance(value, list):
            mine = sorted(getattr(f, "__qualname__", repr(f)) for f in value if ours(f))
            if mine:
                handlers[name] = mine
    return {{
        "types": sorted(n for n in dir(bpy.types) if n.upper().startswith("GAUSSIAN_HEADS")),
        # Registered render engines (a Python class object outlives its unregistration, so
        # __subclasses__ alone would not tell; is_registered does).
        "engines": sorted(getattr(c, "bl_idname", c.__name__) for c in bpy.types.RenderEngine.__subclasses__()
                          if c.is_registered),
        "our_engines": sorted(c.bl_idname for c in bpy.types.RenderEngine.__subclasses__()
                              if ours(c) and c.is_registered),
        "engine_selectable": engine_selectable(),
        "handlers": handlers,
        "object_prop": "gaussian_heads" in bpy.types.Object.bl_rna.properties,
        "scene_prop": "gaussian_heads" in bpy.types.Scene.bl_rna.properties,
        "addon_prefs": ADDON in bpy.context.preferences.addons,
        "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gpu_path_on_sys_path": [p for p in sys.path if p.endswith(os.path.join(ADDON.split(".")[-1], "site-packages"))],
    }}
"""


@pytest.fixture
def dev_repo(tmp_path) -> pathlib.Path:
    repo = tmp_path / "dev_repo"
    repo.mkdir()
    (repo / "gaussian_heads").symlink_to(REPO_ROOT, target_is_directory=True)
    return repo


@pytest.mark.slow
def test_enable_disable_enable_registers_the_same_and_leaves_nothing(tmp_path, dev_repo):
    res = tmp_path / "user_resources"
    result = run_bpy(_HELPERS + f"""
bpy.ops.wm.read_factory_settings(use_empty=True)
link_dev_repo({str(dev_repo)!r})
result["baseline"] = snapshot()
enable()
result["first"] = snapshot()
disable()
result["after_disable"] = snapshot()
enable()
result["second"] = snapshot()
disable()
result["after_second_disable"] = snapshot()
""", res, drop_env=("NUMBA_CACHE_DIR", "OMP_WAIT_POLICY"))

    baseline, first, second = result["baseline"], result["first"], result["second"]
    # Nothing of ours before enabling.
    assert baseline["types"] == [] and baseline["our_engines"] == [] and baseline["handlers"] == {}
    assert not baseline["object_prop"] and not baseline["scene_prop"]
    assert baseline["numba_cache_dir"] is None and baseline["omp_wait_policy"] is None

    # Enabled: our operators, preferences, render engine and properties are there.
    for name in ("GAUSSIAN_HEADS_OT_install_gpu_deps", "GAUSSIAN_HEADS_OT_cancel_gpu_install",
                 "GAUSSIAN_HEADS_OT_check_gpu"):
        assert name in first["types"]
    assert first["addon_prefs"]
    assert first["our_engines"] == ["GAUSSIAN_HEADS"]
    assert "GAUSSIAN_HEADS" in first["engines"] and "GAUSSIAN_HEADS" not in baseline["engines"]
    assert first["engine_selectable"] and not baseline["engine_selectable"]
    assert first["object_prop"] and first["scene_prop"]
    # NUMBA_CACHE_DIR points into the extension's user folder inside our isolated resources.
    expected_cache = res / "extensions" / ".user" / "dev" / "gaussian_heads" / "numba_cache"
    assert first["numba_cache_dir"] == str(expected_cache)
    assert first["omp_wait_policy"] == "PASSIVE"   # set before numba or torch start a thread pool
    assert expected_cache.is_dir()

    # Enabling again after a disable registers exactly the same set.
    assert second == first

    # After each disable nothing of ours remains, and the environment is restored.
    for key in ("after_disable", "after_second_disable"):
        after = result[key]
        assert after["types"] == [], after["types"]
        assert after["our_engines"] == []
        assert after["engines"] == baseline["engines"]
        assert not after["engine_selectable"]
        assert after["handlers"] == {}
        assert not after["object_prop"] and not after["scene_prop"]
        assert after["numba_cache_dir"] is None and after["omp_wait_policy"] is None
        assert after["gpu_path_on_sys_path"] == []


@pytest.mark.slow
def test_gpu_installer_refuses_without_online_access_and_status_check_reports(tmp_path, dev_repo):
    result = run_bpy(_HELPERS + f"""
bpy.ops.wm.read_factory_settings(use_empty=True)
link_dev_repo({str(dev_repo)!r})
enable()
bpy.context.preferences.system.use_online_access = False
result["online_off"] = bpy.app.online_access
result["poll_off"] = bpy.ops.gaussian_heads.install_gpu_deps.poll()
try:
    bpy.ops.gaussian_heads.install_gpu_deps()
    result["refusal"] = ""
except RuntimeError as exc:
    result["refusal"] = str(exc)
bpy.context.preferences.system.use_online_access = True
result["online_on"] = bpy.app.online_access
result["poll_on"] = bpy.ops.gaussian_heads.install_gpu_deps.poll()
result["cancel_poll"] = bpy.ops.gaussian_heads.cancel_gpu_install.poll()
result["check"] = sorted(bpy.ops.gaussian_heads.check_gpu())
from bl_ext.dev.gaussian_heads.operators import gpu_deps
status = gpu_deps.last_status()
result["status"] = [status.torch, status.cuda, status.gsplat, status.ready, status.summary()]
prefs = bpy.context.preferences.addons[ADDON].preferences
result["prefs_idname"] = type(prefs).bl_idname
result["extra_index_url"] = prefs.extra_index_url
""", tmp_path / "res")

    assert result["online_off"] is False
    assert result["poll_off"] is False
    assert "Allow Online Access" in result["refusal"]
    assert result["online_on"] is True and result["poll_on"] is True
    assert result["cancel_poll"] is False
    assert result["check"] == ["FINISHED"]
    import torch  # the development environment's CPU torch is what the child imported too
    torch_version, cuda, gsplat_version, ready, summary = result["status"]
    assert torch_version == torch.__version__
    assert gsplat_version is not None
    assert ready == (cuda is not None)
    assert summary.startswith("Ready" if ready else "Not ready")
    assert result["prefs_idname"] == ADDON and result["extra_index_url"] == ""


@pytest.mark.slow
def test_gpu_install_job_installs_with_blenders_python_and_folder_joins_sys_path(tmp_path, dev_repo):
    """The installer's pip job, run for real with a small wheel instead of torch and gsplat.

    plyfile's wheel is fetched first (package index), then the job installs it with
    ``--no-index`` into the same user folder the GPU installer uses, with Blender's Python.
    """
    import subprocess

    wheel_dir = tmp_path / "wheelhouse"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                    "-d", str(wheel_dir), "plyfile==1.1.3"], check=True, capture_output=True)
    result = run_bpy(_HELPERS + f"""
bpy.ops.wm.read_factory_settings(use_empty=True)
link_dev_repo({str(dev_repo)!r})
enable()
from bl_ext.dev.gaussian_heads import preferences
from bl_ext.dev.gaussian_heads.operators import gpu_deps
target = preferences.gpu_site_packages(create=True)
constraints = os.path.join(os.getcwd(), "constraints.txt")
open(constraints, "w").write("numpy==" + __import__("numpy").__version__ + "\\n")
cmd = gpu_deps.pip_command(target, ("plyfile==1.1.3",), constraints,
                           extra_args=("--no-index", "--no-deps", "--find-links", {str(wheel_dir)!r}))
job = gpu_deps.PipJob(cmd)
job.start()
result["rc"] = job.wait(timeout=300)
result["status_line"] = job.status_line()
result["output"] = job.output()
result["cmd_python"] = cmd[0]
result["installed"] = sorted(os.listdir(target))
result["target"] = target

# A long job is cancelled promptly and says so.
slow = gpu_deps.PipJob([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(120)"])
slow.start()
import time
t0 = time.time()
while not slow.lines and time.time() - t0 < 30:
    time.sleep(0.05)
result["slow_running"] = slow.running
slow.cancel()
slow.wait(timeout=30)
result["cancel_seconds"] = time.time() - t0
result["cancelled_status"] = slow.status_line()
result["slow_rc"] = slow.returncode

# Re-enabling finds the folder and puts it on sys.path, so packages installed there import.
disable()
result["on_path_after_disable"] = target in sys.path
enable()
result["on_path_after_enable"] = target in sys.path
""", tmp_path / "res")

    assert result["rc"] == 0, result["output"]
    assert result["cmd_python"] == sys.executable
    assert result["status_line"].startswith("Installed")
    assert "plyfile.py" in result["installed"] or "plyfile" in result["installed"]
    assert pathlib.Path(result["target"]).is_relative_to(tmp_path / "res")
    assert result["slow_running"] is True
    assert result["cancel_seconds"] < 20
    assert result["cancelled_status"] == "Cancelled" and result["slow_rc"] != 0
    assert result["on_path_after_disable"] is False
    assert result["on_path_after_enable"] is True
