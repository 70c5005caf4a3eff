"""GeneratorConfig: every architectural and decoding constant of the AGORA-style generator.

The config is a typed, frozen dataclass that round-trips through JSON (``to_json`` /
``from_json``); it travels with every checkpoint (``config.json``) so a checkpoint rebuilds the
exact network that wrote it, with torch (safetensors) or without it (ONNX).

Attribute-map channel layout (raw network outputs, before decoding; K = (sh_degree + 1)^2):
    [0:3]            position offset          -> offset_range * tanh(raw)        (face-scale units)
    [3:6]            scale                    -> clamp(log softplus(raw + scale_bias))   (log, face-scale units)
    [6:10]           rotation (w, x, y, z)    -> normalise(raw + (1, 0, 0, 0))
    [10:10+3K]       colour SH, (K, 3) row-major: channel 10 + 3k + c is coefficient k of colour c
    [10+3K]          opacity                  -> clamp(raw + opacity_bias, ±opacity_logit_max) (logit)
Residual-map channel layout (deformation branch):
    [0:3] d_offset, [3:6] d_log_scale, [6:10] d_quat, [10] d_opacity_logit; each ``range * tanh(raw)``.

UV-map convention (shared by the rasteriser, the network and the samplers): a map is
``[C, H, W]``; column c holds u = (c + 0.5) / W and row r holds v = (r + 0.5) / H (no flip), which
is ``torch.nn.functional.grid_sample(..., align_corners=False)`` with grid = (2u - 1, 2v - 1).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from ..errors import GaussianHeadsError

RESIDUAL_CHANNELS = 11  # d_offset 3, d_log_scale 3, d_quat 4, d_opacity 1
SHAPE_MAP_CHANNELS = 4  # shape-only displacement xyz (metres) + coverage mask


@dataclass(frozen=True)
class GeneratorConfig:
    # --- latent and mapping network ---
    z_dim: int = 512                   # input latent z
    w_dim: int = 512                   # intermediate latent w
    mapping_layers: int = 4            # fully connected layers z -> w
    mapping_lr_multiplier: float = 0.01  # learning-rate multiplier of the mapping layers
    w_avg_beta: float = 0.995          # decay of the tracked w average (truncation centre)
    # --- UV synthesis network ---
    uv_resolution: int = 256           # output attribute-map resolution (AGORA: 256)
    base_resolution: int = 4           # resolution of the learned constant input
    channel_base: int = 4096           # channels at resolution r = min(channel_base // r, channel_max)
    channel_max: int = 256
    channel_min: int = 16
    noise: bool = True                 # per-layer noise inputs (constant buffers at inference)
    conv_clamp: float = 256.0          # clamp of pre-activations (0 = off)
    attr_gain: float = 0.25            # gain of the toAttr heads (keeps raw outputs small at init)
    sh_degree: int = 1                 # colour SH degree (AGORA: 1)
    # --- decoding of the attribute maps (GGHead style) ---
    offset_range: float = 2.0          # |offset| <= offset_range (face-scale units, per axis)
    scale_bias: float = -2.0           # raw shift before softplus (initial scale ~ 0.13 face scale)
    log_scale_min: float = -7.0        # log-scale clamp, face-scale units
    log_scale_max: float = 1.0
    opacity_bias: float = 0.0
    opacity_logit_max: float = 9.0     # |logit| <= this, so sigmoid stays inside (0, 1) in float32
    # --- deformation branch ---
    n_expr: int = 50                   # expression channels (SMIRK's FLAME: 50)
    n_jaw: int = 3                     # jaw axis-angle
    n_eyelid: int = 2                  # eyelid closure (left, right) in [0, 1]
    deform_resolution: int = 64        # resolution of the synthesis features it reads and of its output
    deform_channels: int = 32          # channels of the deformation convolutions
    deform_layers: int = 2             # modulated 3x3 convolutions
    deform_cond_dim: int = 128         # width of the condition MLP
    deform_gain: float = 0.25          # gain of the residual head
    d_offset_range: float = 0.5        # residual bounds (tanh ranges)
    d_log_scale_range: float = 0.5
    d_quat_range: float = 0.25
    d_opacity_range: float = 2.0
    # --- Gaussians ---
    n_gaussians: int = 65536           # UV samples per identity (AGORA: up to 512^2)
    binding_seed: int = 0              # the UV binding is shared by every identity of a checkpoint
    head_model: str = "open"           # head model the checkpoint was built for (load_head_model spec)

    def __post_init__(self) -> None:
        def pow2(name: str) -> int:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value & (value - 1):
                raise GaussianHeadsError(f"generator config: {name} must be a power of two, got {value!r}")
            return value

        pow2("uv_resolution"), pow2("base_resolution"), pow2("deform_resolution")
        if not self.base_resolution <= self.deform_resolution <= self.uv_resolution:
            raise GaussianHeadsError(
                "generator config: need base_resolution <= deform_resolution <= uv_resolution, got "
                f"{self.base_resolution}, {self.deform_resolution}, {self.uv_resolution}")
        if self.base_resolution >= self.uv_resolution:
            raise GaussianHeadsError("generator config: uv_resolution must exceed base_resolution")
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "channel_min",
                     "deform_channels", "deform_layers", "deform_cond_dim", "n_gaussians"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise GaussianHeadsError(f"generator config: {name} must be a positive integer")
        for name in ("n_expr", "n_jaw", "n_eyelid"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise GaussianHeadsError(f"generator config: {name} must be a non-negative integer")
        if self.sh_degree not in (0, 1, 2, 3):
            raise GaussianHeadsError(f"generator config: sh_degree must be 0..3, got {self.sh_degree}")
        if not self.log_scale_min < self.log_scale_max:
            raise GaussianHeadsError("generator config: log_scale_min must be below log_scale_max")
        if self.n_cond < 1:
            raise GaussianHeadsError("generator config: the deformation branch needs at least one condition")

    # --- derived sizes ---
    @property
    def sh_coeffs(self) -> int:
        """K = (sh_degree + 1)^2 SH coefficients per colour channel."""
        return (self.sh_degree + 1) ** 2

    @property
    def attr_channels(self) -> int:
        """Channels of the raw attribute map: 3 + 3 + 4 + 3K + 1."""
        return 11 + 3 * self.sh_coeffs

    @property
    def n_cond(self) -> int:
        """Length of the deformation condition vector: [expr, jaw, eyelids]."""
        return self.n_expr + self.n_jaw + self.n_eyelid

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Resolutions of the synthesis blocks, base first: (4, 8, ..., uv_resolution)."""
        lo, hi = int(math.log2(self.base_resolution)), int(math.log2(self.uv_resolution))
        return tuple(2 ** i for i in range(lo, hi + 1))

    def channels_at(self, resolution: int) -> int:
        return max(self.channel_min, min(self.channel_base // resolution, self.channel_max))

    @property
    def feature_channels(self) -> int:
        """Channels of the synthesis features handed to the deformation branch."""
        return self.channels_at(self.deform_resolution)

    # --- JSON ---
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "GeneratorConfig":
        """Build from a dict; unknown keys or wrongly typed values raise GaussianHeadsError."""
        if not isinstance(data, dict):
            raise GaussianHeadsError("generator config must be a JSON object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise GaussianHeadsError(f"generator config has unknown keys: {', '.join(unknown)}")
        kwargs = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                value = float(value) if ok else value
            else:
                ok = isinstance(value, str)
            if not ok:
                raise GaussianHeadsError(
                    f"generator config: {name} should be {type(default).__name__}, got {value!r}")
            kwargs[name] = value
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "GeneratorConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GaussianHeadsError(f"generator config is not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def replace(self, **changes) -> "GeneratorConfig":
        return dataclasses.replace(self, **changes)


def small_config(**changes) -> GeneratorConfig:
    """A small, fast config for tests and quick demos (UV 64, narrow channels)."""
    base = dict(z_dim=64, w_dim=64, mapping_layers=2, uv_resolution=64, channel_base=1024,
                channel_max=64, channel_min=8, deform_resolution=16, deform_channels=16,
                deform_cond_dim=32, n_gaussians=4096)
    base.update(changes)
    return GeneratorConfig(**base)
