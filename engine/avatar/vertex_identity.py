"""Identities whose Gaussians ride on head-model vertices (LAM avatars: one Gaussian per vertex).

    VertexIdentity
        model          HeadModel (a LAM avatar's: the glb's mesh, ARKit targets and skin)
        vertex         [N] int32      the vertex each Gaussian rides on
        offsets        [N, 3]         mean minus its vertex at rest, model frame, metres
        log_scales     [N, 3]         model frame (not scaled by posing)
        quats          [N, 4] wxyz    model frame at rest
        opacity_logits [N]
        sh             [N, K, 3]
        shape          [S]            identity β (a LAM model has S = 0)

Posing (``pose``), with the model's skinning transforms A_j and the vertex's weights w_j:

    mean = posed vertex + (Σ_j w_j A_j[:3, :3]) · offset      = Σ_j w_j A_j · (vertex + expr deltas + offset)
    quat = q(A_dominant joint) ⊗ quat

This is how LAM's web renderer moves a splat (its centre is the glb vertex plus the PLY offset
plus the weighted morph deltas, then skinned; docs/FORMATS.md); it leaves the covariance fixed,
which we do not: the Gaussian turns with its dominant joint, so a turned head keeps its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import GaussianHeadsError, check_shape
from ..head_model.model import HeadModel, HeadParams
from .gaussian_set import GaussianSet, sh_degree_for
from .identity import ModelPosedIdentity, decode_meta, encode_meta, faces_checksum, require_one_frame
from .transforms import matrix_to_quat, quat_multiply

KIND = "vertex_identity"
FORMAT_VERSION = 1
_KEYS = ("vertex", "offsets", "log_scales", "quats", "opacity_logits", "sh")


@dataclass
class VertexIdentity(ModelPosedIdentity):
    """Gaussians bound to vertices (implements ``Identity``; see the module docstring)."""

    model: HeadModel
    vertex: np.ndarray
    offsets: np.ndarray
    log_scales: np.ndarray
    quats: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray
    shape: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertex = np.ascontiguousarray(self.vertex, np.int32)
        for name in ("offsets", "log_scales", "quats", "opacity_logits", "sh", "shape"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), np.float32))
        check_shape("vertex", self.vertex, (None,))
        n = self.vertex.shape[0]
        check_shape("offsets", self.offsets, (n, 3))
        check_shape("log_scales", self.log_scales, (n, 3))
        check_shape("quats", self.quats, (n, 4))
        check_shape("opacity_logits", self.opacity_logits, (n,))
        check_shape("sh", self.sh, (n, None, 3))
        sh_degree_for(self.sh.shape[1])
        check_shape("shape", self.shape, (self.model.n_shape,))
        if n and (self.vertex.min() < 0 or self.vertex.max() >= self.model.n_vertices):
            raise GaussianHeadsError(f"Gaussians ride on vertices outside the model's {self.model.n_vertices}")
        self.meta = dict(self.meta)
        self.meta.setdefault("model", self.model.name)
        weights = np.asarray(self.model.weights, np.float32)[self.vertex]          # [N, J]
        self._weights = weights
        self._dominant = np.argmax(weights, axis=1) if n else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.vertex.shape[0])

    def pose(self, params: HeadParams) -> GaussianSet:
        """One frame -> GaussianSet (N) in model space."""
        from ..head_model import lbs

        require_one_frame(params, "VertexIdentity")
        posed = lbs.forward(self.model, params)
        rot = posed.skinning_transforms()[:, :3, :3].astype(np.float32)             # [J, 3, 3]
        blended = np.einsum("nj,jab->nab", self._weights, rot)                       # [N, 3, 3]
        means = posed.vertices[self.vertex] + np.einsum("nab,nb->na", blended, self.offsets)
        joint_quats = matrix_to_quat(rot).astype(np.float32)                         # [J, 4]
        quats = quat_multiply(joint_quats[self._dominant], self.quats).astype(np.float32)
        return GaussianSet(means.astype(np.float32), self.log_scales, quats, self.opacity_logits, self.sh)

    # -- storage ----------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays: ``gaussians.<key>`` for ``vertex offsets log_scales quats
        opacity_logits sh``, ``shape`` and ``meta`` (JSON; kind "vertex_identity"). The head model
        is not included (``operators/storage.packed_arrays`` packs it as ``headmodel.*``)."""
        meta = dict(self.meta)
        meta.update(format_version=FORMAT_VERSION, kind=KIND, model_vertices=self.model.n_vertices,
                    model_faces=int(self.model.faces.shape[0]), model_faces_crc32=faces_checksum(self.model.faces),
                    deformation=None)
        out = {f"gaussians.{k}": np.array(getattr(self, k)) for k in _KEYS}
        out["shape"] = self.shape.copy()
        out["meta"] = encode_meta(meta)
        return out

    @classmethod
    def from_arrays(cls, arrays, model: HeadModel) -> "VertexIdentity":
        """Inverse of ``to_arrays`` on ``model`` (which must have the stored topology)."""
        arrays = dict(arrays)
        for key in ("meta", "shape", *(f"gaussians.{k}" for k in _KEYS)):
            if key not in arrays:
                raise GaussianHeadsError(f"stored vertex identity lacks '{key}'")
        meta = decode_meta(arrays["meta"])
        if meta.get("kind") != KIND:
            raise GaussianHeadsError(f"stored data is not a vertex identity (kind {meta.get('kind')!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise GaussianHeadsError("stored vertex identity is newer than this extension (update it)")
        if (meta.get("model_vertices") != model.n_vertices or meta.get("model_faces") != model.faces.shape[0]
                or meta.get("model_faces_crc32") != faces_checksum(model.faces)):
            raise GaussianHeadsError(f"stored vertex identity was made for another head model than '{model.name}'")
        for key in ("format_version", "kind", "model_vertices", "model_faces", "model_faces_crc32", "deformation"):
            meta.pop(key, None)
        return cls(model, *(arrays[f"gaussians.{k}"] for k in _KEYS), arrays["shape"], meta)
