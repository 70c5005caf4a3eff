"""Named-channel curves: CSV with a header row, and JSON (name -> list, or Audio2Face).

CSV: the first row names the channels; an optional time column (``time``, ``t``, ``seconds``,
``timestamp``, ``time_s``: seconds), frame column (``frame``, ``frames``, ``frame_index``,
``index``: frame numbers) or ``timecode`` column (``HH:MM:SS:FF.fff``) gives the timing; every
other column is a channel. Without a time column rows are frames at ``DEFAULT_FPS``; with a frame
column the rate is ``DEFAULT_FPS`` too unless a ``fps`` value is known; with seconds the rate is
1 / (median step), rounded to a whole number when within 0.1 %. Streamed (bounded memory).

JSON, any of::

    {"jawOpen": [0.0, 0.1, ...], "eyeBlinkLeft": [...]}                       channel -> values
    {"fps": 30, "channels": {"jawOpen": [...], ...}}                           (also "curves")
    {"exportFps": 30, "facsNames": ["jawOpen", ...], "weightMat": [[...], ...]}   Audio2Face, [T, C]

The frame rate is read from ``fps``, ``exportFps``, ``frameRate`` or ``frame_rate`` when present.
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..names import arkit_canonical, looks_arkit, normalize_name
from ..sequence import ParamSequence
from ._json import load_json
from .csv_stream import CsvColumns, stream_csv
from .livelink import parse_timecodes, timecode_rate

DEFAULT_FPS = 30.0
TIME_COLUMNS = {"time", "t", "seconds", "timestamp", "times", "timesec", "times", "sec"}
FRAME_COLUMNS = {"frame", "frames", "frameindex", "index", "framenumber", "frameno"}
FPS_KEYS = ("fps", "exportFps", "frameRate", "frame_rate", "framerate")
JSON_MAX_BYTES = 512 * 1024 * 1024


def _channels_sequence(path, names, values, fps, notes, source_format, times=None) -> ParamSequence:
    """Build a sequence of named channels ``values [T, C]`` (ARKit names canonicalised)."""
    seen = {}
    for i, n in enumerate(names):
        k = normalize_name(n)
        if not k:
            raise InputFileError(path, f"channel {i + 1} has no name")
        if k in seen:
            raise InputFileError(path, f"channel {n!r} appears twice (as {names[seen[k]]!r} and {n!r})")
        seen[k] = i
    values = np.asarray(values, np.float32)
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise InputFileError(path, f"frame {int(r)} has a non-finite value (NaN or infinity) in channel {names[c]!r}")
    arkit = looks_arkit(names)
    out_names = tuple((arkit_canonical(n) or n) if arkit else n for n in names)
    T = values.shape[0]
    z = np.zeros((T, 3), np.float32)
    fields = dict(
        expr_names=out_names, expr=values, jaw=z, neck=z, global_rot=z,
        eyes=np.zeros((T, 2, 3), np.float32), translation=z, shape=None,
        space="arkit" if arkit else "named", source_format=source_format, notes=notes,
    )
    try:
        if times is None:
            return ParamSequence(fps=fps, **fields)
        return ParamSequence.from_samples(times, fps, **fields)
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None


def _rate_from_times(times: np.ndarray) -> float:
    steps = np.diff(times)
    steps = steps[steps > 0]
    if steps.size == 0:
        return DEFAULT_FPS
    fps = 1.0 / float(np.median(steps))
    if abs(fps - round(fps)) < 1e-3 * fps:
        fps = float(round(fps))
    return fps


def read_named_csv(path: str | os.PathLike) -> ParamSequence:
    """A named-channel CSV as a ParamSequence (space "arkit" when most names are ARKit-52)."""
    path = os.fspath(path)
    state: dict = {}

    def choose(header: list[str]) -> CsvColumns:
        keys = [normalize_name(h) for h in header]
        time_col = kind = None
        for i, k in enumerate(keys):
            if k in TIME_COLUMNS or k in FRAME_COLUMNS or k == "timecode":
                if time_col is not None:
                    raise InputFileError(path, f"has two time columns ({header[time_col]!r} and {header[i]!r})")
                time_col = i
                kind = "seconds" if k in TIME_COLUMNS else ("frames" if k in FRAME_COLUMNS else "timecode")
        numeric = tuple(i for i in range(len(header)) if i != time_col)
        if not numeric:
            raise InputFileError(path, "has no channel columns")
        state["names"] = [header[i] for i in numeric]
        state["kind"] = kind
        if time_col is None:
            return CsvColumns(numeric=numeric)
        if kind == "timecode":
            return CsvColumns(numeric, time_col, lambda t, lines: parse_timecodes(t, lines, path), 2)
        return CsvColumns(numeric, time_col, lambda t, lines: _numbers(path, t, lines, header[time_col]), 1)

    table = stream_csv(path, choose)
    names, kind = state["names"], state["kind"]
    notes: dict[str, str] = {}
    times = None
    if kind is None:
        fps = DEFAULT_FPS
        notes["fps"] = f"no time column; rows are frames at an assumed {DEFAULT_FPS:g} fps"
    elif kind == "seconds":
        times = table.time[:, 0]
        fps = _rate_from_times(times)
        times = times - times[0]
    elif kind == "frames":
        fps = DEFAULT_FPS
        notes["fps"] = f"frame numbers without a rate; assumed {DEFAULT_FPS:g} fps"
        times = (table.time[:, 0] - table.time[0, 0]) / fps
    else:
        secs, frames = table.time[:, 0], table.time[:, 1]
        rate, note = timecode_rate(secs, frames)
        times = secs + frames / rate
        times = times - times[0]
        fps = float(rate)
        if note:
            notes["fps"] = note
    if times is not None and np.any(np.diff(times) < 0):
        bad = int(np.argmax(np.diff(times) < 0)) + 2
        raise InputFileError(path, f"the time column goes backwards at data row {bad}")
    return _channels_sequence(path, names, table.values, fps, notes, "named_csv", times)


def _numbers(path, texts, lines, column) -> np.ndarray:
    try:
        out = np.array(texts, dtype=np.float64)
    except ValueError:
        for t, line in zip(texts, lines):
            try:
                float(t)
            except ValueError:
                raise InputFileError(path, f"line {line} has {t!r} in the time column {column!r}") from None
        raise
    if not np.isfinite(out).all():
        bad = lines[int(np.argmax(~np.isfinite(out)))]
        raise InputFileError(path, f"line {bad} has a non-finite time")
    return out


def read_named_json(path: str | os.PathLike) -> ParamSequence:
    """A named-channel JSON file (channel lists or Audio2Face) as a ParamSequence."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such file")
    size = os.path.getsize(path)
    if size == 0:
        raise InputFileError(path, "the file is empty")
    if size > JSON_MAX_BYTES:
        raise InputFileError(path, f"is {size / 2**20:.0f} MiB; JSON curves above {JSON_MAX_BYTES / 2**20:.0f} MiB are refused (use CSV, which is streamed)")
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "holds no JSON object of channels")
    fps = None
    for key in FPS_KEYS:
        if key in data:
            try:
                fps = float(data[key])
            except (TypeError, ValueError):
                raise InputFileError(path, f"{key!r} is {data[key]!r}, not a number") from None
            if not np.isfinite(fps) or fps <= 0:
                raise InputFileError(path, f"{key!r} is {fps}, expected a positive number")
            break
    notes: dict[str, str] = {}
    if fps is None:
        fps = DEFAULT_FPS
        notes["fps"] = f"the file stores no frame rate; assumed {DEFAULT_FPS:g} fps"
    if "facsNames" in data or "weightMat" in data:
        names = data.get("facsNames")
        mat = data.get("weightMat")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputFileError(path, "'facsNames' is not a list of names")
        values = _matrix(path, mat, "weightMat")
        if values.shape[1] != len(names):
            raise InputFileError(path, f"'weightMat' has {values.shape[1]} columns for {len(names)} facsNames")
        return _channels_sequence(path, names, values, fps, notes, "audio2face_json")
    channels = data.get("channels", data.get("curves", data))
    if not isinstance(channels, dict):
        raise InputFileError(path, "'channels' is not an object of name -> list of values")
    names, cols = [], []
    for name, vals in channels.items():
        if name in FPS_KEYS and channels is data:
            continue
        if not isinstance(vals, list):
            if channels is data:
                continue  # other metadata beside the curves
            raise InputFileError(path, f"channel {name!r} is not a list of numbers")
        names.append(name)
        cols.append(vals)
    if not names:
        raise InputFileError(path, "holds no channels (expected name -> list of numbers)")
    lengths = {len(c) for c in cols}
    if len(lengths) != 1:
        raise InputFileError(path, f"channels have different lengths: {sorted(lengths)}")
    values = _matrix(path, cols, "channels").T
    return _channels_sequence(path, names, values, fps, notes, "named_json")


def _matrix(path, rows, what) -> np.ndarray:
    if not isinstance(rows, list) or not rows:
        raise InputFileError(path, f"{what!r} is empty or not a list")
    try:
        arr = np.array(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputFileError(path, f"{what!r} holds rows of different lengths or values that are not numbers") from None
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise InputFileError(path, f"{what!r} has shape {arr.shape}, expected a [frames, channels] table")
    return arr
