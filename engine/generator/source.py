"""CheckpointSource: identities sampled from a generator checkpoint (torch or ONNX runtime).

    source = CheckpointSource("path/to/checkpoint")          # folder, .zip or .safetensors
    identity = source.sample(seed=7, shape=None, truncation=0.7)   # -> BoundIdentity
    gaussians = identity.pose(params)                        # deformation branch runs per frame

Per identity: z ~ N(0, I) from the seed; β from the seed too (truncation · clip(N(0, I), ±2) over
the head model's identity components) unless given; the shape-only deformation
(shape_vertices(model, β) − template) is rasterised into a UV map and fed with z to the identity
branch; the raw attribute maps are sampled bilinearly at the binding's UVs and decoded
(``decode``) into ``CanonicalGaussians``. The binding (``sample_uv_binding(model,
config.n_gaussians, seed=config.binding_seed)``) is shared by every identity of a checkpoint.

``NetworkDeformation`` keeps the identity's low-resolution synthesis features and runs the
deformation branch for each frame's condition [ψ, θ, eyelids]: ψ = the first ``n_expr``
expression channels of ``params.expr`` (zero-padded), θ = ``params.jaw``, eyelids =
(eyeBlinkLeft, eyeBlinkRight) when the head model speaks ARKit and has them, else zeros.
"""

from __future__ import annotations

import os

import numpy as np

from ..avatar.binding import Binding, sample_uv_binding
from ..avatar.identity import BoundIdentity, CanonicalGaussians, GaussianResiduals, register_deformation
from ..errors import GaussianHeadsError, check_shape
from ..head_model.model import HeadModel, HeadParams
from .checkpoint import GeneratorRunner, load_runner, read_checkpoint
from .config import GeneratorConfig
from .decode import decode_attributes, decode_residuals
from .uvmap import UVSampler, shape_uv_map

DEFORMATION_KIND = "generator_network"
_Z_STREAM, _SHAPE_STREAM = 0x5A17, 0x5BE7A


def latent_from_seed(seed: int, dim: int) -> np.ndarray:
    """[dim] float32 standard-normal z, a pure function of (seed, dim)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _Z_STREAM]))
    return rng.standard_normal(dim).astype(np.float32)


def shape_from_seed(seed: int, n_shape: int, truncation: float) -> np.ndarray:
    """[n_shape] float32 β = truncation · clip(N(0, I), -2, 2), a pure function of the arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _SHAPE_STREAM]))
    return (float(truncation) * np.clip(rng.standard_normal(n_shape), -2.0, 2.0)).astype(np.float32)


def condition_vector(config: GeneratorConfig, model: HeadModel, params: HeadParams) -> np.ndarray:
    """[n_cond] float32 = [expr (n_expr), jaw (n_jaw), eyelids (n_eyelid)] for one frame."""
    expr = np.asarray(params.expr, np.float32)
    if expr.ndim != 1:
        raise GaussianHeadsError("the generator's deformation takes one frame at a time (unbatched params)")
    check_shape("expr", expr, (model.n_expr,))
    psi = np.zeros(config.n_expr, np.float32)
    m = min(config.n_expr, expr.shape[0])
    psi[:m] = expr[:m]
    jaw = np.asarray(params.jaw, np.float32).reshape(-1)
    check_shape("jaw", jaw, (3,))
    theta = np.zeros(config.n_jaw, np.float32)
    theta[: min(3, config.n_jaw)] = jaw[: min(3, config.n_jaw)]
    eyelids = np.zeros(config.n_eyelid, np.float32)
    if config.n_eyelid and model.expr_space == "arkit":
        names = list(model.expr_names)
        for i, name in enumerate(("eyeBlinkLeft", "eyeBlinkRight")[: config.n_eyelid]):
            if name in names:
                eyelids[i] = expr[names.index(name)]
    cond = np.concatenate([psi, theta, eyelids])
    if not np.isfinite(cond).all():
        raise GaussianHeadsError("head parameters contain NaN or infinity")
    return cond


class NetworkDeformation:
    """Deformation that runs the generator's deformation branch per frame (implements ``Deformation``).

    features [Cf, r, r] of one identity; uv [N, 2] the binding's UVs.
    """

    kind = DEFORMATION_KIND

    def __init__(self, runner: GeneratorRunner, model: HeadModel, features: np.ndarray, uv: np.ndarray,
                 checkpoint: str = ""):
        cfg = runner.config
        self.runner, self.model, self.config, self.checkpoint = runner, model, cfg, checkpoint
        self.features = np.ascontiguousarray(features, np.float32)
        check_shape("features", self.features, (cfg.feature_channels, cfg.deform_resolution, cfg.deform_resolution))
        self.uv = np.ascontiguousarray(uv, np.float32)
        self._sampler = UVSampler(self.uv, cfg.deform_resolution)
        self._last: tuple[bytes, GaussianResiduals] | None = None
        self.packed: dict[str, np.ndarray] | None = None  # ``packed.pack_deformation`` arrays, if any

    def pack(self) -> dict[str, np.ndarray]:
        """Read the deformation branch from the checkpoint (once) so ``to_arrays`` carries it."""
        if self.packed is None:
            from .packed import pack_deformation

            self.packed = pack_deformation(self.checkpoint)
        return self.packed

    def residuals(self, params: HeadParams) -> GaussianResiduals:
        """One frame's residuals: d_offsets [N,3], d_log_scales [N,3], d_quats [N,4], d_opacity_logits [N]."""
        cond = condition_vector(self.config, self.model, params)
        key = cond.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        raw = self.runner.deformation(self.features, cond)  # [11, r, r]
        out = GaussianResiduals(**decode_residuals(self.config, self._sampler(raw)))
        self._last = (key, out)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        """What a .blend / .npz stores: checkpoint path, config JSON, features, uv, and after
        ``pack()`` the deformation branch as ``packed.*`` (then the checkpoint file is not needed)."""
        out = {"checkpoint": np.array([os.path.abspath(self.checkpoint)]) if self.checkpoint else np.array([""]),
               "config": np.array([self.config.to_json()]), "features": self.features.copy(), "uv": self.uv.copy()}
        for key, value in (self.packed or {}).items():
            out[f"packed.{key}"] = value
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, model: HeadModel) -> "NetworkDeformation":
        """Run the packed deformation branch when ``arrays`` has one; else reopen the checkpoint
        named in ``arrays`` (it must still exist and match the stored config)."""
        for key in ("checkpoint", "config", "features", "uv"):
            if key not in arrays:
                raise GaussianHeadsError(f"stored generator deformation lacks '{key}'")
        path = str(np.asarray(arrays["checkpoint"]).reshape(-1)[0])
        packed = {k[len("packed."):]: v for k, v in arrays.items() if k.startswith("packed.")}
        if packed:
            from .packed import PackedRunner

            runner = PackedRunner(packed)
        elif not path:
            raise GaussianHeadsError("stored generator deformation does not name its checkpoint")
        else:
            runner = load_runner(path)
        stored = GeneratorConfig.from_json(str(np.asarray(arrays["config"]).reshape(-1)[0]))
        if stored != runner.config:
            raise GaussianHeadsError(f"{path}: the checkpoint's config differs from the one this identity was made with")
        deformation = cls(runner, model, arrays["features"], arrays["uv"], checkpoint=path)
        deformation.packed = packed or None
        return deformation


register_deformation(DEFORMATION_KIND, NetworkDeformation.from_arrays)


class CheckpointSource:
    """Identity source backed by a generator checkpoint (``checkpoint`` module for the formats).

    model: the head model to bind to (default ``load_head_model(config.head_model)``); it needs a
    UV layout. backend: "auto" | "onnx" | "torch" (see ``checkpoint.load_runner``).
    """

    def __init__(self, path: str | os.PathLike, model: HeadModel | None = None, backend: str = "auto",
                 threads: int | None = None):
        self.path = os.fspath(path)
        self.checkpoint_meta: dict = read_checkpoint(self.path).meta
        self.runner = load_runner(self.path, backend=backend, threads=threads)
        self.config: GeneratorConfig = self.runner.config
        self._model_spec: str | None = None
        if model is None:
            from ..head_model import load_head_model

            model = load_head_model(self.config.head_model)
            self._model_spec = self.config.head_model  # how BoundIdentity.from_arrays reloads it
        if not model.has_uv:
            raise GaussianHeadsError(f"head model '{model.name}' has no UV layout; the generator needs one")
        self.model = model
        self.binding: Binding = sample_uv_binding(model, self.config.n_gaussians, seed=self.config.binding_seed)
        self._sampler = UVSampler(self.binding.uv, self.config.uv_resolution)

    @property
    def backend(self) -> str:
        return self.runner.backend

    def sample(self, seed: int, shape: np.ndarray | None = None, truncation: float = 0.7) -> BoundIdentity:
        """One identity: canonical Gaussians at the binding UVs + a NetworkDeformation.

        seed: int (z and, when ``shape`` is None, β derive from it); shape [S' <= S] optional β
        (zero-padded to the model's S); truncation ψ in [0, 1]: w = w_avg + ψ (w − w_avg).
        """
        truncation = float(truncation)
        if not np.isfinite(truncation) or not 0.0 <= truncation <= 2.0:
            raise GaussianHeadsError(f"truncation must lie in [0, 2], got {truncation}")
        cfg, model = self.config, self.model
        if shape is None:
            beta = shape_from_seed(seed, model.n_shape, truncation)
        else:
            given = np.asarray(shape, np.float32).reshape(-1)
            if given.shape[0] > model.n_shape:
                raise GaussianHeadsError(f"shape has {given.shape[0]} components; '{model.name}' has {model.n_shape}")
            beta = np.zeros(model.n_shape, np.float32)
            beta[: given.shape[0]] = given
        z = latent_from_seed(seed, cfg.z_dim)
        shape_map = shape_uv_map(model, beta, cfg.uv_resolution)
        attributes, features = self.runner.identity(z, shape_map, truncation)
        decoded = decode_attributes(cfg, self._sampler(attributes))
        canonical = CanonicalGaussians(**decoded)
        deformation = NetworkDeformation(self.runner, model, features, self.binding.uv, checkpoint=self.path)
        meta = {"source": "checkpoint", "checkpoint": os.path.abspath(self.path), "seed": int(seed),
                "truncation": truncation, "backend": self.backend,
                "trained": bool(self.checkpoint_meta.get("trained", False))}
        if self._model_spec is not None:
            meta["model"] = self._model_spec
        return BoundIdentity(model, self.binding, canonical, beta, deformation, meta)
