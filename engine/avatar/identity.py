"""Identities: canonical Gaussians bound to the head model, posed per frame.

An identity is N Gaussians bound to the head mesh (``binding.Binding``) whose attributes live in
their triangle's local frame (``binding`` module docstring):

    CanonicalGaussians
        offsets        [N, 3]    position relative to the bound surface point, in the face frame,
                                 in units of the face scale s
        log_scales     [N, 3]    log of the per-axis std-dev in units of s (axes of ``quats``)
        quats          [N, 4]    wxyz rotation relative to the face frame
        opacity_logits [N]
        sh             [N, K, 3] colour SH (not rotated with the face)

Posing (``BoundIdentity.pose``): mesh vertices from ``head_model.lbs.forward``; ``lift`` gives the
surface point p, face rotation R (quaternion q_R) and scale s per Gaussian; then

    mean      = p + s · R · offset
    log_scale = log_scales + log(s)
    quat      = q_R ⊗ quat

A ``Deformation`` (generator network, bake) may add ``GaussianResiduals`` to the canonical
attributes before lifting; residual quaternions are added and the sum renormalised.
"""

from __future__ import annotations

import importlib

import json
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from ..head_model.model import HeadModel, HeadParams
from .binding import Binding
from .gaussian_set import GaussianSet, sh_degree_for
from .lift_kernel import SCALE_RULES, lift_gaussians

FORMAT_VERSION = 1
_FIELDS = ("offsets", "log_scales", "quats", "opacity_logits")


@dataclass(frozen=True)
class CanonicalGaussians:
    """N Gaussians in their bound triangles' local frames (see the module docstring for shapes)."""

    offsets: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray

    def __post_init__(self) -> None:
        for name in ("offsets", "log_scales", "quats", "opacity_logits", "sh"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        check_shape("offsets", self.offsets, (None, 3))
        n = self.offsets.shape[0]
        check_shape("log_scales", self.log_scales, (n, 3))
        check_shape("quats", self.quats, (n, 4))
        check_shape("opacity_logits", self.opacity_logits, (n,))
        check_shape("sh", self.sh, (n, None, 3))
        sh_degree_for(self.sh.shape[1])

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh.shape[1])

    def subset(self, index) -> "CanonicalGaussians":
        return CanonicalGaussians(self.offsets[index], self.log_scales[index], self.quats[index],
                                  self.opacity_logits[index], self.sh[index])


@dataclass(frozen=True)
class GaussianResiduals:
    """Per-frame additive corrections to CanonicalGaussians (same shapes, float32).

    d_offsets [N, 3], d_log_scales [N, 3], d_quats [N, 4] (added, then renormalised),
    d_opacity_logits [N]. Any of them may be None (no change).
    """

    d_offsets: np.ndarray | None = None
    d_log_scales: np.ndarray | None = None
    d_quats: np.ndarray | None = None
    d_opacity_logits: np.ndarray | None = None

    def check(self, n: int) -> None:
        shapes = {"d_offsets": (n, 3), "d_log_scales": (n, 3), "d_quats": (n, 4), "d_opacity_logits": (n,)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None:
                check_shape(name, value, shape)

    def applied_to(self, canonical: CanonicalGaussians) -> CanonicalGaussians:
        """CanonicalGaussians with these residuals added."""
        self.check(len(canonical))
        quats = canonical.quats
        if self.d_quats is not None:
            quats = quats + self.d_quats
            norm = np.linalg.norm(quats, axis=1, keepdims=True)
            quats = np.where(norm > 1e-12, quats / np.maximum(norm, 1e-12), np.array([1, 0, 0, 0], np.float32))

        def add(base, delta):
            return base if delta is None else base + delta

        return CanonicalGaussians(add(canonical.offsets, self.d_offsets),
                                  add(canonical.log_scales, self.d_log_scales), quats,
                                  add(canonical.opacity_logits, self.d_opacity_logits), canonical.sh)


@runtime_checkable
class Deformation(Protocol):
    """Per-frame residuals from head parameters (a network branch or baked blendshapes).

    To be stored by ``BoundIdentity.to_arrays`` a deformation also has ``kind: str`` and
    ``to_arrays() -> dict[str, np.ndarray]``, and its ``kind`` is registered with
    ``register_deformation(kind, from_arrays)``.
    """

    def residuals(self, params: HeadParams) -> GaussianResiduals | None: ...


@runtime_checkable
class Identity(Protocol):
    model: HeadModel
    shape: np.ndarray

    def neutral_params(self) -> HeadParams: ...

    def pose(self, params: HeadParams) -> GaussianSet: ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...


# kind -> from_arrays(arrays: dict[str, np.ndarray], model: HeadModel) -> Deformation
_DEFORMATION_LOADERS: dict[str, Callable[[dict, HeadModel], Deformation]] = {}
# Deformation kinds of our own, and the module (relative to ``engine``) whose import registers
# them: loading a stored identity must not depend on what happened to be imported before.
_BUILTIN_DEFORMATION_MODULES: dict[str, str] = {"generator_network": "..generator.source"}


def register_deformation(kind: str, from_arrays: Callable[[dict, HeadModel], Deformation]) -> None:
    """Make deformations of ``kind`` loadable by ``BoundIdentity.from_arrays``.

    ``from_arrays(arrays, model)`` receives the deformation's own arrays (the ``deformation.``
    prefix removed) and the head model.
    """
    _DEFORMATION_LOADERS[kind] = from_arrays


def encode_meta(meta: dict) -> np.ndarray:
    """JSON-serialisable dict -> 1-element unicode array (storable without pickles)."""
    try:
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise GaussianHeadsError(f"identity metadata is not JSON-serialisable: {exc}") from None
    return np.array([text])


def decode_meta(array) -> dict:
    """Inverse of ``encode_meta``."""
    array = np.asarray(array)
    if array.dtype.kind not in "US" or array.size != 1:
        raise GaussianHeadsError("identity metadata must be a one-element string array")
    text = array.reshape(-1)[0]
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        meta = json.loads(str(text))
    except ValueError as exc:
        raise GaussianHeadsError(f"identity metadata is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise GaussianHeadsError("identity metadata must be a JSON object")
    return meta


def model_spec(model: HeadModel) -> str:
    """The ``load_head_model`` spec that reloads ``model`` as far as the model itself tells:
    "open" for the built-in open head model, else its name (for a FLAME file the caller should
    record the path it loaded, e.g. ``BuiltinSource(model_spec=path)`` or ``meta["model"]``)."""
    return "open" if model.name in ("open", "open_head") else model.name


def faces_checksum(faces: np.ndarray) -> int:
    """CRC32 of the face array (int32): identifies the topology an identity was bound to."""
    return int(zlib.crc32(np.ascontiguousarray(faces, dtype="<i4").tobytes()))


def require_one_frame(params: HeadParams, who: str) -> None:
    """Refuse batched ``params`` (``expr`` [F, E]): ``who``.pose takes one frame."""
    if np.asarray(params.expr).ndim != 1:
        raise GaussianHeadsError(f"{who}.pose takes one frame; pose batches frame by frame")


class ModelPosedIdentity:
    """What identities posed through their head model's skeleton share; the class supplies
    ``model``, ``shape`` [S] and ``__len__`` (the Gaussian count)."""

    @property
    def n_gaussians(self) -> int:
        return len(self)

    def neutral_params(self) -> HeadParams:
        params = HeadParams.neutral_for(self.model)
        params.shape = self.shape.copy()
        return params


@dataclass
class BoundIdentity(ModelPosedIdentity):
    """Canonical Gaussians bound to a head model (implements ``Identity``).

    model: HeadModel; binding: Binding (N); canonical: CanonicalGaussians (N);
    shape [S] identity β; deformation: optional Deformation; meta: JSON-serialisable dict
    (``meta["model"]`` is the spec to reload the head model with; defaults to ``model_spec(model)``;
    ``meta["face_scale"]`` the face scale rule of ``lift_kernel``, default "mean_edge").
    """

    model: HeadModel
    binding: Binding
    canonical: CanonicalGaussians
    shape: np.ndarray
    deformation: Deformation | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape = np.ascontiguousarray(self.shape, dtype=np.float32)
        check_shape("shape", self.shape, (self.model.n_shape,))
        if len(self.binding) != len(self.canonical):
            raise GaussianHeadsError(
                f"binding has {len(self.binding)} Gaussians but the canonical set has {len(self.canonical)}")
        self.binding.validate(self.model.faces.shape[0])
        self.meta = dict(self.meta)
        self.meta.setdefault("model", model_spec(self.model))
        self._faces = np.ascontiguousarray(self.model.faces, dtype=np.int32)
        self._scale_rule = str(self.meta.get("face_scale", "mean_edge"))
        if self._scale_rule not in SCALE_RULES:
            raise GaussianHeadsError(f"identity has an unknown face scale rule '{self._scale_rule}' "
                                     f"(known: {', '.join(SCALE_RULES)})")

    def __len__(self) -> int:
        return len(self.binding)

    # -- posing ---------------------------------------------------------------------------------
    def pose(self, params: HeadParams) -> GaussianSet:
        """One frame (unbatched params) -> GaussianSet (N) in model space."""
        from ..head_model import lbs  # the head-model developer's module; imported when posing

        require_one_frame(params, "BoundIdentity")
        vertices = lbs.forward(self.model, params).vertices
        return self.pose_vertices(vertices, params)

    def pose_vertices(self, vertices: np.ndarray, params: HeadParams | None = None) -> GaussianSet:
        """Gaussians on an already posed mesh: vertices [V, 3] -> GaussianSet (N), model space.

        ``params`` feeds the deformation (if any); without it no residuals are applied.
        """
        vertices = np.asarray(vertices, dtype=np.float32)
        check_shape("vertices", vertices, (self.model.n_vertices, 3))
        canonical = self.canonical
        if self.deformation is not None and params is not None:
            residuals = self.deformation.residuals(params)
            if residuals is not None:
                canonical = residuals.applied_to(canonical)
        return lift_canonical(vertices, self._faces, self.binding, canonical, scale_rule=self._scale_rule)

    # -- storage ----------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays (no objects, no pickles): binding, canonical, shape, meta.

        Keys: ``binding.face_idx`` ``binding.bary`` ``binding.uv`` ``canonical.offsets``
        ``canonical.log_scales`` ``canonical.quats`` ``canonical.opacity_logits`` ``canonical.sh``
        ``shape`` ``meta`` (JSON string, 1-element array) and ``deformation.*`` when the
        deformation is storable.
        """
        meta = dict(self.meta)
        meta.update(format_version=FORMAT_VERSION, kind="bound_identity",
                     model_vertices=self.model.n_vertices, model_faces=int(self.model.faces.shape[0]),
                     model_faces_crc32=faces_checksum(self.model.faces))
        out = {
            "binding.face_idx": self.binding.face_idx.copy(),
            "binding.bary": self.binding.bary.copy(),
            "binding.uv": self.binding.uv.copy(),
            "canonical.offsets": self.canonical.offsets.copy(),
            "canonical.log_scales": self.canonical.log_scales.copy(),
            "canonical.quats": self.canonical.quats.copy(),
            "canonical.opacity_logits": self.canonical.opacity_logits.copy(),
            "canonical.sh": self.canonical.sh.copy(),
            "shape": self.shape.copy(),
        }
        meta["deformation"] = None
        if self.deformation is not None:
            kind = getattr(self.deformation, "kind", None)
            to_arrays = getattr(self.deformation, "to_arrays", None)
            if kind is None or to_arrays is None:
                raise GaussianHeadsError(
                    f"the identity's deformation ({type(self.deformation).__name__}) cannot be stored")
            meta["deformation"] = str(kind)
            for key, value in to_arrays().items():
                out[f"deformation.{key}"] = np.asarray(value)
        out["meta"] = encode_meta(meta)
        return out

    @classmethod
    def from_arrays(cls, arrays, model: HeadModel | None = None) -> "BoundIdentity":
        """Inverse of ``to_arrays``. ``model`` defaults to ``load_head_model(meta["model"])``."""
        arrays = dict(arrays)
        for key in ("meta", "shape", "binding.face_idx", "binding.bary", "binding.uv", "canonical.offsets",
                    "canonical.log_scales", "canonical.quats", "canonical.opacity_logits", "canonical.sh"):
            if key not in arrays:
                raise GaussianHeadsError(f"stored identity lacks '{key}'")
        meta = decode_meta(arrays["meta"])
        if meta.get("kind") != "bound_identity":
            raise GaussianHeadsError(f"stored data is not a bound identity (kind {meta.get('kind')!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise GaussianHeadsError(
                f"stored identity has format version {meta.get('format_version')}; this version reads up to "
                f"{FORMAT_VERSION} (update the extension)")
        if model is None:
            from ..head_model import load_head_model

            spec = str(meta.get("model", "open"))
            model = load_head_model("open" if spec == "open_head" else spec)
        if (meta.get("model_vertices") != model.n_vertices or meta.get("model_faces") != model.faces.shape[0]
                or meta.get("model_faces_crc32") != faces_checksum(model.faces)):
            raise GaussianHeadsError(
                f"stored identity was bound to a different head model topology than '{model.name}' "
                f"({meta.get('model_vertices')} vertices, {meta.get('model_faces')} faces)")
        binding = Binding(arrays["binding.face_idx"], arrays["binding.bary"], arrays["binding.uv"])
        canonical = CanonicalGaussians(arrays["canonical.offsets"], arrays["canonical.log_scales"],
                                       arrays["canonical.quats"], arrays["canonical.opacity_logits"],
                                       arrays["canonical.sh"])
        deformation = None
        kind = meta.get("deformation")
        if kind is not None:
            if kind not in _DEFORMATION_LOADERS and kind in _BUILTIN_DEFORMATION_MODULES:
                importlib.import_module(_BUILTIN_DEFORMATION_MODULES[kind], __package__)
            loader = _DEFORMATION_LOADERS.get(kind)
            if loader is None:
                raise GaussianHeadsError(f"stored identity has a deformation of unknown kind '{kind}'")
            sub = {k[len("deformation."):]: v for k, v in arrays.items() if k.startswith("deformation.")}
            deformation = loader(sub, model)
        for key in ("format_version", "kind", "model_vertices", "model_faces", "model_faces_crc32", "deformation"):
            meta.pop(key, None)
        return cls(model, binding, canonical, arrays["shape"], deformation, meta)

    def with_canonical(self, canonical: CanonicalGaussians) -> "BoundIdentity":
        return replace(self, canonical=canonical)


def lift_canonical(vertices: np.ndarray, faces: np.ndarray, binding: Binding, canonical: CanonicalGaussians,
                   impl: str = "auto", scale_rule: str = "mean_edge") -> GaussianSet:
    """Place canonical Gaussians on a posed mesh.

    vertices [V, 3], faces [F, 3], binding (N), canonical (N) -> GaussianSet (N), model space.
    ``impl``, ``scale_rule``: see ``lift_kernel.lift_gaussians`` (numba kernels, numpy reference).
    """
    means, log_scales, quats = lift_gaussians(vertices, faces, binding.face_idx, binding.bary, canonical.offsets,
                                              canonical.log_scales, canonical.quats, impl=impl,
                                              scale_rule=scale_rule)
    return GaussianSet(means, log_scales, quats, canonical.opacity_logits, canonical.sh)
