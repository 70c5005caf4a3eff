"""Frames <-> takes: a list of LiveFrames as a ParamSequence (what every importer reads and
writer writes) and back.

Recording keeps the frames as they came; :func:`sequence_from_frames` orders them by capture
time, resamples them onto a uniform grid at the sender's rate (``ParamSequence.from_samples``,
the readers' own resampling) and names channels as the readers do, so mapping onto an avatar is
the importers' ``prepare_import`` / ``map_sequence`` and nothing else.
"""

from __future__ import annotations

import numpy as np

from ..animation.names import flame_index, looks_arkit
from ..animation.rotation import axis_angle_to_quat, quat_mul, quat_to_axis_angle
from ..animation.sequence import ParamSequence
from ..errors import GaussianHeadsError
from .frame import LiveFrame

STANDARD_RATES = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0, 72.0, 90.0, 100.0, 120.0)


def frame_times(frames: list[LiveFrame]) -> np.ndarray:
    """``[T]`` seconds: capture timestamps when every frame has one, else arrival times."""
    if frames and all(f.time is not None for f in frames):
        return np.array([f.time for f in frames], np.float64)
    return np.array([f.received for f in frames], np.float64)


def grid_arrivals(times: np.ndarray, rate: float) -> np.ndarray:
    """Arrival times ``[T]`` (sorted) placed on the sender's frame grid, for protocols without
    capture timestamps: each frame takes its nearest slot ``k / rate``, and since a packet can
    arrive late but never before it was sent, frames that land on the same slot (a late packet,
    or a burst after a stall) move back to the free slots before it. Network jitter below half a
    frame thus leaves the values exactly as sent. Returns ``[T]`` seconds from the first slot."""
    k = np.rint((times - times[0]) * rate).astype(np.int64)
    for i in range(k.size - 2, -1, -1):
        k[i] = min(k[i], k[i + 1] - 1)
    return (k - k[0]) / float(rate)


def estimate_rate(frames: list[LiveFrame], times: np.ndarray) -> float:
    """The take's frame rate: the rate the packets state (Live Link), else 1 / median step,
    snapped to a standard rate within 3 %."""
    stated = [f.rate for f in frames if f.rate]
    if stated:
        return float(np.median(stated))
    steps = np.diff(np.sort(times))
    steps = steps[steps > 1e-6]
    if steps.size == 0:
        return 60.0
    fps = 1.0 / float(np.median(steps))
    near = min(STANDARD_RATES, key=lambda r: abs(r - fps))
    return near if abs(near - fps) < 0.03 * near else fps


def _space(names) -> str:
    if looks_arkit(names):
        return "arkit"
    if names and all(flame_index(n) is not None for n in names):
        return "flame"
    return "named"


def sequence_from_frames(frames: list[LiveFrame], fps: float | None = None, *,
                         source_format: str = "live") -> ParamSequence:
    """The take ``frames`` as a ParamSequence (uniform at ``fps`` or the estimated rate).

    Channels are the union of every frame's names in first-seen order; a channel missing from a
    frame holds its previous value (0 before its first). Frames are sorted by time and repeated
    timestamps keep the last frame. Raises GaussianHeadsError for an empty take.
    """
    if not frames:
        raise GaussianHeadsError("the take is empty: no frame was received")
    times = frame_times(frames)
    order = np.argsort(times, kind="stable")
    frames = [frames[i] for i in order]
    times = times[order]
    names: dict[str, int] = {}
    for f in frames:
        for n in f.values:
            names.setdefault(n, len(names))
    T, E = len(frames), len(names)
    expr = np.full((T, E), np.nan, np.float32)
    head = np.zeros((T, 3), np.float32)
    eyes = np.zeros((T, 2, 3), np.float32)
    translation = np.zeros((T, 3), np.float32)
    for t, f in enumerate(frames):
        for n, v in f.values.items():
            expr[t, names[n]] = v
        if f.head is not None:
            head[t] = f.head
        if f.eyes is not None:
            eyes[t] = f.eyes
        if f.translation is not None:
            translation[t] = f.translation
    for j in range(E):  # hold the previous value where a frame lacks a channel
        col = expr[:, j]
        missing = np.isnan(col)
        if missing.any():
            idx = np.where(~missing, np.arange(T), 0)
            np.maximum.accumulate(idx, out=idx)
            filled = col[idx]
            filled[np.isnan(filled)] = 0.0
            expr[:, j] = filled
    rate = float(fps) if fps else estimate_rate(frames, times)
    if not all(f.time is not None for f in frames):  # arrival times: snap to the frame grid
        times = grid_arrivals(times, rate)
    keep = np.r_[np.diff(times) > 1e-9, True]  # repeated timestamps: the last frame wins
    z = np.zeros((int(keep.sum()), 3), np.float32)
    return ParamSequence.from_samples(
        times[keep] - times[keep][0], rate, expr_names=tuple(names), expr=expr[keep], jaw=z, neck=z,
        global_rot=head[keep], eyes=eyes[keep], translation=translation[keep], shape=None,
        space=_space(tuple(names)), source_format=source_format,
    )


def frames_from_sequence(seq: ParamSequence, *, start_time: float = 0.0) -> list[LiveFrame]:
    """One LiveFrame per frame of ``seq`` (time ``start_time + k / fps``, rate ``seq.fps``).

    The head rotation sent is the whole head's (global ∘ neck), as the Live Link CSV writer does;
    jaw rotation has no place in these protocols and is left out.
    """
    head = seq.global_rot.astype(np.float64)
    if np.any(seq.neck != 0):
        head = quat_to_axis_angle(quat_mul(axis_angle_to_quat(head), axis_angle_to_quat(seq.neck)))
    has_head = bool(np.any(head != 0))
    has_eyes = bool(np.any(seq.eyes != 0))
    has_pos = bool(np.any(seq.translation != 0))
    times = start_time + seq.times
    out = []
    for t in range(seq.n_frames):
        out.append(LiveFrame(
            values={n: float(v) for n, v in zip(seq.expr_names, seq.expr[t])},
            head=tuple(float(x) for x in head[t]) if has_head else None,
            eyes=(tuple(map(float, seq.eyes[t, 0])), tuple(map(float, seq.eyes[t, 1]))) if has_eyes else None,
            translation=tuple(float(x) for x in seq.translation[t]) if has_pos else None,
            time=float(times[t]), rate=seq.fps,
        ))
    return out
