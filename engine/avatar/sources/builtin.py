"""``builtin``: the procedural sampler on a head model (``engine.avatar.builtin``); no input file."""

from __future__ import annotations

from ...errors import GaussianHeadsError
from .spec import SourceKind, SourceSpec


def _check(spec: SourceSpec) -> None:
    if spec.path:
        raise GaussianHeadsError(f"the built-in source takes no file (got '{spec.path}'); "
                                 "use checkpoint:PATH for a generator checkpoint")


def _open(spec: SourceSpec):
    from ..builtin import BuiltinSamplerConfig, BuiltinSource

    config = BuiltinSamplerConfig() if spec.n_gaussians is None else BuiltinSamplerConfig(n_gaussians=spec.n_gaussians)
    return BuiltinSource(config=config, model_spec=spec.model_spec or "open")


KIND = SourceKind(name="builtin", label="Built-in", description="The built-in sampler on the open head model",
                  check=_check, open=_open)
