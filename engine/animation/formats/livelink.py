"""Live Link Face CSV (Epic's iPhone app): read (streamed) and write.

Columns: ``Timecode,BlendShapeCount,`` the 52 ARKit blendshapes (PascalCase, 0…1), then
``HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,
RightEyeRoll``. Timecodes are ``HH:MM:SS:FF.fff``: FF is the frame within the second at the
timecode rate (60 in the app's takes) and ``.fff`` the sub-frame.

Frame rate: the timecode rate is read from the frame field (the largest frame number seen before
the seconds roll over, snapped up to a standard rate: 24, 25, 30, 48, 50, 60, 72, 90, 100, 120,
240); a take shorter than one second assumes 60. Frame times come from the timecodes
(seconds + FF.fff / rate); the sequence's rate is the timecode rate divided by the typical frame
step (a 30 fps capture stamped with 60 fps timecodes steps by 2), and the samples are
interpolated onto that uniform grid, so dropped or jittered rows keep their real timing.

Rotation units (researched 2026-11, public sources): the app sends head and eye rotations as
values in [-1, 1] — PyLiveLinkFace (nmfisher/blender_livelinkface, ``pylivelinkface.py``
docstring: "between -1 and 1 for the head rotation (yaw, pitch, roll)"; its author confirms the
(-1, 1) range in issue #3) — and the same author's Flutter/Filament driver maps a value of 1 to a
quarter turn (``Quaternion.axisAngle(axis, pi / 2)`` per HeadYaw/HeadPitch/HeadRoll). Another
bridge (Neill3d/PyLiveLinkFace ``live_link_redirect_osc.py``) treats the values as radians. We use
the quarter-turn reading: **1.0 = π/2 rad = 90°**, ``ROTATION_UNIT`` below, the same for the eyes.
Axes (our model frame, +Y up, +Z forward, +X the subject's left): yaw about +Y, pitch about +X,
roll about +Z, composed R = R_y(yaw)·R_x(pitch)·R_z(roll) into the axis-angle ``global_rot``
(HeadYaw/Pitch/Roll) and ``eyes[:, 0]`` / ``eyes[:, 1]`` (Left/RightEye…). Writing inverts this.
"""

from __future__ import annotations

import math
import os
import re
import warnings

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..names import (
    ARKIT_NAMES,
    LIVE_LINK_BLENDSHAPES,
    LIVE_LINK_EYES,
    LIVE_LINK_HEAD,
    LIVE_LINK_ROTATIONS,
    arkit_canonical,
    normalize_name,
)
from ..rotation import (
    axis_angle_to_quat,
    axis_angle_to_yaw_pitch_roll,
    quat_mul,
    quat_to_axis_angle,
    yaw_pitch_roll_to_axis_angle,
)
from ..sequence import ParamSequence
from .csv_stream import CsvColumns, stream_csv

ROTATION_UNIT = math.pi / 2.0  # radians per Live Link rotation unit (see the module docstring)
STANDARD_RATES = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 240)
DEFAULT_TIMECODE_RATE = 60
_TIMECODE = re.compile(r"^\s*(\d+):(\d+):(\d+)[:;.](\d+(?:\.\d*)?)\s*$")


def is_live_link_header(header: list[str]) -> bool:
    keys = [normalize_name(h) for h in header]
    return bool(keys) and keys[0] == "timecode" and "blendshapecount" in keys


def parse_timecodes(texts: list[str], lines: list[int], path: str = "") -> np.ndarray:
    """``HH:MM:SS:FF.fff`` strings -> ``[k, 2]`` float64 (whole seconds, frame field with sub-frame)."""
    # Fast path: the four ':'-separated fields of every cell parsed by numpy in one call.
    joined = ":".join(texts)
    if ";" not in joined and joined.count(":") == 4 * len(texts) - 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = np.fromstring(joined, dtype=np.float64, sep=":")
        if f.size == 4 * len(texts) and np.isfinite(f).all():
            f = f.reshape(-1, 4)
            whole = f[:, :3]
            if np.all(whole == np.floor(whole)) and np.all(whole >= 0) and np.all(f[:, 3] >= 0):
                return np.stack([f[:, 0] * 3600 + f[:, 1] * 60 + f[:, 2], f[:, 3]], axis=1)
    out = np.empty((len(texts), 2), np.float64)
    for i, text in enumerate(texts):
        m = _TIMECODE.match(text)
        if m is None:
            raise InputFileError(path, f"line {lines[i]} has the timecode {text!r}; expected HH:MM:SS:FF.fff")
        h, mi, s, ff = m.groups()
        out[i, 0] = int(h) * 3600 + int(mi) * 60 + int(s)
        out[i, 1] = float(ff)
    return out


def timecode_rate(secs: np.ndarray, frames: np.ndarray) -> tuple[int, str | None]:
    """The timecode rate from the frame field: (rate, a note when it had to be assumed)."""
    max_frame = int(np.floor(frames.max())) if frames.size else 0
    rolled = bool(np.any(np.diff(secs) != 0))
    need = max_frame + 1
    rate = next((r for r in STANDARD_RATES if r >= need), need)
    if not rolled:
        if rate < DEFAULT_TIMECODE_RATE:
            return DEFAULT_TIMECODE_RATE, (
                f"the take is shorter than one second; timecode rate assumed {DEFAULT_TIMECODE_RATE}"
            )
        return rate, None
    return rate, None


def read_live_link_csv(path: str | os.PathLike) -> ParamSequence:
    """A Live Link Face CSV as a ParamSequence (space "arkit"; head/eye rotations converted).

    Columns that are neither ARKit blendshapes nor the 9 rotations are kept as extra named
    channels (the mapping step reports them). Raises InputFileError for duplicated columns,
    bad timecodes, non-numeric or non-finite values, or a truncated file.
    """
    path = os.fspath(path)
    state: dict = {}

    def choose(header: list[str]) -> CsvColumns:
        if not is_live_link_header(header):
            raise InputFileError(path, "is not a Live Link Face CSV (no Timecode/BlendShapeCount columns)")
        keys = [normalize_name(h) for h in header]
        seen = {}
        for i, k in enumerate(keys):
            if not header[i]:
                raise InputFileError(path, f"column {i + 1} has no name")
            if k in seen:
                raise InputFileError(path, f"column {header[i]!r} appears twice (columns {seen[k] + 1} and {i + 1})")
            seen[k] = i
        numeric = tuple(i for i, k in enumerate(keys) if k not in ("timecode", "blendshapecount"))
        state["names"] = [header[i] for i in numeric]
        return CsvColumns(numeric=numeric, time=keys.index("timecode"),
                          time_parser=lambda t, lines: parse_timecodes(t, lines, path), time_width=2)

    table = stream_csv(path, choose)
    names: list[str] = state["names"]
    values = table.values
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise InputFileError(path, f"row {int(r) + 1} has a non-finite value in column {names[c]!r}")
    secs, frames = table.time[:, 0].copy(), table.time[:, 1]
    day = np.diff(secs) < -43200  # the take crossed midnight
    if day.any():
        secs[1:] += 86400.0 * np.cumsum(day)
    rate, rate_note = timecode_rate(secs, frames)
    times = secs + frames / rate
    steps = np.diff(times) * rate
    if np.any(steps < -1e-6):
        bad = int(np.argmax(steps < -1e-6)) + 2
        raise InputFileError(path, f"timecodes go backwards at data row {bad}")
    step = float(np.median(steps)) if steps.size else 1.0
    k = max(1, int(round(step)))
    fps = rate / k

    index = {normalize_name(n): j for j, n in enumerate(names)}
    T = values.shape[0]

    def col(name: str) -> np.ndarray:
        j = index.get(normalize_name(name))
        return values[:, j].astype(np.float64) if j is not None else np.zeros(T)

    rot_keys = {normalize_name(n) for n in LIVE_LINK_ROTATIONS}
    expr_names, expr_cols = [], []
    for j, n in enumerate(names):
        if normalize_name(n) in rot_keys:
            continue
        expr_names.append(arkit_canonical(n) or n)
        expr_cols.append(j)
    notes = {}
    global_rot = yaw_pitch_roll_to_axis_angle(*(col(n) * ROTATION_UNIT for n in LIVE_LINK_HEAD))
    eyes = np.stack(
        [
            yaw_pitch_roll_to_axis_angle(*(col(n) * ROTATION_UNIT for n in LIVE_LINK_EYES[0:3])),
            yaw_pitch_roll_to_axis_angle(*(col(n) * ROTATION_UNIT for n in LIVE_LINK_EYES[3:6])),
        ],
        axis=1,
    )
    present = [n for n in LIVE_LINK_ROTATIONS if normalize_name(n) in index]
    if any(n in present for n in LIVE_LINK_HEAD):
        notes["global_rot"] = "from HeadYaw/HeadPitch/HeadRoll (1.0 = 90°), yaw about +Y, pitch about +X, roll about +Z"
    if any(n in present for n in LIVE_LINK_EYES):
        notes["eyes"] = "from Left/RightEyeYaw/Pitch/Roll (1.0 = 90°)"
    if rate_note:
        notes["fps"] = rate_note
    if k > 1:
        notes.setdefault("fps", f"timecode rate {rate}, one row every {k} timecode frames")
    known = {normalize_name(n) for n in LIVE_LINK_BLENDSHAPES}
    extra = [n for n in expr_names if normalize_name(n) not in known]
    for n in extra:
        notes[n] = "not an ARKit blendshape"
    try:
        return ParamSequence.from_samples(
            (times - times[0]), fps,
            expr_names=tuple(expr_names), expr=values[:, expr_cols],
            jaw=np.zeros((T, 3), np.float32), neck=np.zeros((T, 3), np.float32),
            global_rot=global_rot, eyes=eyes, translation=np.zeros((T, 3), np.float32),
            shape=None, space="arkit", source_format="live_link_face_csv", notes=notes,
        )
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None


def _format_timecode(seconds: float, rate: int) -> str:
    whole, sub_ms = divmod(max(0, int(round(seconds * rate * 1000.0))), 1000)
    s, ff = divmod(whole, rate)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{sub_ms:03d}"


def write_live_link_csv(seq: ParamSequence, path: str | os.PathLike, *, start_seconds: float = 0.0) -> list[str]:
    """Write ``seq`` as a Live Link Face CSV (61 channels, timecodes at round(fps), 10 decimals).

    Expression channels are matched to the 52 blendshapes by name (case-insensitive); missing ones
    are written as 0 and channels that are not ARKit blendshapes are left out. The head rotation
    written is the whole head's (global ∘ neck), converted from axis-angle to yaw/pitch/roll in
    Live Link units, and the eyes likewise. Without a ``jawOpen`` channel, a jaw rotation about +X
    is written as JawOpen (``JAW_OPEN_RADIANS`` per unit, clipped to [0, 1]). Returns notes on
    what could not be written or was converted.
    """
    from ..mapping import JAW_OPEN_RADIANS

    path = os.fspath(path)
    T = seq.n_frames
    rate = max(1, int(round(seq.fps)))
    index = {normalize_name(n): j for j, n in enumerate(seq.expr_names)}
    cols = np.zeros((T, 61), np.float64)
    notes: list[str] = []
    for c, name in enumerate(ARKIT_NAMES):
        j = index.get(normalize_name(name))
        if j is not None:
            cols[:, c] = seq.expr[:, j]
    known = {normalize_name(n) for n in ARKIT_NAMES}
    dropped = [n for n in seq.expr_names if normalize_name(n) not in known]
    if dropped:
        notes.append(f"{len(dropped)} expression channels are not ARKit blendshapes and were left out "
                     f"({', '.join(dropped[:5])}{', …' if len(dropped) > 5 else ''})")
    if "jawopen" not in index and np.any(seq.jaw[:, 0] != 0):
        cols[:, ARKIT_NAMES.index("jawOpen")] = np.clip(seq.jaw[:, 0] / JAW_OPEN_RADIANS, 0.0, 1.0)
        notes.append(f"jaw rotation written as JawOpen (1.0 = {JAW_OPEN_RADIANS} rad)")
    head = seq.global_rot.astype(np.float64)
    if np.any(seq.neck != 0):
        head = quat_to_axis_angle(quat_mul(axis_angle_to_quat(head), axis_angle_to_quat(seq.neck)))
        notes.append("neck rotation folded into the head rotation")
    yaw, pitch, roll = axis_angle_to_yaw_pitch_roll(head)
    cols[:, 52:55] = np.stack([yaw, pitch, roll], axis=1) / ROTATION_UNIT
    for e in range(2):
        yaw, pitch, roll = axis_angle_to_yaw_pitch_roll(seq.eyes[:, e])
        cols[:, 55 + 3 * e : 58 + 3 * e] = np.stack([yaw, pitch, roll], axis=1) / ROTATION_UNIT
    if np.any(seq.translation != 0):
        notes.append("translation has no Live Link column and was left out")
    header = "Timecode,BlendShapeCount," + ",".join(LIVE_LINK_BLENDSHAPES + LIVE_LINK_ROTATIONS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(header + "\n")
        times = start_seconds + seq.times
        for t in range(T):
            row = ",".join(f"{v:.10f}" for v in cols[t])
            f.write(f"{_format_timecode(times[t], rate)},61,{row}\n")
    return notes
