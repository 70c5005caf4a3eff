"""Bare Blender-as-a-module environments for the installed tier: one venv per Blender we claim.

    .venv/bin/python tools/bpy_venvs.py [4.2 4.5 5.0 5.3]     # create or update; prints the paths

Each venv holds only the ``bpy`` wheel and what it requires, with numpy pinned to the version
that Blender release ships (PyPI's bpy wheels accept newer numpy than the real Blender bundles),
so the add-on there sees what a user's Blender offers: Blender's own modules plus the wheels our
zip bundles. They live in ``.venvs/bpy-<version>`` (ignored by git and the zip). A stamp file
keyed by the requirements makes a second call a no-op; pip's cache makes a rebuild quick.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
ROOT = REPO / ".venvs"


@dataclasses.dataclass(frozen=True)
class BlenderPython:
    blender: str                 # the release line we claim (docs, test ids)
    python: str                  # the CPython that Blender embeds
    requirements: tuple[str, ...]

    @property
    def path(self) -> pathlib.Path:
        return ROOT / f"bpy-{self.blender}"

    @property
    def python_exe(self) -> pathlib.Path:
        return self.path / "bin" / "python"


# numpy: what each Blender bundles (tools/build_extension.py BLENDER_NUMPY). bpy 5.3's wheel asks
# numpy>=2.2,<3; 2.5.5 is the newest the bundled numba (<2.6) accepts.
BLENDERS = {
    "4.2": BlenderPython("4.2", "3.11", ("bpy==4.2.23", "numpy==1.24.3")),
    "4.5": BlenderPython("4.5", "3.11", ("bpy==4.5.15", "numpy==1.26.4")),
    "5.0": BlenderPython("5.0", "3.11", ("bpy==5.0.1", "numpy==1.26.4")),
    "5.3": BlenderPython("5.3", "3.13", ("bpy==5.3.0", "numpy==2.5.5")),
}


def find_python(version: str) -> str:
    """A working CPython ``version`` executable: one of pyenv's, or ``python<version>`` on PATH
    (a pyenv shim on PATH fails unless that version is selected, so each candidate is tried)."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")),
                        reverse=True)
    on_path = shutil.which(f"python{version}")
    for candidate in [*candidates, *([on_path] if on_path else [])]:
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(int(x) for x in version.split("."))):
            return candidate
    raise SystemExit(f"Python {version} is required for the Blender tier that embeds it and was not found "
                     f"(under pyenv, or as python{version} on PATH)")


def ensure(spec: BlenderPython) -> pathlib.Path:
    """Create or update ``spec``'s venv; returns its Python."""
    stamp = spec.path / (".installed-" + "-".join(r.replace("==", "_") for r in spec.requirements))
    if stamp.is_file() and spec.python_exe.is_file():
        return spec.python_exe
    if not spec.python_exe.is_file():
        subprocess.run([find_python(spec.python), "-m", "venv", "--clear", str(spec.path)], check=True)
    subprocess.run([str(spec.python_exe), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *spec.requirements], check=True)
    for old in spec.path.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return spec.python_exe


def main(argv: list[str]) -> int:
    for name in argv or list(BLENDERS):
        if name not in BLENDERS:
            raise SystemExit(f"unknown Blender {name!r}; choose from {', '.join(BLENDERS)}")
        print(ensure(BLENDERS[name]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
