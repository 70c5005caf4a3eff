"""``checkpoint:PATH``: a generator checkpoint (folder, .zip, config.json or .safetensors).

Its status line says whether the weights are trained: the checkpoint's meta ``"trained"``
(``tools/make_generator_checkpoint.py`` writes ``false``; random weights give structured noise).
"""

from __future__ import annotations

import os

from ...errors import GaussianHeadsError
from .spec import SourceKind, SourceSpec, SourceStatus

UNTRAINED = "untrained (random weights): samples are structured noise"
TRAINED = "trained checkpoint"
UNKNOWN = "training status unknown: the checkpoint's meta has no 'trained' entry"
_status_cache: dict[tuple, SourceStatus] = {}


def _check(spec: SourceSpec) -> None:
    if not spec.path:
        raise GaussianHeadsError("choose a generator checkpoint file first")
    if not os.path.exists(spec.path):  # a folder, .zip, config.json or .safetensors
        raise GaussianHeadsError(f"{spec.path}: no such generator checkpoint file or folder")
    if spec.n_gaussians is not None:
        raise GaussianHeadsError("the number of Gaussians applies to the built-in source; "
                                 "a checkpoint fixes its own count")


def _open(spec: SourceSpec):
    import importlib.util

    if importlib.util.find_spec(f"{__package__.rsplit('.', 2)[0]}.generator.source") is None:
        raise GaussianHeadsError("generator checkpoints need engine.generator.source, which this build lacks")
    from ...generator.source import CheckpointSource

    return CheckpointSource(spec.path)


def _status(spec: SourceSpec) -> SourceStatus | None:
    """Trained or not, from config.json's meta (read once per file modification time)."""
    if not spec.path or not os.path.exists(spec.path):
        return None
    from ...generator.checkpoint import read_checkpoint

    key = (os.path.abspath(spec.path), os.path.getmtime(spec.path))
    if key not in _status_cache:
        trained = read_checkpoint(spec.path).meta.get("trained")
        if trained is True:
            _status_cache[key] = SourceStatus(TRAINED)
        elif trained is None:
            _status_cache[key] = SourceStatus(UNKNOWN, warning=True)
        else:
            _status_cache[key] = SourceStatus(UNTRAINED, warning=True)
    return _status_cache[key]


KIND = SourceKind(name="checkpoint", label="Checkpoint", description="A generator checkpoint file or folder",
                  check=_check, open=_open, status=_status)
