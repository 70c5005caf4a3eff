"""ParamSequence: head parameters over time, the one type every reader returns and every writer takes.

Shapes (T frames, E expression channels, S identity components):
    expr         [T, E]     expression values; channel i is named ``expr_names[i]``
    jaw          [T, 3]     jaw axis-angle, radians, model frame (x = open)
    neck         [T, 3]     neck axis-angle
    global_rot   [T, 3]     global (head) axis-angle
    eyes         [T, 2, 3]  left, right eye axis-angle
    translation  [T, 3]     model-space translation, metres
    shape        [S] or None  identity β, when the file carries one
    weak_perspective [T, 3] or None  per-frame weak-perspective camera (s, tx, ty) of DECA-family
                 trackers (SMIRK, EMOCA): image NDC = s * (x + tx, y + ty), y up; only the dataset
                 builder uses it (``engine.train.tracker``), animation import ignores it

Frames are uniformly spaced: frame k is at time ``k / fps`` seconds. Readers whose source has
irregular timestamps build the sequence with :meth:`ParamSequence.from_samples`, which resamples
onto that grid. ``space`` says what the expression channels mean: ``"arkit"`` (ARKit-52 style
named blendshapes), ``"flame"`` (FLAME expression PCA coefficients, by index) or ``"named"``
(other named channels). ``notes`` holds per-channel remarks (where a curve came from, which unit
conversion was applied), keyed by channel name or by ``jaw``/``neck``/``global_rot``/``eyes``/
``translation``/``shape``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..errors import GaussianHeadsError
from .rotation import interpolate_axis_angle

SPACES: tuple[str, ...] = ("arkit", "flame", "named")
ROTATION_FIELDS: tuple[str, ...] = ("jaw", "neck", "global_rot", "eyes")
PER_FRAME_FIELDS: tuple[str, ...] = ("expr", "jaw", "neck", "global_rot", "eyes", "translation")
_TRAILING: dict[str, tuple[int, ...]] = {
    "jaw": (3,),
    "neck": (3,),
    "global_rot": (3,),
    "eyes": (2, 3),
    "translation": (3,),
}


@dataclass(frozen=True, eq=False)  # holds arrays: compare fields explicitly
class ParamSequence:
    fps: float
    expr_names: tuple[str, ...]
    expr: np.ndarray
    jaw: np.ndarray
    neck: np.ndarray
    global_rot: np.ndarray
    eyes: np.ndarray
    translation: np.ndarray
    shape: np.ndarray | None = None
    space: str = "named"
    source_format: str = ""
    notes: Mapping[str, str] = field(default_factory=dict)
    weak_perspective: np.ndarray | None = None

    def __post_init__(self) -> None:
        fps = float(self.fps)
        if not math.isfinite(fps) or fps <= 0.0:
            raise GaussianHeadsError(f"frame rate must be a positive number, got {self.fps!r}")
        object.__setattr__(self, "fps", fps)
        if self.space not in SPACES:
            raise GaussianHeadsError(f"unknown expression space {self.space!r}; expected one of {SPACES}")
        names = tuple(str(n) for n in self.expr_names)
        object.__setattr__(self, "expr_names", names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise GaussianHeadsError(f"duplicated expression channel names: {', '.join(dupes)}")
        expr = np.ascontiguousarray(self.expr, dtype=np.float32)
        if expr.ndim != 2 or expr.shape[1] != len(names):
            raise GaussianHeadsError(
                f"expr has shape {expr.shape}, expected (T, {len(names)}) for {len(names)} named channels"
            )
        T = expr.shape[0]
        if T < 1:
            raise GaussianHeadsError("the animation has no frames")
        object.__setattr__(self, "expr", expr)
        for name, trailing in _TRAILING.items():
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float32)
            if arr.shape != (T,) + trailing:
                want = ", ".join(str(s) for s in (T,) + trailing)
                raise GaussianHeadsError(f"{name} has shape {arr.shape}, expected ({want})")
            object.__setattr__(self, name, arr)
        for name in PER_FRAME_FIELDS:
            arr = getattr(self, name)
            if not np.isfinite(arr).all():
                bad = np.argwhere(~np.isfinite(arr.reshape(T, -1)))[0]
                raise GaussianHeadsError(
                    f"{name} holds a non-finite value (NaN or infinity) at frame {int(bad[0])}"
                )
        if self.shape is not None:
            shape = np.ascontiguousarray(self.shape, dtype=np.float32).reshape(-1)
            if not np.isfinite(shape).all():
                raise GaussianHeadsError("shape holds a non-finite value (NaN or infinity)")
            object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "notes", dict(self.notes))
        if self.weak_perspective is not None:
            cams = np.ascontiguousarray(self.weak_perspective, dtype=np.float32)
            if cams.shape != (T, 3):
                raise GaussianHeadsError(f"weak_perspective has shape {cams.shape}, expected ({T}, 3)")
            if not np.isfinite(cams).all() or (cams[:, 0] <= 0).any():
                raise GaussianHeadsError("weak_perspective holds a non-finite value or a scale <= 0")
            object.__setattr__(self, "weak_perspective", cams)

    # ------------------------------------------------------------------ construction
    @classmethod
    def zeros(
        cls,
        n_frames: int,
        expr_names: tuple[str, ...] | list[str] = (),
        *,
        fps: float = 30.0,
        space: str = "named",
        source_format: str = "",
    ) -> "ParamSequence":
        """A neutral sequence of ``n_frames`` frames (all curves zero)."""
        T, E = int(n_frames), len(expr_names)
        z = lambda *s: np.zeros((T,) + s, np.float32)  # noqa: E731
        return cls(fps, tuple(expr_names), z(E), z(3), z(3), z(3), z(2, 3), z(3), None, space, source_format)

    @classmethod
    def from_samples(cls, times: np.ndarray, fps: float, **fields) -> "ParamSequence":
        """Build a uniform sequence at ``fps`` from samples at ``times [T]`` seconds.

        ``fields`` are the dataclass fields (per-frame arrays with leading dimension T). Times must
        not decrease; the grid starts at ``times[0]``. Samples that already lie on the grid (to
        1e-4 of a frame) are used as they are, so a regular take is not interpolated at all.
        """
        times = np.asarray(times, np.float64).reshape(-1)
        if times.size == 0:
            raise GaussianHeadsError("the animation has no frames")
        if np.any(np.diff(times) < 0):
            raise GaussianHeadsError("sample times go backwards")
        rel = (times - times[0]) * float(fps)
        if np.all(np.abs(rel - np.arange(times.size)) < 1e-4):
            return cls(fps=fps, **fields)
        seq = cls(fps=fps, **fields)
        # Remove exact duplicate timestamps (keep the last sample of each).
        keep = np.r_[np.diff(times) > 0, True]
        src = times[keep] - times[0]
        n_out = int(math.floor(src[-1] * fps + 1e-6)) + 1
        return seq._interpolated(src, np.arange(n_out) / float(fps), keep)

    # ------------------------------------------------------------------ properties
    @property
    def n_frames(self) -> int:
        return int(self.expr.shape[0])

    @property
    def n_expr(self) -> int:
        return int(self.expr.shape[1])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.n_frames - 1) / self.fps

    @property
    def times(self) -> np.ndarray:
        """``[T]`` frame times in seconds (float64)."""
        return np.arange(self.n_frames, dtype=np.float64) / self.fps

    def replace(self, **changes) -> "ParamSequence":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def channel(self, name: str) -> np.ndarray:
        """``[T]`` values of the expression channel ``name`` (exact name)."""
        try:
            return self.expr[:, self.expr_names.index(name)]
        except ValueError:
            raise GaussianHeadsError(f"no expression channel named {name!r}") from None

    def channel_names(self) -> list[str]:
        """Every animated channel: expression names, then the joint/translation groups."""
        return list(self.expr_names) + ["jaw", "neck", "global_rot", "eyes", "translation"]

    # ------------------------------------------------------------------ slicing
    def __getitem__(self, index: slice) -> "ParamSequence":
        """Frames ``index`` (a slice with step ≥ 1); a step k divides the frame rate by k."""
        if not isinstance(index, slice):
            raise TypeError("ParamSequence supports slicing only, e.g. seq[10:100]")
        start, stop, step = index.indices(self.n_frames)
        if step < 1:
            raise GaussianHeadsError("a slice of frames must go forwards")
        if len(range(start, stop, step)) == 0:
            raise GaussianHeadsError(f"frames {start}:{stop} select nothing from {self.n_frames} frames")
        sl = slice(start, stop, step)
        cams = None if self.weak_perspective is None else self.weak_perspective[sl]
        return self.replace(fps=self.fps / step, weak_perspective=cams,
                            **{n: getattr(self, n)[sl] for n in PER_FRAME_FIELDS})

    def slice_seconds(self, start: float, stop: float) -> "ParamSequence":
        """Frames whose times lie in ``[start, stop]`` seconds."""
        a = max(0, int(math.ceil(start * self.fps - 1e-6)))
        b = min(self.n_frames, int(math.floor(stop * self.fps + 1e-6)) + 1)
        return self[a:b]

    # ------------------------------------------------------------------ resampling
    def resample(self, fps: float) -> "ParamSequence":
        """The same motion at another frame rate.

        Scalar curves (expression, translation) are interpolated linearly; rotations (jaw, neck,
        global, eyes) by slerp between neighbouring samples, so they stay valid rotations and take
        the shorter arc. The duration is kept; the last output frame is the last one that fits.
        """
        fps = float(fps)
        if not math.isfinite(fps) or fps <= 0.0:
            raise GaussianHeadsError(f"frame rate must be a positive number, got {fps!r}")
        if abs(fps - self.fps) < 1e-9:
            return self
        n_out = int(math.floor(self.duration * fps + 1e-6)) + 1
        out = self._interpolated(self.times, np.arange(n_out, dtype=np.float64) / fps, None)
        return out.replace(fps=fps)

    def _interpolated(self, src_t: np.ndarray, dst_t: np.ndarray, keep: np.ndarray | None) -> "ParamSequence":
        """Interpolate every per-frame field from ``src_t`` onto ``dst_t`` (rows ``keep`` of self)."""
        fields = {}
        for name in PER_FRAME_FIELDS:
            arr = getattr(self, name)
            if keep is not None:
                arr = arr[keep]
            if name in ROTATION_FIELDS:
                fields[name] = interpolate_axis_angle(arr, src_t, dst_t).astype(np.float32)
            else:
                fields[name] = _lerp_rows(arr, src_t, dst_t)
        if self.weak_perspective is not None:
            cams = self.weak_perspective if keep is None else self.weak_perspective[keep]
            fields["weak_perspective"] = _lerp_rows(cams, src_t, dst_t)
        return self.replace(**fields)


def _lerp_rows(arr: np.ndarray, src_t: np.ndarray, dst_t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``arr [T, ...]`` from ``src_t [T]`` to ``dst_t [U]`` -> ``[U, ...]`` float32."""
    T = arr.shape[0]
    flat = arr.reshape(T, -1).astype(np.float64)
    if T == 1:
        return np.repeat(arr, len(dst_t), axis=0).astype(np.float32)
    idx = np.clip(np.searchsorted(src_t, dst_t, side="right") - 1, 0, T - 2)
    t0, t1 = src_t[idx], src_t[idx + 1]
    w = np.clip((dst_t - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0)[:, None]
    out = flat[idx] * (1.0 - w) + flat[idx + 1] * w
    return out.reshape((len(dst_t),) + arr.shape[1:]).astype(np.float32)
