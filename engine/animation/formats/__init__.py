"""Readers and writers of animation files; :func:`read_any` detects the format from content and name.

Detection order for a path:
  folder: transforms*.json inside -> NeRF-style export; per-frame exp.npy + jawpose.npy -> SMIRK;
          top-level exp.npy/expr.npy + pose.npy [T, 15] -> bare FLAME arrays;
          exp.npy + pose.npy (per-frame sub-folders, or stacked [T, 6]) -> EMOCA;
          a single flame_param.npz inside -> that file.
  .npz:   FLAME parameter keys (flame_param.npz, tracked_flame_params*.npz, our own files).
  .json:  transforms*.json (with "frames") -> NeRF-style export; else named channels / Audio2Face.
  .csv/.txt: header starting Timecode,BlendShapeCount -> Live Link Face; else named-channel CSV.
  .glb (or glTF magic): LAM's animation.glb (head-bone and morph-weight animation).
Files with another or no extension are sniffed: zip magic -> npz, ``{`` -> JSON, else CSV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...errors import InputFileError
from ..sequence import ParamSequence
from .csv_stream import read_header
from .flame_arrays import is_flame_arrays_folder, read_flame_arrays
from .flame_npz import read_flame_npz, write_flame_npz
from .lam_glb import read_lam_animation_glb
from .livelink import is_live_link_header, read_live_link_csv, write_live_link_csv
from .named import read_named_csv, read_named_json
from .nerf_folder import read_nerf_folder, transforms_files
from .per_frame_folders import is_emoca_folder, is_smirk_folder, read_emoca_folder, read_smirk_folder

FORMATS: tuple[str, ...] = (
    "flame_param_npz", "vhap_tracked_npz", "nerf_export", "smirk_folder", "flame_arrays", "emoca_folder",
    "live_link_face_csv", "named_csv", "named_json", "audio2face_json", "lam_animation_glb",
)
WRITE_FORMATS: tuple[str, ...] = ("npz", "live_link_csv")


def detect_format(path: str | os.PathLike) -> str:
    """The reader name for ``path`` (see the module docstring). Raises InputFileError if unknown."""
    path = os.fspath(path)
    if os.path.isdir(path):
        if transforms_files(path):
            return "nerf_export"
        if is_smirk_folder(path):
            return "smirk_folder"
        if is_flame_arrays_folder(path):
            return "flame_arrays"
        if is_emoca_folder(path):
            return "emoca_folder"
        npz = [f for f in os.listdir(path) if f.endswith(".npz") and (f.startswith("flame_param") or f.startswith("tracked_flame_params"))]
        if len(npz) == 1:
            return detect_format(os.path.join(path, npz[0]))
        raise InputFileError(path, "is a folder but holds no recognised animation (transforms*.json, SMIRK or EMOCA per-frame .npy, exp.npy + pose.npy FLAME arrays, flame_param.npz)")
    if not os.path.exists(path):
        raise InputFileError(path, "no such file or folder")
    if os.path.getsize(path) == 0:
        raise InputFileError(path, "the file is empty")
    name = os.path.basename(path).lower()
    ext = os.path.splitext(name)[1]
    with open(path, "rb") as f:
        head = f.read(4096)
    if ext == ".glb" or head[:4] == b"glTF":
        return "lam_animation_glb"
    if ext == ".npz" or head[:4] == b"PK\x03\x04":
        return "vhap_tracked_npz" if name.startswith("tracked_flame_params") else "flame_param_npz"
    if ext == ".npy":
        raise InputFileError(path, "is a single .npy array; pick the folder that holds the per-frame arrays")
    if ext == ".json" or head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        if name.startswith("transforms"):
            return "nerf_export"
        if b"facsNames" in head or b"weightMat" in head:
            return "audio2face_json"
        return "named_json"
    if is_live_link_header(read_header(path)):
        return "live_link_face_csv"
    return "named_csv"


def read_any(path: str | os.PathLike) -> ParamSequence:
    """Read any supported animation file or folder into a ParamSequence.

    Raises InputFileError (message ``"<path>: <problem>"``) for unknown, empty, truncated or
    malformed input, pickled npz members, non-finite values and wrong shapes.
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt in ("flame_param_npz", "vhap_tracked_npz"):
        if os.path.isdir(path):
            npz = [f for f in os.listdir(path) if f.endswith(".npz")]
            path = os.path.join(path, [f for f in npz if f.startswith(("flame_param", "tracked_flame_params"))][0])
        return read_flame_npz(path)
    if fmt == "nerf_export":
        return read_nerf_folder(path)
    if fmt == "smirk_folder":
        return read_smirk_folder(path)
    if fmt == "flame_arrays":
        return read_flame_arrays(path)
    if fmt == "emoca_folder":
        return read_emoca_folder(path)
    if fmt == "live_link_face_csv":
        return read_live_link_csv(path)
    if fmt == "lam_animation_glb":
        return read_lam_animation_glb(path)
    if fmt in ("named_json", "audio2face_json"):
        return read_named_json(path)
    return read_named_csv(path)


@dataclass(frozen=True)
class WriteResult:
    format: str  # "npz" or "live_link_csv"
    notes: tuple[str, ...] = ()  # what the format could not hold, or was converted


def write_any(seq: ParamSequence, path: str | os.PathLike, fmt: str | None = None) -> WriteResult:
    """Write ``seq`` as ``fmt`` ("npz" or "live_link_csv"; default from the extension)."""
    path = os.fspath(path)
    if fmt is None:
        ext = os.path.splitext(path)[1].lower()
        fmt = {".npz": "npz", ".csv": "live_link_csv"}.get(ext)
        if fmt is None:
            raise InputFileError(path, "unknown output format; use a .npz or .csv name")
    if fmt == "npz":
        write_flame_npz(seq, path)
        return WriteResult(fmt)
    if fmt == "live_link_csv":
        return WriteResult(fmt, tuple(write_live_link_csv(seq, path)))
    raise InputFileError(path, f"unknown output format {fmt!r}; expected one of {WRITE_FORMATS}")


__all__ = ["FORMATS", "WRITE_FORMATS", "WriteResult", "detect_format", "read_any", "write_any"]
