"""``gaussian_avatars:PATH``: a GaussianAvatars-format avatar (folder or its point_cloud.ply).

The user's FLAME 2023 model is the spec's ``model_spec`` (Blender: the FLAME model chosen in the
preferences; CLI: ``--model PATH``). The folder holds one avatar: every seed gives the same
Gaussians; a given ``shape`` adds to the avatar's own identity (``engine.avatar.gaussian_avatars``).
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ...errors import GaussianHeadsError
from .spec import SourceKind, SourceSpec, SourceStatus


def _check(spec: SourceSpec) -> None:
    if not spec.path:
        raise GaussianHeadsError("choose a GaussianAvatars folder or its point_cloud.ply first")
    if not os.path.exists(spec.path):
        raise GaussianHeadsError(f"{spec.path}: no such GaussianAvatars folder or point_cloud.ply")
    if spec.n_gaussians is not None:
        raise GaussianHeadsError("the number of Gaussians applies to the built-in source; "
                                 "a GaussianAvatars avatar fixes its own count")


def _flame_path(spec: SourceSpec) -> str:
    return "" if spec.model_spec in ("", "open") else spec.model_spec


class GaussianAvatarsSource:
    """One imported avatar; ``sample`` returns it (with ``shape`` as identity offsets when given)."""

    def __init__(self, path: str, flame_path: str):
        from ..gaussian_avatars import load_avatar

        self.identity = load_avatar(path, flame_path)
        self.model = self.identity.model

    def sample(self, seed: int, shape=None, truncation: float = 0.7):
        if shape is None:
            return self.identity
        return replace(self.identity, shape=np.asarray(shape, np.float32))


def _open(spec: SourceSpec) -> GaussianAvatarsSource:
    return GaussianAvatarsSource(spec.path, _flame_path(spec))


def _status(spec: SourceSpec) -> SourceStatus | None:
    if not spec.path or not os.path.exists(spec.path):
        return None
    if not _flame_path(spec):
        return SourceStatus("needs your FLAME 2023 model: choose it in the preferences", warning=True)
    return SourceStatus(f"GaussianAvatars avatar on FLAME {os.path.basename(_flame_path(spec))} (+ teeth)")


KIND = SourceKind(name="gaussian_avatars", label="GaussianAvatars",
                  description="A GaussianAvatars-format avatar (folder or point_cloud.ply) on your FLAME 2023 model",
                  check=_check, open=_open, status=_status)
