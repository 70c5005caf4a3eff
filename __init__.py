"""Gaussian Heads: generate, animate, bake and render 3D Gaussian head avatars in Blender.

Registration only: each submodule registers its own classes; they are registered in the order
listed and unregistered in reverse.
"""

from . import properties, render_engine, operators, panels

_MODULES = (properties, render_engine, operators, panels)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
