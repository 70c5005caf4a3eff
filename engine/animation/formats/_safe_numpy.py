"""Loading .npy/.npz without ever unpickling: every array is checked from its header first.

``np.load(..., allow_pickle=False)`` alone already refuses object arrays, but only when the
array is read; checking every member's header up front gives one clear message for the whole
file and never touches the data of members we do not use.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ...errors import InputFileError

_PICKLE_PROBLEM = (
    "holds a pickled Python object array ({what}); pickles can run code, so they are refused. "
    "Re-save the arrays as plain numeric arrays (np.savez with numeric dtypes)"
)


def _check_header(fp, path, what: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:  # format 3.0 (utf-8 field names) has no public header reader
            shape, _fortran, dtype = np.lib.format._read_array_header(fp, version)  # noqa: SLF001
    except Exception as exc:  # numpy raises ValueError/OSError for a damaged header
        raise InputFileError(path, f"{what} is not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise InputFileError(path, _PICKLE_PROBLEM.format(what=what))
    return tuple(shape), dtype


def npz_keys(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Member names of an .npz with their (shape, dtype), read from the headers only.

    Raises InputFileError for a missing, truncated or non-zip file, and for any member that is a
    pickled object array.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such file")
    if os.path.getsize(path) == 0:
        raise InputFileError(path, "the file is empty")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                with zf.open(info) as fp:
                    out[key] = _check_header(fp, path, f"array {key!r}")
    except zipfile.BadZipFile:
        raise InputFileError(path, "is not a valid .npz archive (truncated or corrupt)") from None
    except (OSError, EOFError) as exc:
        raise InputFileError(path, f"could not be read ({exc})") from None
    return out


def load_npz(path: str | os.PathLike, keys=None) -> dict[str, np.ndarray]:
    """Arrays of an .npz (all, or only ``keys`` that exist), never unpickling anything."""
    path = os.fspath(path)
    members = npz_keys(path)
    wanted = list(members) if keys is None else [k for k in keys if k in members]
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in wanted:
                out[k] = np.asarray(z[k])
    except ValueError as exc:
        raise InputFileError(path, f"could not be read ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFileError(path, f"is truncated or corrupt ({exc})") from None
    return out


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """One .npy array, refusing object (pickled) arrays with a clear message."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "no such file")
    with open(path, "rb") as fp:
        _check_header(fp, path, "the array")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(path, f"is truncated or corrupt ({exc})") from None
