"""This checkout as an enabled Blender extension inside a bpy process, for the tools that render or
time it (``render_native_scene``, ``render_composite_scene``, ``bench_native_pose``,
``bench_blender_render``, ``bench_blender_import``).

``enable_checkout`` makes a temporary folder with an isolated Blender user folder (nothing under
``~`` is touched) and an extension repository "ghbench" in which this checkout is the extension
"gaussian_heads", then enables it as ``ADDON_MODULE``. Call it before anything imports bpy:
Blender reads ``BLENDER_USER_RESOURCES`` on that first import.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
ADDON_MODULE = "bl_ext.ghbench.gaussian_heads"


def install_bundled_wheels(target: pathlib.Path) -> None:
    """The zip's wheels for this Python (and pure-Python ones) from wheels/, into ``target``."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform_tag = "manylinux" if sys.platform == "linux" else ("macosx" if sys.platform == "darwin" else "win")
    wheels = [str(w) for w in sorted((REPO / "wheels").glob("*.whl"))
              if (f"-{tag}-" in w.name or "-py3-none-" in w.name or "-py2.py3-" in w.name or "-abi3-" in w.name)
              and (w.name.endswith("-any.whl") or platform_tag in w.name)]
    if not any("numba" in w for w in wheels):
        raise SystemExit(f"no {tag} numba wheel in {REPO / 'wheels'}: run "
                         "`.venv/bin/python tools/build_extension.py --platform linux-x64` first")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--target", str(target), *wheels], check=True)


def enable_checkout(prefix: str, *, bundled_wheels: bool = False) -> pathlib.Path:
    """Enable this checkout as ``ADDON_MODULE`` in factory settings; returns the temporary folder
    (named ``prefix``…), free for the caller's files beside ``user/`` and ``extensions/``.

    ``bundled_wheels``: first install the zip's wheels for this Python into ``<tmp>/site`` and
    put it on ``sys.path`` (what a bare Blender lacks: numba and the rest of the bundle).
    """
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    if bundled_wheels:
        install_bundled_wheels(tmp / "site")
        sys.path.append(str(tmp / "site"))
    os.environ.setdefault("BLENDER_USER_RESOURCES", str(tmp / "user"))
    import bpy  # after BLENDER_USER_RESOURCES is set
    import addon_utils  # importable once bpy is

    ext_repo = tmp / "extensions"
    ext_repo.mkdir()
    (ext_repo / "gaussian_heads").symlink_to(REPO, target_is_directory=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.extensions.repos.new(name="ghbench", module="ghbench",
                                                 custom_directory=str(ext_repo), source='USER')
    if addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=None) is None:
        raise RuntimeError(f"could not enable {ADDON_MODULE}")
    return tmp
