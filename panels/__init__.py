"""UI only: sidebar tabs, properties-editor panels and menu entries. Panels draw; they never compute.

Submodules are registered in the order of ``_MODULES`` and unregistered in reverse.
"""

from . import render, avatar
from . import live  # the Live capture panel

_MODULES = (render, avatar, live)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
