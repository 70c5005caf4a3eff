"""Run a snippet of Python in a fresh process that imports bpy, and get its result back as JSON.

Blender reads ``BLENDER_USER_RESOURCES`` (where preferences, extensions and their user folders
live) when ``bpy`` is first imported, so isolating a test from the real user configuration needs
a new process with that variable already set. Each call therefore starts the test's own Python
(the .venv one) with:
- ``BLENDER_USER_RESOURCES`` = a folder the caller owns (normally pytest's ``tmp_path``);
- the snippet, run after ``import bpy``; it fills the dict ``result``, which comes back as JSON.

A snippet that raises makes ``run_bpy`` raise ``BpyRunError`` carrying the child's output.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_MARKER = "@@GAUSSIAN_HEADS_RESULT@@"

_PROLOGUE = """
import json, sys
import bpy
result = {}
"""

_EPILOGUE = f"""
sys.stdout.write("\\n{_MARKER}" + json.dumps(result) + "\\n")
sys.stdout.flush()
"""


class BpyRunError(RuntimeError):
    pass


def run_bpy(snippet: str, user_resources: pathlib.Path, *, env: dict[str, str] | None = None,
            drop_env: tuple[str, ...] = (), timeout: float = 600) -> dict:
    """Run ``snippet`` after ``import bpy`` in a fresh interpreter; return its ``result`` dict.

    ``env`` adds variables; ``drop_env`` removes inherited ones (e.g. NUMBA_CACHE_DIR, to see
    what the add-on sets by itself).
    """
    user_resources = pathlib.Path(user_resources)
    user_resources.mkdir(parents=True, exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if k not in drop_env}
    child_env["BLENDER_USER_RESOURCES"] = str(user_resources)
    child_env.update(env or {})
    code = _PROLOGUE + textwrap.dedent(snippet) + _EPILOGUE
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(user_resources), env=child_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    out = proc.stdout
    if proc.returncode != 0 or _MARKER not in out:
        raise BpyRunError(f"bpy snippet failed (exit {proc.returncode})\n--- stdout ---\n{out[-6000:]}"
                          f"\n--- stderr ---\n{proc.stderr[-6000:]}")
    return json.loads(out.rsplit(_MARKER, 1)[1].splitlines()[0])
