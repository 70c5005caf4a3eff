"""engine/ runs without Blender: every module imports with bpy (and its siblings) absent.

The modules are discovered with pkgutil, so a module added later is covered without editing
this test. The import runs in a child interpreter whose ``sys.meta_path`` starts with a finder
that raises ImportError for Blender's modules, exactly what a plain Python without Blender does.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BLENDER_ONLY = ("bpy", "bpy_extras", "bpy_types", "_bpy", "mathutils", "bmesh", "gpu",
                "gpu_extras", "bgl", "blf", "aud", "idprop", "imbuf", "addon_utils")

_CHILD = r"""
import importlib, importlib.abc, json, pkgutil, sys, traceback

BLOCKED = set(json.loads(sys.argv[1]))

class NoBlender(importlib.abc.MetaPathFinder):
    attempts = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            self.attempts.append(name)
            raise ImportError(f"{name} is not available (engine must not import Blender)")
        return None

sys.meta_path.insert(0, NoBlender())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]

import engine
names, failures = ["engine"], {}
def onerror(name):
    failures[name] = traceback.format_exc(limit=8)
for info in pkgutil.walk_packages(engine.__path__, "engine.", onerror=onerror):
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except BaseException:
        failures[info.name] = traceback.format_exc(limit=8)
print(json.dumps({"modules": names, "failures": failures, "attempts": NoBlender.attempts}))
"""


def test_every_engine_module_imports_without_blender():
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(BLENDER_ONLY)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    discovered = set(report["modules"])
    # Discovery really walked the tree: every .py file under engine/ is among the modules.
    on_disk = {".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in (REPO_ROOT / "engine").rglob("*.py")}
    assert on_disk <= discovered, sorted(on_disk - discovered)
    assert report["failures"] == {}, "\n".join(f"{k}:\n{v}" for k, v in report["failures"].items())
    assert report["attempts"] == []


_BLENDER_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(?:%s)(?:\.|\s|$|,)" % "|".join(re.escape(m) for m in BLENDER_ONLY), re.M)


def test_no_engine_source_imports_blender():
    offenders = []
    for path in sorted((REPO_ROOT / "engine").rglob("*.py")):
        for match in _BLENDER_IMPORT.finditer(path.read_text(encoding="utf-8")):
            line = path.read_text(encoding="utf-8")[:match.start()].count("\n") + 1
            offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {match.group(0).strip()}")
    assert offenders == []


def test_the_static_check_recognises_blender_imports():
    for text in ("import bpy", "from bpy import types", "  import bpy.utils", "from mathutils import Matrix",
                 "import gpu, numpy"):
        assert _BLENDER_IMPORT.search(text), text
    for text in ("import bpy_helpers_of_ours", "from .gpu_backend import x", "import numpy  # bpy"):
        assert not _BLENDER_IMPORT.search(text), text
