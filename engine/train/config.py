"""TrainConfig: every setting of a training run, typed, JSON round-trip, CLI flags generated from it.

The config is written into every training state and (as ``meta["train_config"]``) into every
checkpoint the run writes. ``add_config_arguments`` adds one ``--flag`` per field (``--batch``,
``--g-lr``, …) and one ``--gen-<field>`` per ``GeneratorConfig`` field; flags given on the command
line override a ``--config FILE.json`` (or a resumed run's config), which override the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from ..errors import GaussianHeadsError
from ..generator.config import GeneratorConfig


def default_generator() -> GeneratorConfig:
    """A small generator that trains on a CPU: UV 64, narrow channels, 4096 Gaussians."""
    return GeneratorConfig(z_dim=64, w_dim=64, mapping_layers=2, uv_resolution=64, channel_base=512,
                           channel_max=64, channel_min=16, deform_resolution=16, deform_channels=16,
                           deform_cond_dim=32, n_gaussians=4096, n_expr=52, attr_gain=0.25)


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""                      # dataset folder (``engine.train.dataset``)
    out: str = "runs/train"             # run folder: state/, checkpoint/, log.csv, samples/, tensorboard/
    generator: GeneratorConfig = field(default_factory=default_generator)
    seed: int = 0
    steps: int = 1000                   # optimisation steps (each: G update, D update)
    seconds: float = 0.0                # stop after this wall time as well (0: no limit)
    batch: int = 4                      # images per micro-batch per process
    accum: int = 1                      # micro-batches accumulated per step
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    beta2: float = 0.99                 # Adam (beta1 = 0, as StyleGAN2)
    r1_gamma: float = 1.0
    r1_interval: int = 16               # lazy R1: every this many steps, scaled by it
    ema_beta: float = 0.995             # EMA generator decay per step
    augment_p: float = 0.0              # differentiable augmentation probability (0: off)
    d_channel_base: int = 1024
    d_channel_max: int = 64
    window: int = 7                     # splat footprint (pixels) of the CPU torch rasterizer
    backend: str = "auto"               # auto | torch | gsplat (CUDA)
    device: str = "auto"                # auto | cpu | cuda
    amp: bool = True                    # bfloat16 autocast of the networks on CUDA
    log_every: int = 10
    sample_every: int = 200             # PNG sample grid every N steps (0: only at the end)
    checkpoint_every: int = 500         # training state + add-on checkpoint every N steps (0: only at the end)
    onnx: bool = True                   # export the ONNX branches with every add-on checkpoint
    check_images: bool = True           # decode every image before training starts
    threads: int = 0                    # torch CPU threads per process (0: torch's default)
    workers: int = 0                    # DataLoader processes decoding batches ahead (0: decode in the trainer)
    tensorboard: bool = True            # also log to out/tensorboard/ (rank 0; when the package is installed)

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "accum", "r1_interval", "window", "log_every"):
            if getattr(self, name) < 1:
                raise GaussianHeadsError(f"train config: {name} must be at least 1")
        if self.workers < 0:
            raise GaussianHeadsError("train config: workers must be 0 or more")
        if self.window % 2 == 0:
            raise GaussianHeadsError("train config: window must be odd")
        if self.backend not in ("auto", "torch", "gsplat"):
            raise GaussianHeadsError(f"train config: backend must be auto, torch or gsplat, got {self.backend!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise GaussianHeadsError(f"train config: device must be auto, cpu or cuda, got {self.device!r}")
        if not 0.0 <= self.augment_p <= 1.0 or not 0.0 <= self.ema_beta < 1.0:
            raise GaussianHeadsError("train config: augment_p must lie in [0, 1] and ema_beta in [0, 1)")

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["generator"] = self.generator.to_dict()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        if not isinstance(data, dict):
            raise GaussianHeadsError("train config must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise GaussianHeadsError(f"train config has unknown keys: {', '.join(unknown)}")
        kwargs = {}
        for name, value in data.items():
            if name == "generator":
                kwargs[name] = GeneratorConfig.from_dict(value)
                continue
            default = getattr(cls, name)
            ok = (isinstance(value, bool) if isinstance(default, bool) else
                  isinstance(value, int) and not isinstance(value, bool) if isinstance(default, int) else
                  isinstance(value, (int, float)) and not isinstance(value, bool) if isinstance(default, float) else
                  isinstance(value, str))
            if not ok:
                raise GaussianHeadsError(f"train config: {name} should be {type(default).__name__}, got {value!r}")
            kwargs[name] = float(value) if isinstance(default, float) else value
        return cls(**kwargs)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _flag_type(default):
    if isinstance(default, bool):
        return lambda s: {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}[s.lower()]
    return type(default)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field and ``--gen-<field>`` per GeneratorConfig field (default None)."""
    base = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "generator":
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None,
                            type=_flag_type(getattr(base, f.name)), help=f"(default {getattr(base, f.name)!r})")
    for f in dataclasses.fields(GeneratorConfig):
        parser.add_argument("--gen-" + f.name.replace("_", "-"), dest="gen_" + f.name, default=None,
                            type=_flag_type(getattr(base.generator, f.name)), help=argparse.SUPPRESS)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (or --config FILE, or the defaults) with every flag the user gave applied."""
    if base is None:
        base = TrainConfig()
        path = getattr(args, "config", None)
        if path:
            try:
                with open(path, encoding="utf-8") as fh:
                    base = TrainConfig.from_dict(json.load(fh))
            except OSError as exc:
                raise GaussianHeadsError(f"{path}: cannot read ({exc.strerror or exc})") from None
            except json.JSONDecodeError as exc:
                raise GaussianHeadsError(f"{path}: not valid JSON ({exc})") from None
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
               if f.name != "generator" and getattr(args, f.name, None) is not None}
    gen = {f.name: getattr(args, "gen_" + f.name) for f in dataclasses.fields(GeneratorConfig)
           if getattr(args, "gen_" + f.name, None) is not None}
    if gen:
        changes["generator"] = base.generator.replace(**gen)
    return base.replace(**changes)
