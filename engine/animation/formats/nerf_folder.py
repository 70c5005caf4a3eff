"""NeRF-style exports (VHAP, GaussianAvatars): ``transforms_{train,val,test}.json`` + per-frame npz.

Layout::

    folder/
      transforms_train.json   {"frames": [{"timestep_index": 0, "flame_param_path": "flame_param/00000.npz", ...}, ...]}
      transforms_val.json     (optional, same form; also transforms_test.json / transforms.json)
      flame_param/00000.npz   per-frame FLAME parameters (expr [1,E] or [E], rotation, neck_pose, ...)
      canonical_flame_param.npz   identity shape (and static offsets), optional

Several cameras share one timestep, so frames are de-duplicated by ``timestep_index`` and sorted
by it (an export without timestep indices is ordered by the first appearance of each per-frame
file). A timestep missing from the indices is filled by interpolation (the sequence stays on a
uniform grid). The frame rate is the JSON's ``fps`` when present, else ``DEFAULT_FPS``.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..sequence import ParamSequence
from ._json import load_json
from ._safe_numpy import load_npz
from .flame_npz import DEFAULT_FPS, _ALL_KEYS, fields_from_arrays


def transforms_files(folder: str) -> list[str]:
    """The transforms*.json files of a NeRF-style export folder (sorted), possibly empty."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), "transforms*.json")))


def _read_json(path: str) -> dict:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputFileError(path, "has no 'frames' list")
    return data


def read_nerf_folder(path: str | os.PathLike) -> ParamSequence:
    """A NeRF-style export folder (or one of its transforms*.json files) as a ParamSequence."""
    path = os.fspath(path)
    if os.path.isfile(path):
        folder, files = os.path.dirname(path) or ".", [path]
    else:
        folder, files = path, transforms_files(path)
    if not files:
        raise InputFileError(path, "holds no transforms*.json file")
    by_step: dict[int, str] = {}
    unindexed: list[str] = []  # frames without timestep_index: ordered by first appearance of their file
    fps = None
    for jf in files:
        data = _read_json(jf)
        if fps is None and isinstance(data.get("fps"), (int, float)):
            fps = float(data["fps"])
        for i, frame in enumerate(data["frames"]):
            if not isinstance(frame, dict) or "flame_param_path" not in frame:
                raise InputFileError(jf, f"frame {i} has no 'flame_param_path'")
            rel = str(frame["flame_param_path"])
            full = os.path.normpath(os.path.join(os.path.dirname(jf), rel))
            if "timestep_index" not in frame:
                if full not in unindexed:
                    unindexed.append(full)
                continue
            step = frame["timestep_index"]
            if not isinstance(step, int) or isinstance(step, bool):
                raise InputFileError(jf, f"frame {i} has a non-integer 'timestep_index' {step!r}")
            by_step.setdefault(step, full)
    if unindexed:
        if by_step:
            raise InputFileError(path, "some frames have a 'timestep_index' and some do not")
        by_step = dict(enumerate(unindexed))
    if not by_step:
        raise InputFileError(path, "lists no frames")
    steps = sorted(by_step)
    per_frame = []
    for s in steps:
        arrays = load_npz(by_step[s], _ALL_KEYS)
        per_frame.append(fields_from_arrays(arrays, by_step[s], n_frames=1))
    widths = {f["expr"].shape[1] for f in per_frame}
    if len(widths) != 1:
        raise InputFileError(path, f"per-frame files disagree on the number of expression channels: {sorted(widths)}")
    fields = {k: np.concatenate([f[k] for f in per_frame]) for k in ("expr", "jaw", "neck", "global_rot", "eyes", "translation")}
    fields["expr_names"] = per_frame[0]["expr_names"]
    fields["shape"] = per_frame[0]["shape"]
    canonical = os.path.join(folder, "canonical_flame_param.npz")
    if os.path.isfile(canonical):
        arrays = load_npz(canonical, ("shape",))
        if "shape" in arrays:
            fields["shape"] = np.asarray(arrays["shape"], np.float32).reshape(-1)
    notes = {}
    if fps is None:
        fps = DEFAULT_FPS
        notes["fps"] = f"the export stores no frame rate; assumed {DEFAULT_FPS:g} fps"
    times = (np.asarray(steps, np.float64) - steps[0]) / fps
    if len(steps) > 1 and steps[-1] - steps[0] + 1 != len(steps):
        notes["frames"] = f"{steps[-1] - steps[0] + 1 - len(steps)} missing timesteps were interpolated"
    try:
        return ParamSequence.from_samples(times, fps, space="flame", source_format="nerf_export", notes=notes, **fields)
    except GaussianHeadsError as exc:
        raise InputFileError(path, str(exc)) from None
