"""Synthetic training data: built-in identities rendered with random expressions, poses and cameras.

``build_synthetic(out, SyntheticConfig(...))`` writes a dataset folder (``dataset`` module) that
anyone can train on offline. Per image (all draws from one seeded generator, so a config always
builds the same dataset): a built-in identity (``BuiltinSource``, seed = identity index), an
expression, a jaw opening, a head rotation and a camera on a sphere around the head, rendered with
the CPU rasterizer over a flat background.

Expressions: on an ARKit model, ``active`` random channels set to U(0, 1); on a FLAME model the
first ten components ~ N(0, 0.8²). Jaw: opening U(0, jaw_max) rad about +X. The held-out split
(``split`` 1), for the expression-control metric, shows the first ``heldout_identities`` identities
from a frontal camera, each first at neutral and then with each of ``heldout_expressions`` fixed
expressions that training never shows: on an ARKit model the named ``ARKIT_HELDOUT`` expressions
(an open mouth, a smile, a blink with pursed lips, a frown; clearly visible at 64 px), on a FLAME
model strong random ones (first ten components ~ N(0, 1.5²), jaw 0.15 rad), drawn once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import GaussianHeadsError
from ..head_model.model import HeadModel, HeadParams
from ..raster.camera import Camera, look_at
from .dataset import SPLIT_HELDOUT, SPLIT_TRAIN, DatasetWriter

HEAD_CENTRE = np.array([0.0, -0.02, 0.0])   # metres, model frame: the camera target
FRAMED_HEIGHT = 0.34                        # metres of the target plane the image height spans

# (name, {ARKit channel: weight}, jaw opening in radians): the held-out expressions of ARKit models
ARKIT_HELDOUT = (
    ("open mouth", {"jawOpen": 0.9}, 0.22),
    ("smile", {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0, "cheekSquintLeft": 0.6, "cheekSquintRight": 0.6,
               "browInnerUp": 0.7}, 0.04),
    ("blink, pursed lips", {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0, "mouthPucker": 1.0}, 0.0),
    ("frown", {"mouthFrownLeft": 1.0, "mouthFrownRight": 1.0, "browDownLeft": 1.0, "browDownRight": 1.0,
               "noseSneerLeft": 0.8, "noseSneerRight": 0.8}, 0.0),
)


@dataclass(frozen=True)
class SyntheticConfig:
    identities: int = 16            # built-in identities (seeds 0 .. identities-1)
    views: int = 16                 # training images per identity
    resolution: int = 64            # square images
    n_gaussians: int = 16384        # Gaussians per built-in identity
    seed: int = 0
    active: int = 3                 # ARKit channels switched on per image
    jaw_max: float = 0.25           # radians
    head_yaw: float = 0.3           # head rotation range (radians, ±)
    head_pitch: float = 0.15
    camera_yaw: float = 0.5         # camera orbit range around the head (radians, ±)
    camera_pitch: float = 0.2
    distance: float = 0.75          # camera distance (metres)
    heldout_expressions: int = 4
    heldout_identities: int = 4
    background: tuple = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        for name in ("identities", "views", "resolution", "n_gaussians"):
            if int(getattr(self, name)) < 1:
                raise GaussianHeadsError(f"synthetic dataset: {name} must be positive")
        if not 8 <= self.resolution <= 4096:
            raise GaussianHeadsError("synthetic dataset: resolution must lie in 8..4096")


def random_expression(rng: np.random.Generator, model: HeadModel, cfg: SyntheticConfig) -> np.ndarray:
    """[E] float32 expression coefficients (see the module docstring)."""
    expr = np.zeros(model.n_expr, np.float32)
    if model.expr_space == "arkit":
        channels = rng.choice(model.n_expr, size=min(cfg.active, model.n_expr), replace=False)
        expr[channels] = rng.random(len(channels))
    else:
        k = min(10, model.n_expr)
        expr[:k] = rng.normal(0.0, 0.8, k)
    return expr


def heldout_expressions(rng: np.random.Generator, model: HeadModel, count: int) -> list[tuple[np.ndarray, float]]:
    """``count`` (expression [E], jaw radians) pairs for the held-out split (see the module docstring)."""
    names = list(model.expr_names) if model.expr_space == "arkit" else []
    out = []
    for i in range(count):
        expr = np.zeros(model.n_expr, np.float32)
        if i < len(ARKIT_HELDOUT) and all(c in names for c in ARKIT_HELDOUT[i][1]):
            for channel, weight in ARKIT_HELDOUT[i][1].items():
                expr[names.index(channel)] = weight
            out.append((expr, ARKIT_HELDOUT[i][2]))
            continue
        if model.expr_space == "arkit":
            channels = rng.choice(model.n_expr, size=min(4, model.n_expr), replace=False)
            expr[channels] = rng.uniform(0.6, 1.0, len(channels))
        else:
            k = min(10, model.n_expr)
            expr[:k] = rng.normal(0.0, 1.5, k)
        out.append((expr, 0.15 if model.expr_space != "arkit" else 0.0))
    return out


def orbit_camera(yaw: float, pitch: float, cfg: SyntheticConfig) -> Camera:
    """A camera at ``distance`` from HEAD_CENTRE, turned by yaw (about +Y) and pitch, looking at it."""
    d = cfg.distance
    eye = HEAD_CENTRE + d * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    res = cfg.resolution
    f = res * d / FRAMED_HEIGHT
    return Camera(look_at(eye, HEAD_CENTRE, (0.0, 1.0, 0.0)), f, f, res / 2.0, res / 2.0, res, res)


def _render(identity, params: HeadParams, camera: Camera, cfg: SyntheticConfig) -> np.ndarray:
    from ..raster import render

    out = render(identity.pose(params), camera, cfg.resolution, cfg.resolution, cfg.background, backend="cpu")
    return (np.clip(out.rgba[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def build_synthetic(out: str | os.PathLike, cfg: SyntheticConfig = SyntheticConfig(), model: HeadModel | None = None,
                    model_spec: str = "open", progress=None) -> str:
    """Render the dataset into folder ``out`` (created); returns its path. ``progress(i, total)`` optional."""
    from ..avatar.builtin import BuiltinSamplerConfig, BuiltinSource

    if model is None:
        from ..head_model import load_head_model

        model = load_head_model(model_spec)
    source = BuiltinSource(model, BuiltinSamplerConfig(n_gaussians=cfg.n_gaussians), model_spec=model_spec)
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0x5E7]))
    description = (f"synthetic: {cfg.identities} built-in identities x {cfg.views} views, {cfg.resolution}px, "
                   f"seed {cfg.seed}, {cfg.heldout_expressions} held-out expressions")
    writer = DatasetWriter(out, model, model_spec, cfg.resolution, cfg.resolution, description, cfg.background)
    heldout = heldout_expressions(np.random.default_rng(np.random.SeedSequence([int(cfg.seed), 0x4E1D])), model,
                                  cfg.heldout_expressions)
    total = cfg.identities * cfg.views + (1 + len(heldout)) * min(cfg.heldout_identities, cfg.identities)
    done = 0
    for ident in range(cfg.identities):
        identity = source.sample(ident)
        for _ in range(cfg.views):
            params = identity.neutral_params()
            params.expr = random_expression(rng, model, cfg)
            params.jaw = np.array([rng.uniform(0.0, cfg.jaw_max), 0.0, 0.0], np.float32)
            params.global_rot = np.array([rng.uniform(-cfg.head_pitch, cfg.head_pitch),
                                          rng.uniform(-cfg.head_yaw, cfg.head_yaw), 0.0], np.float32)
            camera = orbit_camera(rng.uniform(-cfg.camera_yaw, cfg.camera_yaw),
                                  rng.uniform(-cfg.camera_pitch, cfg.camera_pitch), cfg)
            writer.add(_render(identity, params, camera, cfg), params, camera, ident, SPLIT_TRAIN)
            done += 1
            if progress:
                progress(done, total)
    for ident in range(min(cfg.heldout_identities, cfg.identities)):
        identity = source.sample(ident)
        camera = orbit_camera(0.0, 0.0, cfg)
        for expr, jaw in [(None, 0.0)] + heldout:           # neutral first, then each held-out expression
            params = identity.neutral_params()
            if expr is not None:
                params.expr = expr.copy()
                params.jaw = np.array([jaw, 0.0, 0.0], np.float32)
            writer.add(_render(identity, params, camera, cfg), params, camera, ident, SPLIT_HELDOUT)
            done += 1
            if progress:
                progress(done, total)
    return writer.close()
