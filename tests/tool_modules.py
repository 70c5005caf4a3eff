"""Import a module of ``tools/`` (the build scripts some tests exercise) without leaving
``tools/`` on ``sys.path``."""

from __future__ import annotations

import importlib
import pathlib
import sys

TOOLS = pathlib.Path(__file__).resolve().parents[1] / "tools"


def tool_module(name: str):
    sys.path.insert(0, str(TOOLS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TOOLS))
