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

The parsing is shared with the training-dataset builder (``engine/train/nerf_export.py``), which
keeps every frame as one image with its own camera: :func:`list_export` (the frames of the JSON
files), :func:`frame_timesteps` (the de-duplication) and :func:`load_timestep_fields` (the
per-timestep parameters, not interpolated).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

from ...errors import GaussianHeadsError, InputFileError
from ..sequence import ParamSequence
from ._json import load_json
from ._safe_numpy import load_npz
from .flame_npz import DEFAULT_FPS, _ALL_KEYS, fields_from_arrays

PER_TIMESTEP_FIELDS = ("expr", "jaw", "neck", "global_rot", "eyes", "translation")


def transforms_files(folder: str) -> list[str]:
    """The transforms*.json files of a NeRF-style export folder (sorted), possibly empty."""
    return sorted(glob.glob(os.path.join(glob.escape(folder), "transforms*.json")))


@dataclass(frozen=True)
class ExportFrame:
    """One entry of a transforms*.json ``frames`` list."""

    json_path: str          # the transforms*.json file that lists it
    index: int              # its position in that file's ``frames``
    entry: dict             # the entry as parsed (file_path, transform_matrix, intrinsics, ...)
    param_path: str         # ``flame_param_path`` joined to the JSON's folder and normalised
    timestep: int | None    # ``timestep_index``, None when the export has none


@dataclass(frozen=True)
class ExportListing:
    """The frames of an export's transforms*.json files, in file order then list order."""

    path: str                       # what was asked for (folder or one JSON file)
    folder: str                     # the export folder (canonical_flame_param.npz lives here)
    documents: dict[str, dict]      # transforms file -> its parsed top-level object
    frames: tuple[ExportFrame, ...]
    fps: float | None               # the first JSON ``fps`` found, None when none is


def list_export(path: str | os.PathLike, files: list[str] | None = None) -> ExportListing:
    """The frames of a NeRF-style export folder (or of one transforms*.json file).

    files: the transforms files to read (default: all of the folder's, or the one file given).
    Raises InputFileError naming the JSON for a missing ``frames`` list, a frame without
    ``flame_param_path`` or a non-integer ``timestep_index``.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        folder, found = os.path.dirname(path) or ".", [path]
    else:
        folder, found = path, transforms_files(path)
    files = found if files is None else list(files)
    if not files:
        raise InputFileError(path, "holds no transforms*.json file")
    documents: dict[str, dict] = {}
    frames: list[ExportFrame] = []
    fps = None
    for jf in files:
        data = load_json(jf)
        if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
            raise InputFileError(jf, "has no 'frames' list")
        documents[jf] = data
        if fps is None and isinstance(data.get("fps"), (int, float)) and not isinstance(data["fps"], bool):
            fps = float(data["fps"])
        for i, frame in enumerate(data["frames"]):
            if not isinstance(frame, dict) or "flame_param_path" not in frame:
                raise InputFileError(jf, f"frame {i} has no 'flame_param_path'")
            rel = frame["flame_param_path"]
            if not isinstance(rel, str) or not rel or "\x00" in rel:
                raise InputFileError(jf, f"frame {i} has a 'flame_param_path' that is not a file path: {rel!r}")
            step = frame.get("timestep_index")
            if "timestep_index" in frame and (not isinstance(step, int) or isinstance(step, bool)):
                raise InputFileError(jf, f"frame {i} has a non-integer 'timestep_index' {step!r}")
            full = os.path.normpath(os.path.join(os.path.dirname(jf), rel))
            frames.append(ExportFrame(jf, i, frame, full, step))
    return ExportListing(path, folder, documents, tuple(frames), fps)


def frame_timesteps(listing: ExportListing) -> tuple[dict[int, str], list[int]]:
    """(timestep -> per-timestep npz path, the timestep of every listed frame).

    Frames without ``timestep_index`` are numbered by the first appearance of their npz file.
    Raises InputFileError when only some frames are indexed or when one timestep names two files.
    """
    indexed = [f.timestep is not None for f in listing.frames]
    if any(indexed) and not all(indexed):
        raise InputFileError(listing.path, "some frames have a 'timestep_index' and some do not")
    by_step: dict[int, str] = {}
    steps: list[int] = []
    if listing.frames and not indexed[0]:
        order: dict[str, int] = {}
        for f in listing.frames:
            steps.append(order.setdefault(f.param_path, len(order)))
        return {s: p for p, s in order.items()}, steps
    for f in listing.frames:
        known = by_step.setdefault(f.timestep, f.param_path)
        if known != f.param_path:
            raise InputFileError(f.json_path, f"frame {f.index}: timestep {f.timestep} names {f.param_path} "
                                              f"but an earlier frame of that timestep names {known}")
        steps.append(f.timestep)
    return by_step, steps


def load_timestep_fields(listing: ExportListing, by_step: dict[int, str]) -> tuple[list[int], dict]:
    """(sorted timesteps, ParamSequence fields with one row per timestep in that order).

    Each per-timestep npz must hold one frame. The identity ``shape`` comes from
    ``canonical_flame_param.npz`` when the folder has one, else from the first per-timestep file.
    """
    if not by_step:
        raise InputFileError(listing.path, "lists no frames")
    steps = sorted(by_step)
    per_frame = []
    for s in steps:
        arrays = load_npz(by_step[s], _ALL_KEYS)
        fields = fields_from_arrays(arrays, by_step[s])
        if fields["expr"].shape[0] != 1:
            raise InputFileError(by_step[s], f"holds {fields['expr'].shape[0]} frames; the per-timestep file "
                                             f"of timestep {s} must hold exactly one")
        for k in PER_TIMESTEP_FIELDS:
            if not np.isfinite(fields[k]).all():
                raise InputFileError(by_step[s], f"{k} contains NaN or infinity")
        per_frame.append(fields)
    widths = {f["expr"].shape[1] for f in per_frame}
    if len(widths) != 1:
        raise InputFileError(listing.path, f"per-frame files disagree on the number of expression channels: {sorted(widths)}")
    fields = {k: np.concatenate([f[k] for f in per_frame]) for k in PER_TIMESTEP_FIELDS}
    fields["expr_names"] = per_frame[0]["expr_names"]
    fields["shape"] = per_frame[0]["shape"]
    canonical = os.path.join(listing.folder, "canonical_flame_param.npz")
    if os.path.isfile(canonical):
        arrays = load_npz(canonical, ("shape",))
        if "shape" in arrays:
            fields["shape"] = np.asarray(arrays["shape"], np.float32).reshape(-1)
    return steps, fields


def read_nerf_folder(path: str | os.PathLike) -> ParamSequence:
    """A NeRF-style export folder (or one of its transforms*.json files) as a ParamSequence."""
    listing = list_export(path)
    path = listing.path
    by_step, _ = frame_timesteps(listing)
    steps, fields = load_timestep_fields(listing, by_step)
    fps = listing.fps
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
