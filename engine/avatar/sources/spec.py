"""The registry's types: what names a source (SourceSpec) and what a source kind provides (SourceKind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SourceSpec:
    name: str = "builtin"               # a registered kind: "builtin" | "checkpoint" | "gaussian_avatars" …
    path: str = ""                      # the input file or folder (kinds that take one)
    n_gaussians: int | None = None      # built-in only: Gaussians per identity (None: its default)
    model_spec: str = "open"            # built-in: "open" or a FLAME file path; gaussian_avatars: the FLAME path


@dataclass(frozen=True)
class SourceStatus:
    text: str                           # one line for the UI
    warning: bool = False               # drawn with a warning icon


def _no_status(spec: SourceSpec) -> SourceStatus | None:
    return None


@dataclass(frozen=True)
class SourceKind:
    name: str                                        # lower case; the CLI's NAME in NAME:PATH
    label: str                                       # UI label
    description: str                                 # UI tooltip
    check: Callable[[SourceSpec], None]              # raise GaussianHeadsError for a bad spec (cheap)
    open: Callable[[SourceSpec], object]             # -> source with .model and .sample(seed, shape, truncation)
    status: Callable[[SourceSpec], SourceStatus | None] = _no_status
