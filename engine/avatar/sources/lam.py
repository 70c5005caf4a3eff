"""``lam:PATH``: a LAM avatar zip (aigc3d/LAM's OpenAvatarChat export; ``engine.io.lam``).

The zip holds one avatar, so every seed gives the same identity; ``shape`` and ``truncation``
do not apply (a LAM head model has no identity coefficients).
"""

from __future__ import annotations

import os

from ...errors import GaussianHeadsError
from .spec import SourceKind, SourceSpec, SourceStatus


def _check(spec: SourceSpec) -> None:
    if not spec.path:
        raise GaussianHeadsError("choose a LAM avatar .zip first")
    if not os.path.isfile(spec.path):
        raise GaussianHeadsError(f"{spec.path}: no such LAM avatar zip")
    if spec.n_gaussians is not None:
        raise GaussianHeadsError("a LAM avatar has one Gaussian per vertex; the number of Gaussians "
                                 "applies to the built-in source")


class LamSource:
    """One LAM avatar: ``model`` (its head model) and ``sample`` (always that avatar)."""

    def __init__(self, path: str):
        from ...io.lam import read_lam_zip

        self.avatar = read_lam_zip(path)
        self.model = self.avatar.identity.model

    def sample(self, seed: int, shape=None, truncation: float = 0.7):
        return self.avatar.identity


def _open(spec: SourceSpec):
    return LamSource(spec.path)


def _status(spec: SourceSpec) -> SourceStatus | None:
    if spec.path and os.path.isfile(spec.path):
        return SourceStatus("LAM avatar: one fixed identity (seed, shape and truncation do not apply)")
    return None


KIND = SourceKind(name="lam", label="LAM Avatar", description="A LAM avatar zip (skin.glb, offset.ply, "
                  "vertex_order.json, animation.glb)", check=_check, open=_open, status=_status)
