"""AGORA-style generator networks (torch): mapping, UV synthesis with shape conditioning, deformation.

Ideas follow StyleGAN2 (modulated convolutions with weight demodulation, equalised learning rate,
a mapping network with a tracked w average for truncation, skip outputs) and GGHead/AGORA
(Gaussian attributes written as maps in the head model's UV space). Written for this project;
the modulation is the "non-fused" form (scale the input, convolve with the shared weight, scale
the output), which is exact, batch-agnostic and exports to plain ONNX Conv ops.

Shapes (B batch, R = uv_resolution, r = deform_resolution, Cf = feature channels):
    z             [B, z_dim]
    w             [B, w_dim]   (or ws [B, num_ws, w_dim] for per-layer styles)
    shape_map     [B, 4, R, R] shape-only displacement (metres) + coverage mask (``uvmap.shape_uv_map``)
    attributes    [B, attr_channels, R, R]  raw attribute maps (layout in ``config``)
    features      [B, Cf, r, r] synthesis features at the deformation resolution
    condition     [B, n_expr + n_jaw + n_eyelid]  (expression, jaw axis-angle, eyelids)
    residuals     [B, 11, r, r] raw residual maps
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GaussianHeadsError, check_shape
from .config import RESIDUAL_CHANNELS, SHAPE_MAP_CHANNELS, GeneratorConfig

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor, clamp: float = 0.0) -> torch.Tensor:
    """Leaky ReLU (0.2) with StyleGAN's sqrt(2) gain, optional symmetric clamp."""
    x = F.leaky_relu(x, 0.2) * _SQRT2
    if clamp > 0:
        x = x.clamp(-clamp, clamp)
    return x


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer: weights stored as N(0, 1/lr_mul^2), scaled at run time."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return _lrelu(x) if self.activation == "lrelu" else x


class MappingNetwork(nn.Module):
    """z [B, z_dim] -> w [B, w_dim]; tracks ``w_avg`` (buffer) for the truncation trick."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.z_dim, self.w_dim, self.beta = config.z_dim, config.w_dim, config.w_avg_beta
        dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(
            FullyConnected(dims[i], dims[i + 1], activation="lrelu", lr_multiplier=config.mapping_lr_multiplier)
            for i in range(config.mapping_layers))
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(self, z: torch.Tensor, truncation: torch.Tensor | float = 1.0,
                update_w_avg: bool = False) -> torch.Tensor:
        """z [B, z_dim], truncation scalar or [B] -> w [B, w_dim] = w_avg + truncation (w - w_avg)."""
        check_shape("z", z, (None, self.z_dim))
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # 2nd-moment normalisation
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.training:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.beta))
        if isinstance(truncation, torch.Tensor):
            psi = truncation.reshape(-1, 1).to(x.dtype)
        else:
            if truncation == 1.0:
                return x
            psi = float(truncation)
        return self.w_avg + (x - self.w_avg) * psi


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 1) -> torch.Tensor:
    """StyleGAN2 modulated convolution, non-fused form.

    x [B, I, H, W], weight [O, I, k, k], styles [B, I] -> [B, O, H, W].
    Equals convolving each sample with weight * styles (per input channel), demodulated so each
    output channel's weights have unit L2 norm: d[b, o] = 1 / sqrt(sum_{i,kh,kw} (w[o,i] s[b,i])^2).
    """
    y = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)
    if demodulate:
        d = torch.rsqrt(torch.einsum("oi,bi->bo", weight.square().sum(dim=(2, 3)), styles.square()) + 1e-8)
        y = y * d[:, :, None, None]
    return y


class ModulatedConv(nn.Module):
    """3x3 (or 1x1) modulated convolution + optional noise + bias + activation."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, *, kernel: int = 3,
                 resolution: int = 0, noise: bool = False, demodulate: bool = True,
                 activation: str = "lrelu", conv_clamp: float = 0.0, gain: float = 1.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.affine = FullyConnected(style_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = gain / math.sqrt(in_channels * kernel * kernel)
        self.padding = kernel // 2
        self.demodulate, self.activation, self.conv_clamp = demodulate, activation, conv_clamp
        self.use_noise = noise and resolution > 0
        if self.use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        styles = self.affine(style)
        if not self.demodulate:
            styles = styles * self.weight_gain  # toAttr-style heads: plain gain, no demodulation
            y = modulated_conv2d(x, self.weight, styles, demodulate=False, padding=self.padding)
        else:
            y = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=True, padding=self.padding)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(y.shape[0], 1, y.shape[2], y.shape[3], dtype=y.dtype, device=y.device)
            else:
                noise = self.noise_const[None, None]
            y = y + noise * self.noise_strength
        y = y + self.bias[None, :, None, None]
        if self.activation == "lrelu":
            y = _lrelu(y, self.conv_clamp)
        elif self.conv_clamp > 0:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def normalize_shape_map(shape_map: torch.Tensor) -> torch.Tensor:
    """Variance-normalise the displacement channels per sample over covered texels.

    shape_map [B, 4, R, R] (xyz displacement, mask) -> same shape; the xyz channels are divided
    by sqrt(mean over covered texels and axes of d^2 + 1e-12), so a zero map stays zero.
    """
    disp, mask = shape_map[:, :3] * shape_map[:, 3:4], shape_map[:, 3:4]
    count = (mask.sum(dim=(1, 2, 3)) * 3.0).clamp(min=1.0)
    var = disp.square().sum(dim=(1, 2, 3)) / count
    disp = disp * torch.rsqrt(var + 1e-12)[:, None, None, None]
    return torch.cat([disp, mask], dim=1)


class SynthesisBlock(nn.Module):
    """One resolution level: [upsample] -> concat shape map -> conv0 -> conv1 -> toAttr (skip)."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, config: GeneratorConfig,
                 first: bool):
        super().__init__()
        self.resolution, self.first = resolution, first
        w_dim, clamp = config.w_dim, config.conv_clamp
        if first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
            c1_in = out_channels + SHAPE_MAP_CHANNELS
        else:
            self.conv0 = ModulatedConv(in_channels + SHAPE_MAP_CHANNELS, out_channels, w_dim,
                                       resolution=resolution, noise=config.noise, conv_clamp=clamp)
            c1_in = out_channels
        self.conv1 = ModulatedConv(c1_in, out_channels, w_dim, resolution=resolution, noise=config.noise,
                                   conv_clamp=clamp)
        self.to_attr = ModulatedConv(out_channels, config.attr_channels, w_dim, kernel=1, demodulate=False,
                                     activation="linear", conv_clamp=clamp, gain=config.attr_gain)
        self.num_ws = 2 if first else 3

    def forward(self, x, img, ws: list[torch.Tensor], shape_map: torch.Tensor, noise_mode: str):
        if self.first:
            x = self.const[None].expand(shape_map.shape[0], -1, -1, -1)
            x = self.conv1(torch.cat([x, shape_map], dim=1), ws[0], noise_mode)
        else:
            x = _upsample(x)
            x = self.conv0(torch.cat([x, shape_map], dim=1), ws[0], noise_mode)
            x = self.conv1(x, ws[1], noise_mode)
        y = self.to_attr(x, ws[-1])
        img = y if img is None else _upsample(img) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """w + shape map -> raw UV attribute maps and low-resolution features for the deformation branch."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.resolutions = config.block_resolutions
        blocks = []
        prev = 0
        for i, res in enumerate(self.resolutions):
            ch = config.channels_at(res)
            blocks.append(SynthesisBlock(prev, ch, res, config, first=(i == 0)))
            prev = ch
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_ws for b in self.blocks)

    def forward(self, w: torch.Tensor, shape_map: torch.Tensor, noise_mode: str = "const"):
        """w [B, w_dim] or ws [B, num_ws, w_dim]; shape_map [B, 4, R, R] (raw, un-normalised).

        Returns (attributes [B, attr_channels, R, R], features [B, Cf, r, r]).
        """
        cfg = self.config
        r = cfg.uv_resolution
        check_shape("shape_map", shape_map, (None, SHAPE_MAP_CHANNELS, r, r))
        if w.dim() == 2:
            check_shape("w", w, (shape_map.shape[0], cfg.w_dim))
            ws = [w] * self.num_ws
        else:
            check_shape("ws", w, (shape_map.shape[0], self.num_ws, cfg.w_dim))
            ws = list(w.unbind(dim=1))
        pyramid = {r: normalize_shape_map(shape_map)}
        for res in reversed(self.resolutions[:-1]):
            pyramid[res] = F.avg_pool2d(pyramid[res * 2], kernel_size=2)
        x = img = features = None
        k = 0
        for block in self.blocks:
            x, img = block(x, img, ws[k:k + block.num_ws], pyramid[block.resolution], noise_mode)
            k += block.num_ws
            if block.resolution == cfg.deform_resolution:
                features = x
        return img, features


class DeformationBranch(nn.Module):
    """features [B, Cf, r, r] + condition [B, n_cond] -> raw residual maps [B, 11, r, r].

    The condition (expression, jaw, eyelids) goes through a small MLP to a code that modulates
    every convolution (style modulation), so the per-frame cost is a few convolutions at r x r.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        cd, dc = config.deform_cond_dim, config.deform_channels
        self.cond_mlp = nn.ModuleList([FullyConnected(config.n_cond, cd, activation="lrelu"),
                                       FullyConnected(cd, cd, activation="lrelu")])
        self.in_weight = nn.Parameter(torch.randn(dc, config.feature_channels, 1, 1))
        self.in_bias = nn.Parameter(torch.zeros(dc))
        self.in_gain = 1.0 / math.sqrt(config.feature_channels)
        self.convs = nn.ModuleList(ModulatedConv(dc, dc, cd, conv_clamp=config.conv_clamp)
                                   for _ in range(config.deform_layers))
        self.to_residual = ModulatedConv(dc, RESIDUAL_CHANNELS, cd, kernel=1, demodulate=False,
                                         activation="linear", gain=config.deform_gain)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_shape("features", features, (None, cfg.feature_channels, cfg.deform_resolution, cfg.deform_resolution))
        check_shape("condition", condition, (features.shape[0], cfg.n_cond))
        c = condition
        for layer in self.cond_mlp:
            c = layer(c)
        x = _lrelu(F.conv2d(features, self.in_weight * self.in_gain, self.in_bias))
        for conv in self.convs:
            x = conv(x, c)
        return self.to_residual(x, c)


class Generator(nn.Module):
    """The whole generator: ``mapping``, ``synthesis`` (identity) and ``deformation`` branches."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.mapping = MappingNetwork(config)
        self.synthesis = SynthesisNetwork(config)
        self.deformation = DeformationBranch(config)

    def identity(self, z: torch.Tensor, shape_map: torch.Tensor, truncation: torch.Tensor | float = 1.0,
                 noise_mode: str = "const"):
        """z [B, z_dim], shape_map [B, 4, R, R] -> (attributes [B, C, R, R], features [B, Cf, r, r])."""
        w = self.mapping(z, truncation)
        return self.synthesis(w, shape_map, noise_mode)

    def forward(self, z, shape_map, condition, truncation=1.0, noise_mode: str = "const"):
        """Identity then deformation: returns (attributes, features, residuals)."""
        attributes, features = self.identity(z, shape_map, truncation, noise_mode)
        return attributes, features, self.deformation(features, condition)


class IdentityBranch(nn.Module):
    """Export wrapper: (z [1, z_dim], truncation [1], shape_map [1, 4, R, R]) -> (attributes, features)."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, z, truncation, shape_map):
        return self.generator.identity(z, shape_map, truncation, noise_mode="const")


def build_generator(config: GeneratorConfig, seed: int = 0) -> Generator:
    """A freshly initialised generator; weights (and constant noise) depend only on (config, seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        gen = Generator(config)
    return gen.eval()


def estimate_w_avg(generator: Generator, n: int = 10000, seed: int = 0) -> None:
    """Set ``mapping.w_avg`` to the mean of w over ``n`` random z (what training tracks by EMA)."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        ws = []
        for start in range(0, n, 1000):
            z = torch.randn(min(1000, n - start), generator.config.z_dim, generator=g)
            ws.append(generator.mapping(z))
        generator.mapping.w_avg.copy_(torch.cat(ws).mean(dim=0))


# --- differentiable decoding twins of ``decode.py`` (for training and tests) ---

def decode_attributes_torch(config: GeneratorConfig, raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """raw [N, attr_channels] -> offsets [N,3], log_scales [N,3], quats [N,4], sh [N,K,3], opacity_logits [N]."""
    check_shape("raw attributes", raw, (None, config.attr_channels))
    k = config.sh_coeffs
    offsets = config.offset_range * torch.tanh(raw[:, 0:3])
    s = raw[:, 3:6] + config.scale_bias
    log_sp = torch.where(s < -30.0, s, torch.log(F.softplus(s).clamp(min=1e-30)))
    log_scales = log_sp.clamp(config.log_scale_min, config.log_scale_max)
    q = raw[:, 6:10] + torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=raw.dtype, device=raw.device)
    quats = q / q.norm(dim=1, keepdim=True).clamp(min=1e-8)
    sh = raw[:, 10:10 + 3 * k].reshape(-1, k, 3)
    m = config.opacity_logit_max
    opacity_logits = (raw[:, 10 + 3 * k] + config.opacity_bias).clamp(-m, m)
    return dict(offsets=offsets, log_scales=log_scales, quats=quats, sh=sh, opacity_logits=opacity_logits)


def sample_maps_torch(maps: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """maps [B, C, H, W], uv [B, N, 2] in [0, 1] -> [B, N, C] (bilinear, border, align_corners=False)."""
    grid = (uv * 2.0 - 1.0)[:, :, None, :]  # [B, N, 1, 2]
    out = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, :, 0].transpose(1, 2)


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def to_numpy_state(generator: Generator) -> dict[str, np.ndarray]:
    """state_dict as contiguous float32 numpy arrays (for safetensors)."""
    out = {}
    for name, t in generator.state_dict().items():
        if not torch.is_floating_point(t):
            raise GaussianHeadsError(f"unexpected non-float tensor {name} in the generator")
        out[name] = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
    return out
