"""FLAME-layout linear head models: the open model, a FLAME loader, and LBS in numpy and torch.

``load_head_model("open")`` returns the built-in OPEN HEAD MODEL (data/open_head.npz, built from
CC0 MakeHuman assets by tools/build_open_head.py); a path returns a FLAME model read from the
user's own ``.pkl``/``.npz`` (see :mod:`.flame`).
"""

from __future__ import annotations

import functools
import os
import pathlib

from .model import HeadModel, HeadParams  # noqa: F401

OPEN_MODEL_PATH = pathlib.Path(__file__).resolve().parents[2] / "data" / "open_head.npz"


@functools.lru_cache(maxsize=2)
def _load_open() -> HeadModel:
    from .storage import load_npz

    return load_npz(OPEN_MODEL_PATH, default_name="open_head")


def load_head_model(spec: str | os.PathLike = "open", uv_path: str | os.PathLike | None = None) -> HeadModel:
    """``"open"`` -> the built-in open head model (cached; treat it as read-only).

    Any other value is a path to a FLAME model (``generic_model.pkl``, ``flame2023.pkl``, FLAME 2023
    Open, or an ``.npz`` conversion); ``uv_path`` optionally adds UVs from ``head_template_mesh.obj``
    or ``FLAME_texture.npz``. Raises InputFileError naming the file on any problem.
    """
    if isinstance(spec, str) and spec == "open":
        return _load_open()
    from .flame import load_flame

    return load_flame(spec, uv_path=uv_path)
