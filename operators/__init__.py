"""Thin operators: read properties into a settings dataclass, call engine/, report, write results.

Submodules are registered in the order of ``_MODULES`` and unregistered in reverse.
"""

from . import gpu_deps
from . import storage, sample, preview, bake  # avatars: storage, sampling, gallery, bake

_MODULES = (gpu_deps, storage, sample, preview, bake)
from . import anim_io  # noqa: E402  animation import/export (File menus, avatar panel)
_MODULES += (anim_io,)
from . import color_management  # noqa: E402  'Standard' view transform for avatar scenes
_MODULES += (color_management,)
from . import live  # noqa: E402  live face capture (Live panel)
_MODULES += (live,)
from . import splat_io  # noqa: E402  splat files: File > Import/Export, drag-and-drop
_MODULES += (splat_io,)
from . import ga_import  # noqa: E402  GaussianAvatars-format avatars: File > Import
_MODULES += (ga_import,)
from . import lam_io  # noqa: E402  LAM avatar zips: File > Import/Export, drag-and-drop
_MODULES += (lam_io,)
from . import composite  # noqa: E402  Z-combine with Cycles/EEVEE renders (render panel)
_MODULES += (composite,)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
