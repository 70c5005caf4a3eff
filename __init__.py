"""Gaussian Heads: generate, animate, bake and render 3D Gaussian head avatars in Blender.

Registration only: each submodule registers its own classes; they are registered in the order
listed and unregistered in reverse. Submodules are imported inside ``register()`` (not at the top
of this file) so that ``preferences.register()`` runs before anything imports ``engine``: it sets
``NUMBA_CACHE_DIR`` to the extension's user folder (numba reads it once, at import) and puts the
optional GPU packages' folder on ``sys.path``.
"""

import importlib

_MODULES = ("preferences", "properties", "render_engine", "operators", "panels")


def _module(name):
    return importlib.import_module(f".{name}", __package__)


def register():
    for name in _MODULES:
        _module(name).register()


def unregister():
    for name in reversed(_MODULES):
        _module(name).unregister()
