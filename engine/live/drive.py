"""Live drive: each new frame onto an avatar's channels, with calibration and smoothing.

Mapping is the importers' :func:`~engine.animation.mapping.map_sequence` on a one-frame take
(:func:`~engine.live.take.sequence_from_frames`), so a live frame lands on exactly the channels
an imported take would. After mapping:

* calibration ("set neutral"): ``expr = gain · channel_gain · (expr − neutral)`` per channel, and
  the head rotation relative to the neutral head (``q_neutral⁻¹ ⊗ q``);
* smoothing: exponential, ``y += (1 − smoothing) · (x − y)`` per frame, on every value
  (axis-angles smoothed componentwise, which is accurate for the small steps between frames).

Recording applies the calibration but not the smoothing (keys keep the capture's timing).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..animation.mapping import MapOptions, TargetSpec, map_sequence
from ..animation.rotation import axis_angle_to_quat, quat_mul, quat_to_axis_angle
from ..animation.sequence import ParamSequence
from ..errors import GaussianHeadsError
from .frame import LiveFrame
from .take import sequence_from_frames

LIVE_MAP_OPTIONS = MapOptions(use_translation=False)  # a phone's head position is not the avatar's


@dataclass(frozen=True)
class DriveOptions:
    smoothing: float = 0.0  # 0 = follow each frame; towards 1 = heavier smoothing
    gain: float = 1.0  # multiplies every expression value (after the neutral is taken off)
    map_options: MapOptions = LIVE_MAP_OPTIONS

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise GaussianHeadsError("smoothing must be in [0, 1)")
        if not np.isfinite(self.gain):
            raise GaussianHeadsError("gain must be a finite number")


@dataclass
class Calibration:
    """Per-channel ``neutral [E]`` and ``gains [E]``, and the neutral head axis-angle ``[3]``."""

    neutral: np.ndarray
    gains: np.ndarray
    head: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def identity(cls, n: int) -> "Calibration":
        return cls(np.zeros(n, np.float32), np.ones(n, np.float32))


@dataclass
class Pose:
    """Slider values: ``expr [E]``, ``jaw/neck/head_rot/translation [3]``, ``eyes [6]``."""

    expr: np.ndarray
    jaw: np.ndarray
    neck: np.ndarray
    head_rot: np.ndarray
    eyes: np.ndarray
    translation: np.ndarray


def _pose_of(seq: ParamSequence, t: int = 0) -> Pose:
    return Pose(seq.expr[t].copy(), seq.jaw[t].copy(), seq.neck[t].copy(), seq.global_rot[t].copy(),
                seq.eyes[t].reshape(6).copy(), seq.translation[t].copy())


def _relative_head(head: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """``[..., 3]`` head axis-angles relative to ``neutral [3]``."""
    if not np.any(neutral):
        return head
    inv = axis_angle_to_quat(-np.asarray(neutral, np.float64))
    return quat_to_axis_angle(quat_mul(np.broadcast_to(inv, head.shape[:-1] + (4,)),
                                       axis_angle_to_quat(head))).astype(np.float32)


class LiveDrive:
    """Turns frames into avatar poses for ``target`` (the avatar's TargetSpec)."""

    def __init__(self, target: TargetSpec, options: DriveOptions = DriveOptions(),
                 calibration: Calibration | None = None):
        self.target = target
        self.options = options
        n = len(target.expr_names)
        self.calibration = calibration or Calibration.identity(n)
        if self.calibration.neutral.shape != (n,) or self.calibration.gains.shape != (n,):
            raise GaussianHeadsError(f"calibration is for {self.calibration.neutral.shape[0]} channels, "
                                     f"the avatar has {n}")
        self._smoothed: Pose | None = None

    def map_frame(self, frame: LiveFrame) -> Pose:
        """``frame`` mapped onto the target, before calibration and smoothing."""
        seq = sequence_from_frames([replace(frame, time=0.0)], fps=frame.rate or 60.0)
        mapped, _ = map_sequence(seq, self.target, options=self.options.map_options)
        return _pose_of(mapped)

    def calibrate(self, pose: Pose) -> Pose:
        c = self.calibration
        expr = (self.options.gain * c.gains * (pose.expr - c.neutral)).astype(np.float32)
        return replace(pose, expr=expr, head_rot=_relative_head(pose.head_rot[None], c.head)[0])

    def step(self, frame: LiveFrame) -> Pose:
        """The pose for the newest ``frame``: mapped, calibrated, smoothed."""
        pose = self.calibrate(self.map_frame(frame))
        a = 1.0 - self.options.smoothing
        prev = self._smoothed
        if prev is not None and a < 1.0:
            pose = Pose(*(p + a * (x - p) for p, x in zip(
                (prev.expr, prev.jaw, prev.neck, prev.head_rot, prev.eyes, prev.translation),
                (pose.expr, pose.jaw, pose.neck, pose.head_rot, pose.eyes, pose.translation))))
        self._smoothed = pose
        return pose

    def set_neutral(self, frame: LiveFrame) -> Calibration:
        """Take ``frame`` (the performer's rest face) as the neutral; gains are kept."""
        pose = self.map_frame(frame)
        self.calibration = Calibration(pose.expr.astype(np.float32), self.calibration.gains,
                                       pose.head_rot.astype(np.float64))
        self._smoothed = None
        return self.calibration

    def calibrate_sequence(self, seq: ParamSequence) -> ParamSequence:
        """A mapped take (target channel order) with the calibration applied (for recording)."""
        c = self.calibration
        expr = self.options.gain * c.gains[None] * (seq.expr - c.neutral[None])
        return seq.replace(expr=expr, global_rot=_relative_head(seq.global_rot, c.head))
