"""BakedIdentity: an identity whose deformation is K Gaussian blendshapes per attribute + a small MLP.

Posing one frame (``pose``; ``docs/BAKED_FORMAT.md`` has the same formula for other runtimes):
    x      = [expr E | jaw 3 | eye_l 3 | eye_r 3]                      inputs [P]
    c      = MLP(x)                                                     [A·K], attribute-major
    r_a    = c[a·K:(a+1)·K] · basis_a                                   [N·d_a]  (basis_a [K, N·d_a])
    means  = neutral_means + r_xyz            log_scales = neutral_log_scales + r_scale
    quats  = normalise(neutral_quats + r_rotation)
    logits = neutral_opacity_logits + r_opacity      sh[:, 0] = neutral_sh[:, 0] + r_color (if baked)
then the rigid head part, a two-joint linear blend skinning of the blended Gaussians:
    M_root = rigid_head_transform(global_rot, 0, translation, joints)      (attributes.py)
    M_neck = rigid_head_transform(global_rot, neck, translation, joints)
    means_i -> (1 − w_i)·M_root·means_i + w_i·M_neck·means_i      w = neck_weights [N]
    quats_i -> normalise((1 − w_i)·q(M_root) + w_i·q(M_neck)) ⊗ quats_i   (q(M_neck) sign-aligned)
With no neck rotation M_root = M_neck and this is one rigid transform (skipped when identity).

``coef_max [A, K]`` (max |training coefficient| per attribute and component, recorded by ``bake``)
lets the fused kernel skip Gaussians and channels whose blend change stays below
``blend_kernel.StaticTolerances`` on the training distribution (``blend_kernel`` docstring);
without it (older files) every Gaussian is blended.

``pose`` is the fast path (float32 BLAS mat-vecs into preallocated buffers); ``pose_reference`` is
the readable float64 twin; tests hold them equal.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..avatar.gaussian_set import GaussianSet, sh_degree_for
from ..avatar.identity import require_one_frame
from ..avatar.transforms import matrix_to_quat, quat_multiply
from ..errors import GaussianHeadsError, InputFileError
from ..head_model.model import HeadModel, HeadParams
from .attributes import input_names as make_input_names
from .attributes import is_identity_transform, params_to_inputs, rigid_head_transform
from .config import ATTRIBUTE_DIMS, BakeConfig
from .mlp import MLPWeights, OnnxMLP, onnxruntime_available
from .report import BakeReport

FORMAT = "gaussian_heads.baked_identity"
FORMAT_VERSION = 1
NEUTRAL_KEYS = ("neutral_means", "neutral_log_scales", "neutral_quats", "neutral_opacity_logits", "neutral_sh")
MLP_KEYS = ("mlp_w0", "mlp_b0", "mlp_w1", "mlp_b1", "mlp_w2", "mlp_b2")


def _quat_mul_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] = a ⊗ b row by row (float32 wxyz)."""
    out = np.empty(b.shape, np.float32)
    aw, ax, ay, az = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    bw, bx, by, bz = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    out[:, 0] = aw * bw - ax * bx - ay * by - az * bz
    out[:, 1] = aw * bx + ax * bw + ay * bz - az * by
    out[:, 2] = aw * by - ax * bz + ay * bw + az * bx
    out[:, 3] = aw * bz + ax * by - ay * bx + az * bw
    return out


def _quat_mul_left(q: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out [N, 4] = q ⊗ b for one wxyz quaternion q [4] and b [N, 4] (float32)."""
    w, x, y, z = (np.float32(v) for v in q)
    bw, bx, by, bz = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    out[:, 0] = w * bw - x * bx - y * by - z * bz
    out[:, 1] = w * bx + x * bw + y * bz - z * by
    out[:, 2] = w * by - x * bz + y * bw + z * bx
    out[:, 3] = w * bz + x * by - y * bx + z * bw


@dataclass
class BakedIdentity:
    """A baked identity (implements the ``Identity`` protocol's ``pose``/``neutral_params``).

    neutral      GaussianSet (N) posed at neutral parameters, model space
    attributes   baked attribute names (subset of xyz, scale, rotation, opacity, color), in order
    bases        {name: [K, N·d] float32} orthonormal rows (runtime layout; files store [K, N, d])
    mlp          MLPWeights: inputs [P = E + 9] -> [A·K]
    onnx_bytes   the same network as ONNX, or b"" (none: the numpy forward runs; files may lack it)
    expr_names   the head model's expression channel names (E)
    shape        [S] identity β the bake was made with
    joints       [2, 3] root and neck joint positions of the neutral shape (rigid head transform)
    neck_weights [N] in [0, 1]: how much each Gaussian follows the neck joint rather than the root
                 (1 everywhere = one rigid head transform; None means all ones)
    config       BakeConfig used; report: BakeReport or None; meta: extra JSON (model name, space)
    model        the HeadModel when known (None after ``load`` unless passed in)
    mlp_backend  "auto" (onnxruntime if importable, else numpy), "onnxruntime" or "numpy"
    blend_backend "auto" (int8 if numba imports, else numpy), "int8" / "float32" (fused numba
                 kernel, ``blend_kernel``) or "numpy" (BLAS mat-vecs; the reference, never skips)
    coef_max     [A, K] float32 >= 0: max |coefficient| of attribute a's component k over the bake's
                 training samples (the SVD projections), or None (unknown: no Gaussian is skipped)
    """

    neutral: GaussianSet
    attributes: tuple[str, ...]
    bases: dict[str, np.ndarray]
    mlp: MLPWeights
    onnx_bytes: bytes
    expr_names: tuple[str, ...]
    shape: np.ndarray
    joints: np.ndarray
    neck_weights: np.ndarray | None = None
    config: BakeConfig = field(default_factory=BakeConfig)
    report: BakeReport | None = None
    meta: dict = field(default_factory=dict)
    model: HeadModel | None = None
    mlp_backend: str = "auto"
    blend_backend: str = "auto"
    coef_max: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        self.expr_names = tuple(str(n) for n in self.expr_names)
        self.shape = np.ascontiguousarray(self.shape, np.float32).reshape(-1)
        self.joints = np.asarray(self.joints, np.float64).reshape(2, 3)
        n = len(self.neutral)
        if self.neck_weights is None:
            self.neck_weights = np.ones(n, np.float32)
        self.neck_weights = np.ascontiguousarray(self.neck_weights, np.float32).reshape(-1)
        if self.neck_weights.shape != (n,):
            raise GaussianHeadsError(f"neck_weights has shape {self.neck_weights.shape}, expected ({n},)")
        if not (np.isfinite(self.neck_weights).all() and (self.neck_weights >= 0).all()
                and (self.neck_weights <= 1).all()):
            raise GaussianHeadsError("neck_weights must lie in [0, 1]")
        self._all_neck = bool((self.neck_weights == 1).all())
        k = None
        bases = {}
        for name in self.attributes:
            if name not in ATTRIBUTE_DIMS:
                raise GaussianHeadsError(f"unknown baked attribute '{name}'")
            if name not in self.bases:
                raise GaussianHeadsError(f"baked identity lacks the basis of '{name}'")
            b = np.asarray(self.bases[name])
            d = ATTRIBUTE_DIMS[name]
            b = np.ascontiguousarray(b.reshape(b.shape[0], -1), dtype=np.float32)
            if b.shape[1] != n * d:
                raise GaussianHeadsError(f"basis '{name}' has {b.shape[1]} columns, expected N·{d} = {n * d}")
            if k is None:
                k = b.shape[0]
            elif b.shape[0] != k:
                raise GaussianHeadsError("baked bases disagree on K")
            bases[name] = b
        self.bases = bases
        self._k = int(k or 0)
        if self.mlp.n_inputs != len(self.expr_names) + 9:
            raise GaussianHeadsError(f"bake MLP takes {self.mlp.n_inputs} inputs, expected E + 9 = "
                                     f"{len(self.expr_names) + 9}")
        if self.mlp.n_outputs != self._k * len(self.attributes):
            raise GaussianHeadsError(f"bake MLP gives {self.mlp.n_outputs} outputs, expected A·K = "
                                     f"{self._k * len(self.attributes)}")
        if self.mlp_backend not in ("auto", "onnxruntime", "numpy"):
            raise GaussianHeadsError(f"unknown MLP backend '{self.mlp_backend}'")
        if self.blend_backend not in ("auto", "int8", "float32", "numpy"):
            raise GaussianHeadsError(f"unknown blend backend '{self.blend_backend}'")
        if self.coef_max is not None:
            cm = np.asarray(self.coef_max)
            if cm.dtype.kind not in "fiu":
                raise GaussianHeadsError(f"coef_max has dtype {cm.dtype}, expected floating point")
            cm = np.ascontiguousarray(cm, np.float32)
            if cm.shape != (len(self.attributes), self._k):
                raise GaussianHeadsError(f"coef_max has shape {cm.shape}, expected (A, K) = "
                                         f"({len(self.attributes)}, {self._k})")
            if not (np.isfinite(cm).all() and (cm >= 0).all()):
                raise GaussianHeadsError("coef_max must be finite and non-negative")
            self.coef_max = cm
        self._session = None
        self._tables: dict[str, tuple] = {}

    # -- Identity protocol ------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return self._k

    @property
    def n_gaussians(self) -> int:
        return len(self.neutral)

    @property
    def input_names(self) -> tuple[str, ...]:
        return make_input_names(self.expr_names)

    def __len__(self) -> int:
        return len(self.neutral)

    def neutral_params(self) -> HeadParams:
        params = HeadParams.zeros(len(self.shape), len(self.expr_names))
        params.shape = self.shape.copy()
        return params

    def basis(self, name: str) -> np.ndarray:
        """[K, N·d] float32 basis of one attribute."""
        return self.bases[name]

    # -- MLP ----------------------------------------------------------------------------------------
    def _mlp_call(self, x: np.ndarray) -> np.ndarray:
        backend = self.mlp_backend
        if backend == "auto":
            backend = "onnxruntime" if self.onnx_bytes and onnxruntime_available() else "numpy"
        if backend == "onnxruntime":
            if not self.onnx_bytes:
                raise GaussianHeadsError("this baked identity carries no ONNX network; use the numpy backend")
            if self._session is None:
                self._session = OnnxMLP(self.onnx_bytes)
            return self._session(x)
        return self.mlp.forward(x)

    def coefficients(self, params: HeadParams) -> np.ndarray:
        """One frame's blend coefficients [A·K] float32 (attribute-major)."""
        return np.asarray(self._mlp_call(params_to_inputs(params, len(self.expr_names))), np.float32)

    # -- posing -----------------------------------------------------------------------------------
    def pose(self, params: HeadParams) -> GaussianSet:
        """One frame (unbatched params) -> GaussianSet (N), model space. Fast path (module docstring).

        The returned arrays are fresh; ``sh`` is shared with ``neutral`` unless colour is baked.
        """
        require_one_frame(params, "BakedIdentity")
        c = self.coefficients(params)
        return self.blend(c, *self.head_transforms(params))

    def head_transforms(self, params: HeadParams) -> tuple[np.ndarray, np.ndarray]:
        """(M_root, M_neck) [4, 4] float64: the rigid transforms of the root and the neck joint."""
        m_root = rigid_head_transform(params.global_rot, np.zeros(3), params.translation, self.joints)
        m_neck = rigid_head_transform(params.global_rot, params.neck, params.translation, self.joints)
        return m_root, m_neck

    def pose_inputs(self, x: np.ndarray, rigid: np.ndarray | None = None) -> GaussianSet:
        """Inputs [P] (+ optional [4, 4] rigid transform applied to every Gaussian) -> GaussianSet (N)."""
        c = np.asarray(self._mlp_call(np.asarray(x, np.float32)), np.float32)
        m = np.eye(4) if rigid is None else np.asarray(rigid, np.float64)
        return self.blend(c, m, m)

    def resolved_blend_backend(self) -> str:
        if self.blend_backend != "auto":
            return self.blend_backend
        try:
            import numba  # noqa: F401
        except ImportError:
            return "numpy"
        return "int8"

    def _kernel_tables(self, backend: str):
        """(BlendTables, neutral [N, C]) of the fused kernel for ``backend`` ("int8"/"float32"),
        built on first use and cached (one backend at a time)."""
        if backend not in self._tables:
            from . import blend_kernel

            self._tables = {backend: (
                blend_kernel.build_tables(self.bases, self.attributes, len(self.neutral), self._k,
                                          quantise=backend == "int8", coef_max=self.coef_max),
                blend_kernel.neutral_table(self.neutral, self.attributes))}
        return self._tables[backend]

    def blend_tables(self):
        """The fused kernel's ``blend_kernel.BlendTables`` for the resolved blend backend (its
        ``live_fraction``: share of Gaussians blended each frame), or None on the numpy backend."""
        backend = self.resolved_blend_backend()
        return None if backend == "numpy" else self._kernel_tables(backend)[0]

    def blend(self, c: np.ndarray, m_root: np.ndarray | None = None, m_neck: np.ndarray | None = None) -> GaussianSet:
        """Coefficients [A·K] (+ root and neck transforms [4, 4]) -> GaussianSet (N).

        Each Gaussian i follows (1 − w_i)·M_root + w_i·M_neck (w = ``neck_weights``); when the two
        transforms agree (no neck rotation) or every w_i = 1 this is one rigid transform.
        Runs on ``blend_backend`` (fused numba kernel, which skips static Gaussians and channels
        when ``coef_max`` is known, or ``blend_numpy``).
        """
        c = np.asarray(c, np.float32)
        if c.shape != (self._k * len(self.attributes),):
            raise GaussianHeadsError(f"blend coefficients have shape {c.shape}, expected ({self._k * len(self.attributes)},)")
        backend = self.resolved_blend_backend()
        if backend == "numpy":
            return self.blend_numpy(c, m_root, m_neck)
        from . import blend_kernel

        tables, neutral = self._kernel_tables(backend)
        m_root = np.eye(4) if m_root is None else np.asarray(m_root, np.float64)
        m_neck = m_root if m_neck is None else np.asarray(m_neck, np.float64)
        if self._all_neck:
            m_root = m_neck
        q_root, q_neck = matrix_to_quat(m_root[:3, :3]), matrix_to_quat(m_neck[:3, :3])
        if float(q_root @ q_neck) < 0:
            q_neck = -q_neck
        if np.abs(m_root - m_neck).max() >= 1e-12:
            mode = 2
        else:
            mode = 0 if is_identity_transform(m_root) else 1
        means, log_scales, quats, logits, colour = blend_kernel.blend(
            c.reshape(len(self.attributes), self._k), tables, neutral, self.neck_weights, mode,
            (m_root[:3, :3], m_root[:3, 3], q_root, m_neck[:3, :3], m_neck[:3, 3], q_neck))
        sh = self.neutral.sh
        if colour is not None:
            sh = sh.copy()
            sh[:, 0, :] = colour
        return GaussianSet(means, log_scales, quats, logits, sh)

    def blend_numpy(self, c: np.ndarray, m_root: np.ndarray | None = None,
                    m_neck: np.ndarray | None = None) -> GaussianSet:
        """numpy twin of ``blend`` (float32 BLAS mat-vecs then vectorised post-processing; blends
        every Gaussian and channel, never skips)."""
        c = np.asarray(c, np.float32)
        k, n = self._k, len(self.neutral)
        nt = self.neutral
        resid = {}
        for a, name in enumerate(self.attributes):
            resid[name] = np.dot(c[a * k:(a + 1) * k], self.bases[name]).reshape(n, ATTRIBUTE_DIMS[name])
        means = nt.means + resid["xyz"] if "xyz" in resid else nt.means.copy()
        log_scales = nt.log_scales + resid["scale"] if "scale" in resid else nt.log_scales.copy()
        logits = nt.opacity_logits + resid["opacity"][:, 0] if "opacity" in resid else nt.opacity_logits.copy()
        if "rotation" in resid:
            q = nt.quats + resid["rotation"]
            norm = np.sqrt(np.einsum("ij,ij->i", q, q))
            bad = norm < 1e-6
            q /= np.maximum(norm, 1e-6)[:, None]
            if bad.any():  # a residual cancelled the neutral quaternion: keep the neutral rotation
                q[bad] = nt.quats[bad]
        else:
            q = nt.quats.copy()
        sh = nt.sh
        if "color" in resid:
            sh = nt.sh.copy()
            sh[:, 0, :] += resid["color"]
        m_root = np.eye(4) if m_root is None else np.asarray(m_root, np.float64)
        m_neck = m_root if m_neck is None else np.asarray(m_neck, np.float64)
        one_transform = self._all_neck or np.abs(m_root - m_neck).max() < 1e-12
        if one_transform:
            m = m_neck if self._all_neck else m_root
            if not is_identity_transform(m):
                means = means @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)
                rotated = np.empty_like(q)
                _quat_mul_left(matrix_to_quat(m[:3, :3]), q, rotated)
                q = rotated
        else:
            w = self.neck_weights[:, None]
            p_root = means @ m_root[:3, :3].T.astype(np.float32) + m_root[:3, 3].astype(np.float32)
            p_neck = means @ m_neck[:3, :3].T.astype(np.float32) + m_neck[:3, 3].astype(np.float32)
            means = p_root + w * (p_neck - p_root)
            q_root = matrix_to_quat(m_root[:3, :3]).astype(np.float32)
            q_neck = matrix_to_quat(m_neck[:3, :3]).astype(np.float32)
            if float(q_root @ q_neck) < 0:
                q_neck = -q_neck
            q_blend = q_root[None] + w * (q_neck - q_root)[None]           # nlerp per Gaussian
            q_blend /= np.linalg.norm(q_blend, axis=1, keepdims=True)
            q = _quat_mul_rows(q_blend, q)
        return GaussianSet(means, log_scales, q, logits, sh)

    def pose_reference(self, params: HeadParams) -> GaussianSet:
        """Readable float64 twin of ``pose`` (numpy MLP, explicit sums, GaussianSet.transformed)."""
        x = params_to_inputs(params, len(self.expr_names)).astype(np.float64)
        c = self.mlp.forward(x.astype(np.float32)).astype(np.float64)
        k, n = self._k, len(self.neutral)
        nt = self.neutral
        values = {"xyz": nt.means.astype(np.float64), "scale": nt.log_scales.astype(np.float64),
                  "rotation": nt.quats.astype(np.float64), "opacity": nt.opacity_logits.astype(np.float64)[:, None],
                  "color": nt.sh[:, 0, :].astype(np.float64)}
        for a, name in enumerate(self.attributes):
            basis = self.bases[name].astype(np.float64)
            residual = np.zeros(basis.shape[1])
            for j in range(k):
                residual += c[a * k + j] * basis[j]
            values[name] = values[name] + residual.reshape(n, ATTRIBUTE_DIMS[name])
        q = values["rotation"]
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        sh = nt.sh.astype(np.float64).copy()
        sh[:, 0, :] = values["color"]
        out = GaussianSet(values["xyz"], values["scale"], q, values["opacity"][:, 0], sh)
        m_root, m_neck = self.head_transforms(params)
        q_root, q_neck = matrix_to_quat(m_root[:3, :3]), matrix_to_quat(m_neck[:3, :3])
        if q_root @ q_neck < 0:
            q_neck = -q_neck
        means = np.zeros((n, 3))
        quats = np.zeros((n, 4))
        for i in range(n):  # linear blend of the two joint transforms, per Gaussian
            w = float(self.neck_weights[i])
            x = np.append(out.means[i].astype(np.float64), 1.0)
            means[i] = ((1 - w) * (m_root @ x) + w * (m_neck @ x))[:3]
            qb = (1 - w) * q_root + w * q_neck
            quats[i] = quat_multiply(qb / np.linalg.norm(qb), out.quats[i].astype(np.float64))
        return GaussianSet(means, out.log_scales, quats, out.opacity_logits, out.sh)

    # -- storage ----------------------------------------------------------------------------------
    def metadata(self) -> dict:
        """The JSON object stored under ``meta`` (docs/BAKED_FORMAT.md)."""
        e, k = len(self.expr_names), self._k
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "k": k,
            "n_gaussians": len(self.neutral),
            "sh_degree": self.neutral.sh_degree,
            "attributes": list(self.attributes),
            "attribute_dims": [ATTRIBUTE_DIMS[a] for a in self.attributes],
            "output_layout": {a: [i * k, (i + 1) * k] for i, a in enumerate(self.attributes)},
            "expr_names": list(self.expr_names),
            "input_names": list(self.input_names),
            "input_layout": {"expr": [0, e], "jaw": [e, e + 3], "eye_l": [e + 3, e + 6], "eye_r": [e + 6, e + 9]},
            "mlp": {"activation": "leaky_relu", "negative_slope": float(self.mlp.negative_slope),
                    "hidden": [int(self.mlp.w0.shape[1]), int(self.mlp.w1.shape[1])],
                    "onnx_input": "params", "onnx_output": "coeffs", "has_onnx": bool(self.onnx_bytes)},
            "rigid": "neck_blend",
            "storage_dtype": self.config.storage_dtype,
            "model": dict(self.meta.get("model", {})),
            "config": self.config.to_json(),
            "report": None if self.report is None else self.report.to_json(),
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of numpy arrays (exactly the .npz members; docs/BAKED_FORMAT.md)."""
        n = len(self.neutral)
        dtype = np.float16 if self.config.storage_dtype == "float16" else np.float32
        meta = json.dumps(self.metadata(), sort_keys=True, separators=(",", ":")).encode("utf-8")
        out = {"meta": np.frombuffer(meta, np.uint8).copy()}
        nt = self.neutral
        for key, value in zip(NEUTRAL_KEYS, (nt.means, nt.log_scales, nt.quats, nt.opacity_logits, nt.sh)):
            out[key] = np.array(value, np.float32)
        for name in self.attributes:
            d = ATTRIBUTE_DIMS[name]
            b = self.bases[name].reshape(self._k, n, d) if d > 1 else self.bases[name].reshape(self._k, n)
            out[f"basis_{name}"] = b.astype(dtype)
        out.update({k: v.copy() for k, v in self.mlp.arrays().items()})
        out["mlp_onnx"] = np.frombuffer(bytes(self.onnx_bytes), np.uint8).copy()
        out["joints"] = self.joints.astype(np.float32)
        out["neck_weights"] = self.neck_weights.copy()
        out["shape"] = self.shape.copy()
        if self.coef_max is not None:
            out["coef_max"] = self.coef_max.copy()
        return out

    @classmethod
    def from_arrays(cls, arrays, model: HeadModel | None = None) -> "BakedIdentity":
        """Inverse of ``to_arrays``; validates everything and raises GaussianHeadsError on problems."""
        arrays = dict(arrays)
        if "meta" not in arrays:
            raise GaussianHeadsError("not a baked identity: no 'meta' member")
        raw = np.asarray(arrays["meta"])
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise GaussianHeadsError("'meta' must be a 1-D uint8 array of UTF-8 JSON")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise GaussianHeadsError(f"'meta' is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise GaussianHeadsError("not a baked identity (meta.format differs)")
        version = meta.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise GaussianHeadsError("baked identity has no valid format_version")
        if version > FORMAT_VERSION:
            raise GaussianHeadsError(f"baked identity format version {version} is newer than this extension "
                                     f"reads ({FORMAT_VERSION}); update the extension")
        try:
            k = int(meta["k"])
            n = int(meta["n_gaussians"])
            attributes = tuple(str(a) for a in meta["attributes"])
            expr_names = tuple(str(e) for e in meta["expr_names"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GaussianHeadsError(f"baked identity metadata lacks or garbles {exc}") from None
        required = list(NEUTRAL_KEYS) + list(MLP_KEYS) + ["joints", "neck_weights", "shape"] + \
            [f"basis_{a}" for a in attributes]
        onnx_member = np.asarray(arrays.get("mlp_onnx", np.zeros(0, np.uint8)))  # optional: empty = none
        if onnx_member.dtype != np.uint8 or onnx_member.ndim != 1:
            raise GaussianHeadsError("'mlp_onnx' must be a 1-D uint8 array")
        missing = [key for key in required if key not in arrays]
        if missing:
            raise GaussianHeadsError(f"baked identity lacks {', '.join(missing)}")
        for key in required:
            a = np.asarray(arrays[key])
            if a.dtype.kind != "f":
                raise GaussianHeadsError(f"'{key}' has dtype {a.dtype}, expected floating point")
            if not np.isfinite(a).all():
                raise GaussianHeadsError(f"'{key}' contains NaN or infinity")
        for name in attributes:
            if name not in ATTRIBUTE_DIMS:
                raise GaussianHeadsError(f"unknown baked attribute '{name}'")
            d = ATTRIBUTE_DIMS[name]
            want = (k, n, d) if d > 1 else (k, n)
            if np.asarray(arrays[f"basis_{name}"]).shape != want:
                raise GaussianHeadsError(f"'basis_{name}' has shape {np.asarray(arrays[f'basis_{name}']).shape}, "
                                         f"expected {want}")
        try:
            neutral = GaussianSet(*(np.asarray(arrays[key], np.float32) for key in NEUTRAL_KEYS))
            if len(neutral) != n:
                raise GaussianHeadsError(f"neutral has {len(neutral)} Gaussians, meta says {n}")
            sh_degree_for(neutral.sh.shape[1])
            mlp_meta = meta.get("mlp", {})
            mlp = MLPWeights(*(np.asarray(arrays[key], np.float32) for key in MLP_KEYS),
                             negative_slope=float(mlp_meta.get("negative_slope", 0.2)))
            bases = {name: np.asarray(arrays[f"basis_{name}"], np.float32).reshape(k, -1) for name in attributes}
            config = BakeConfig.from_json(meta.get("config") or {})
            report = BakeReport.from_json(meta.get("report"))
        except (TypeError, ValueError) as exc:
            raise GaussianHeadsError(f"baked identity is malformed ({exc})") from None
        joints = np.asarray(arrays["joints"], np.float64)
        if joints.shape != (2, 3):
            raise GaussianHeadsError(f"'joints' has shape {joints.shape}, expected (2, 3)")
        coef_max = None
        if "coef_max" in arrays:  # optional (absent in files written before it existed)
            coef_max = np.asarray(arrays["coef_max"])
            if coef_max.dtype.kind != "f":
                raise GaussianHeadsError(f"'coef_max' has dtype {coef_max.dtype}, expected floating point")
            if not np.isfinite(coef_max).all():
                raise GaussianHeadsError("'coef_max' contains NaN or infinity")
        return cls(neutral, attributes, bases, mlp, onnx_member.tobytes(), expr_names,
                   np.asarray(arrays["shape"], np.float32), joints, np.asarray(arrays["neck_weights"], np.float32),
                   config=config, report=report,
                   meta={"model": meta.get("model", {})}, model=model, coef_max=coef_max)

    def save(self, path: str | os.PathLike) -> None:
        """Write one self-contained .npz (uncompressed; no pickles). Atomic: a temporary file in the
        same folder is renamed over ``path`` only once complete."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **self.to_arrays())
            os.replace(tmp, path)
        except OSError as exc:
            raise InputFileError(path, f"cannot write ({exc.strerror or exc})") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, model: HeadModel | None = None) -> "BakedIdentity":
        """Read a file written by ``save``; InputFileError naming the file when it is missing, corrupt,
        truncated or not a baked identity."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputFileError(path, "no such file")
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError) as exc:
            raise InputFileError(path, f"not a readable .npz baked identity ({type(exc).__name__}: {exc})") from None
        try:
            return cls.from_arrays(arrays, model=model)
        except GaussianHeadsError as exc:
            raise InputFileError(path, str(exc)) from None
