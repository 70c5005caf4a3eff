"""Splat interchange formats, one module per format, and the registry that picks one.

``read_splats(path)`` / ``write_splats(path, gaussians)`` choose the format by content (PLY's
``ply`` line, SPZ's gzip magic) and then by extension (``.splat`` has no magic). Readers return a
:class:`GaussianSet`; every problem with a file is one ``InputFileError`` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..avatar.gaussian_set import GaussianSet
from ..errors import GaussianHeadsError, InputFileError
from .ply import read_ply, write_ply
from .splat import read_splat, write_splat
from .spz import read_spz, write_spz


@dataclass(frozen=True)
class SplatFormat:
    name: str                                         # "ply" | "spz" | "splat"
    label: str                                        # for menus and messages
    extensions: tuple[str, ...]                       # lower case, with the dot
    magic: bytes                                      # b"" when the format has none
    read: Callable[[str], GaussianSet]
    write: Callable[[str, GaussianSet], None]
    keeps_sh: bool                                    # SH degree >= 1 survives a write


FORMATS: dict[str, SplatFormat] = {f.name: f for f in (
    SplatFormat("ply", "3DGS PLY", (".ply",), b"ply", read_ply, write_ply, True),
    SplatFormat("spz", "Niantic SPZ", (".spz",), b"\x1f\x8b", read_spz, write_spz, True),
    SplatFormat("splat", "antimatter15 .splat", (".splat",), b"", read_splat, write_splat, False),
)}
EXTENSIONS = tuple(e for f in FORMATS.values() for e in f.extensions)


def format_for_extension(path: str | os.PathLike) -> SplatFormat | None:
    ext = os.path.splitext(os.fspath(path))[1].lower()
    return next((f for f in FORMATS.values() if ext in f.extensions), None)


def detect_format(path: str | os.PathLike) -> SplatFormat:
    """The format of an existing file: by its first bytes, else by its extension."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None
    for fmt in FORMATS.values():
        if fmt.magic and head.startswith(fmt.magic):
            return fmt
    fmt = format_for_extension(path)
    if fmt is None or fmt.magic:   # a .ply/.spz without its magic is not that format
        kinds = ", ".join(EXTENSIONS)
        raise InputFileError(path, f"not a Gaussian splat file this add-on reads ({kinds})")
    return fmt


def read_splats(path: str | os.PathLike) -> GaussianSet:
    """Read any supported splat file -> GaussianSet (N)."""
    return detect_format(path).read(os.fspath(path))


def write_splats(path: str | os.PathLike, gaussians: GaussianSet, name: str | None = None) -> SplatFormat:
    """Write ``gaussians`` in format ``name`` (default: from the extension). Returns the format."""
    fmt = FORMATS.get(name) if name else format_for_extension(path)
    if fmt is None:
        raise GaussianHeadsError(f"{os.fspath(path)}: unknown splat format; use one of {', '.join(EXTENSIONS)}")
    fmt.write(os.fspath(path), gaussians)
    return fmt
