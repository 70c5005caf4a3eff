"""UI only: sidebar tabs, properties-editor panels and menu entries. Panels draw; they never compute.

Submodules are registered in the order of ``_MODULES`` and unregistered in reverse.
"""

from . import render, avatar

_MODULES = (render, avatar)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
