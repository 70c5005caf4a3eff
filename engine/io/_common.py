"""Small helpers shared by the splat format modules (reading with a size cap, atomic writes)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputFileError

MAX_FILE_BYTES = 8 << 30   # 8 GiB: far above any real splat file; refuse before reading


def read_capped(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, or InputFileError (missing, unreadable, larger than ``limit``)."""
    try:
        size = os.path.getsize(path)
        if size > limit:
            raise InputFileError(path, f"file is {size:,} bytes, more than we read ({limit:,})")
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None


def opacity_logits_from_u8(alpha: np.ndarray) -> np.ndarray:
    """[N] u8 opacity * 255 -> [N] float32 logits; 0 and 255 are pulled half a step inwards
    (the logit of 0 or 1 is infinite)."""
    p = np.clip(alpha.astype(np.float64), 0.5, 254.5) / 255.0
    return np.log(p / (1.0 - p)).astype(np.float32)


def write_atomic(path, *chunks) -> None:
    """Write ``chunks`` (bytes-like, in order) beside ``path`` and rename, so a failed write
    leaves no partial file."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise InputFileError(path, f"cannot write file: {exc.strerror or exc}") from None
