"""Identity sources: one registry turning a named input into identities (no bpy).

    spec = parse_source("checkpoint:path/to/ckpt")           # or SourceSpec("builtin", n_gaussians=4096)
    identity = sample_identity(spec, seed=7, truncation=0.7)   # -> BoundIdentity (pose, bake, export)
    source_status(spec)                                        # what the UI says about the input

Every kind is one module of this package defining ``KIND = SourceKind(...)`` and one line in
``KINDS`` below. Its ``open(spec)`` returns an object with ``model`` (the head model) and
``sample(seed, shape=None, truncation=0.7) -> Identity``; every identity has the same contract
(``pose(HeadParams) -> GaussianSet``, ``neutral_params()``, ``to_arrays()`` for storage, bake and
export), so nothing downstream asks where a head came from. Blender's enums number the kinds in
``KINDS`` order (.blend files store the numbers): append new kinds, never reorder.
"""

from __future__ import annotations

import os
import numpy as np

from ...errors import GaussianHeadsError
from . import builtin, checkpoint, gaussian_avatars, lam
from .spec import SourceKind, SourceSpec, SourceStatus

KINDS: tuple[SourceKind, ...] = (builtin.KIND, checkpoint.KIND, gaussian_avatars.KIND, lam.KIND)
_BY_NAME: dict[str, SourceKind] = {kind.name: kind for kind in KINDS}
_cache: dict[tuple, object] = {}  # opened sources: building one costs a model load + a binding


def source_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def enum_items() -> tuple[tuple[str, str, str, int], ...]:
    """(IDENTIFIER, label, description, number) per kind, for Blender EnumProperty items."""
    return tuple((k.name.upper(), k.label, k.description, i) for i, k in enumerate(KINDS))


def kind(name: str) -> SourceKind:
    found = _BY_NAME.get(str(name).lower())
    if found is None:
        raise GaussianHeadsError(f"unknown identity source '{name}'; expected one of {', '.join(_BY_NAME)}")
    return found


def parse_source(text: str, n_gaussians: int | None = None, model_spec: str = "open") -> SourceSpec:
    """The CLI's ``--source`` string -> SourceSpec: ``NAME`` or ``NAME:PATH`` (``builtin``,
    ``checkpoint:PATH``, ``lam:PATH``); a bare existing path means a generator checkpoint (older
    command lines)."""
    text = str(text).strip()
    if not text:
        raise GaussianHeadsError("empty identity source; use builtin or checkpoint:PATH")
    name, sep, path = text.partition(":")
    if sep and len(name) > 1 and name.isidentifier() and not os.path.exists(text):  # not 'C:\\…'
        spec = SourceSpec(kind(name).name, path, n_gaussians, model_spec)
    elif text.lower() in _BY_NAME:
        spec = SourceSpec(text.lower(), "", n_gaussians, model_spec)
    else:
        spec = SourceSpec("checkpoint", text, n_gaussians, model_spec)
    kind(spec.name).check(spec)
    return spec


def spec_label(spec: SourceSpec) -> str:
    """Short name for reports and PLY comments: the kind, or the input file's base name."""
    return os.path.basename(os.path.normpath(spec.path)) if spec.path else spec.name


def _cache_key(spec: SourceSpec) -> tuple:
    if not spec.path:
        return (spec.name, spec.n_gaussians, spec.model_spec)
    path = os.path.abspath(spec.path)
    return (spec.name, path, os.path.getmtime(path), spec.n_gaussians, spec.model_spec)


def open_source(spec: SourceSpec):
    """The source for ``spec`` (built once per spec and input-file modification time)."""
    k = kind(spec.name)
    k.check(spec)
    key = _cache_key(spec)
    source = _cache.get(key)
    if source is None:
        source = k.open(spec)
        _cache[key] = source
    return source


def clear_cache() -> None:
    _cache.clear()


def full_shape(shape, n_shape: int) -> np.ndarray | None:
    """Leading identity coefficients [S'] -> [n_shape] (zero-padded, cut); None or all zero -> None."""
    if shape is None:
        return None
    given = np.asarray(shape, np.float32).reshape(-1)
    if not given.any():
        return None
    out = np.zeros(n_shape, np.float32)
    m = min(n_shape, given.shape[0])
    out[:m] = given[:m]
    return out


def sample_identity(spec: SourceSpec, seed: int, shape=None, truncation: float = 0.7):
    """One identity from ``spec``'s source; ``shape`` [S'] leading coefficients (all zero: sampled)."""
    source = open_source(spec)
    beta = full_shape(shape, source.model.n_shape)
    return source.sample(int(seed), shape=beta, truncation=float(truncation))


def source_status(spec: SourceSpec) -> SourceStatus | None:
    """What the UI should say about ``spec``'s input (None: nothing to say). Never raises."""
    try:
        return kind(spec.name).status(spec)
    except GaussianHeadsError as exc:
        return SourceStatus(str(exc), warning=True)


__all__ = ["KINDS", "SourceKind", "SourceSpec", "SourceStatus", "clear_cache", "enum_items", "full_shape",
           "kind", "open_source", "parse_source", "sample_identity", "source_names", "source_status", "spec_label"]
