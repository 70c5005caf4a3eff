"""Typed, frozen configuration of a bake (AGORA-M) and its parts.

``BakeConfig`` gathers the parts; each part is documented where it is used:
    SamplingConfig  -> sampling.py   (which head parameters are posed)
    SVDConfig       -> svd.py        (streaming randomized SVD)
    MLPConfig       -> mlp.py        (coefficient regressor)
    ReportConfig    -> report.py     (held-out quality report)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import GaussianHeadsError

# Attributes that can be baked, with their width per Gaussian (in this order in files and the MLP output).
ATTRIBUTE_DIMS: dict[str, int] = {"xyz": 3, "scale": 3, "rotation": 4, "opacity": 1, "color": 3}
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("xyz", "scale", "rotation", "opacity")


@dataclass(frozen=True)
class SamplingConfig:
    """How the N training head-parameter tuples are drawn (see ``sampling.sample_params``).

    Each sample is one of these kinds, drawn with the given relative weights:
      single   one expression unit (one-hot) at a random strength in [min_strength, 1] of its range
      sparse   ``sparse_min..sparse_max`` units at random strengths
      jaw      a jaw pose alone (open about +X in [0, jaw_open_max], lateral/roll within jaw_side_max)
      eyes     an eye pose alone (both eyes share a gaze; a small vergence), within eye_max radians
      mixed    a sparse expression + jaw + eyes
      flame    (FLAME-space models) ψ ~ N(0, flame_sigma²) on every channel, plus jaw and eyes
    For models with ``expr_space == "flame"`` the "single" and "sparse" kinds draw from
    N(0, flame_sigma²) (signed) instead of the [min, max] range.
    ``extra_fraction`` caps the share of the N samples taken from the object's own animation
    (``extra_frames`` passed to ``bake``); the rest are drawn as above.
    """

    w_single: float = 0.2
    w_sparse: float = 0.3
    w_jaw: float = 0.1
    w_eyes: float = 0.1
    w_mixed: float = 0.3
    w_flame: float = 0.3           # used only for FLAME-space models
    min_strength: float = 0.2
    sparse_min: int = 2
    sparse_max: int = 6
    jaw_open_max: float = 0.45     # radians about +X
    jaw_side_max: float = 0.08     # radians about +Y (lateral) and +Z (roll)
    eye_max: float = 0.35          # radians, gaze yaw/pitch
    flame_sigma: float = 1.0
    extra_fraction: float = 0.5

    def validate(self) -> None:
        weights = (self.w_single, self.w_sparse, self.w_jaw, self.w_eyes, self.w_mixed, self.w_flame)
        if min(weights) < 0 or sum(weights) <= 0:
            raise GaussianHeadsError("sampling weights must be non-negative and not all zero")
        if not 0.0 <= self.extra_fraction <= 1.0:
            raise GaussianHeadsError("extra_fraction must lie in [0, 1]")
        if not 1 <= self.sparse_min <= self.sparse_max:
            raise GaussianHeadsError("need 1 <= sparse_min <= sparse_max")


@dataclass(frozen=True)
class SVDConfig:
    """Streaming randomized SVD (svd.py).

    oversample   extra sketch columns beyond K (l = K + oversample)
    power_iters  applications of AᵀA to the Gaussian test matrix; passes = max(power_iters, 1) + 1
                 (0 = a sample-space test matrix, Y = AᵀΩ: half the mat-mul work of 1, no power step.
                 Measured, N = 5,000 built-in head, K = 64: 1 captures rotation 99.3 % vs 98.3 %,
                 PSNR 60.8 vs 59.0 dB, for ~9 % more SVD time: 1 is the default)
    block_rows   samples posed and multiplied per block (peak memory ~ block_rows · N · 11 · 4 B)
    method       "streaming" (fast, bounded memory) or "exact" (reference; materialises the matrix)
    """

    oversample: int = 10
    power_iters: int = 1
    block_rows: int = 128
    method: str = "streaming"

    def validate(self) -> None:
        if self.oversample < 0 or self.power_iters < 0 or self.block_rows < 1:
            raise GaussianHeadsError("SVD config: oversample >= 0, power_iters >= 0, block_rows >= 1")
        if self.method not in ("streaming", "exact"):
            raise GaussianHeadsError(f"unknown SVD method '{self.method}' (streaming or exact)")


@dataclass(frozen=True)
class MLPConfig:
    """Coefficient regressor (mlp.py): input -> hidden[0] -> hidden[1] -> A·K, LeakyReLU between.

    Trained with Adam (lr decays by cosine to lr·lr_final_ratio) on mini-batches; inputs are
    standardised and each attribute's targets scaled by their RMS (both folded into the weights
    afterwards). ``neutral_exact`` shifts the last bias so that neutral parameters give exactly
    zero coefficients (the rest pose is reproduced exactly).
    """

    hidden: tuple[int, int] = (256, 512)
    negative_slope: float = 0.2
    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    lr_final_ratio: float = 0.02
    weight_decay: float = 0.0
    neutral_exact: bool = True
    threads: int = 1               # torch threads while training the reference twin (0 = leave as is);
                                   # the numpy trainer leaves numpy's BLAS threads alone
    trainer: str = "numpy"         # "numpy" (mlp_numpy, what the add-on uses) or "torch" (the reference
                                   # twin, mlp_reference; needs PyTorch)

    def validate(self) -> None:
        if len(self.hidden) != 2 or min(self.hidden) < 1:
            raise GaussianHeadsError("MLP needs two hidden layers of positive width")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise GaussianHeadsError("MLP config: steps >= 0, batch_size >= 1, lr > 0")
        if self.trainer not in ("numpy", "torch"):
            raise GaussianHeadsError(f"unknown MLP trainer '{self.trainer}' (numpy or torch)")


@dataclass(frozen=True)
class ReportConfig:
    """Held-out quality report (report.py).

    n_heldout    parameter tuples drawn from a seed stream disjoint from training
    psnr         render full and baked frames (engine.raster, cpu backend) and compare
    resolution   square image side in pixels
    cameras      camera names: "front", "three_quarter" (45° to the subject's left)
    """

    n_heldout: int = 8
    psnr: bool = False
    resolution: int = 256
    cameras: tuple[str, ...] = ("front", "three_quarter")
    backend: str = "cpu"


@dataclass(frozen=True)
class BakeConfig:
    """Everything a bake needs besides the identity, N, K and the seed.

    attributes     which attributes get blendshapes (ATTRIBUTE_DIMS names; "color" = SH DC, optional)
    storage_dtype  "float32" or "float16" for the bases inside saved files (runtime is float32)
    neck_blend     estimate per-Gaussian neck weights (two probe poses) so the run-time head
                   transform blends root and neck like LBS; False = every Gaussian follows the neck
    """

    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    storage_dtype: str = "float32"
    neck_blend: bool = True
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    svd: SVDConfig = field(default_factory=SVDConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def validate(self) -> None:
        if not self.attributes:
            raise GaussianHeadsError("bake needs at least one attribute")
        for name in self.attributes:
            if name not in ATTRIBUTE_DIMS:
                raise GaussianHeadsError(f"unknown bake attribute '{name}' (one of {', '.join(ATTRIBUTE_DIMS)})")
        if len(set(self.attributes)) != len(self.attributes):
            raise GaussianHeadsError("bake attributes repeat")
        if self.storage_dtype not in ("float32", "float16"):
            raise GaussianHeadsError("storage_dtype must be float32 or float16")
        self.sampling.validate()
        self.svd.validate()
        self.mlp.validate()

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BakeConfig":
        """Inverse of ``to_json``; unknown keys are ignored (newer writers), missing ones default."""
        def build(kind, values):
            names = kind.__dataclass_fields__
            kwargs = {}
            for key, value in (values or {}).items():
                if key in names:
                    kwargs[key] = tuple(value) if isinstance(value, list) else value
            return kind(**kwargs)

        data = dict(data or {})
        parts = {"sampling": SamplingConfig, "svd": SVDConfig, "mlp": MLPConfig, "report": ReportConfig}
        kwargs = {name: build(kind, data.get(name)) for name, kind in parts.items()}
        if "attributes" in data:
            kwargs["attributes"] = tuple(data["attributes"])
        if "storage_dtype" in data:
            kwargs["storage_dtype"] = str(data["storage_dtype"])
        if "neck_blend" in data:
            kwargs["neck_blend"] = bool(data["neck_blend"])
        return cls(**kwargs)
