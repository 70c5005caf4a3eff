"""Reading a LAM avatar zip's members safely (no bpy, no extraction to disk).

A LAM / OpenAvatarChat avatar zip holds one folder with ``skin.glb``, ``offset.ply``,
``vertex_order.json`` and ``animation.glb`` (docs/FORMATS.md). ``read_members`` returns the bytes
of the members we need, by base name, after refusing anything hostile:

* member names that are absolute, contain ``..``, backslashes or drive letters;
* more than ``MAX_MEMBERS`` entries, a member above ``MAX_MEMBER_BYTES``, a total above
  ``MAX_TOTAL_BYTES`` uncompressed, or a compression ratio above ``MAX_RATIO`` (zip bombs);
  the sizes are checked against the central directory and again while inflating, so a lying
  directory cannot get past them;
* two members with the same base name (ambiguous), encrypted members, corrupt data (CRC).

Every problem is one ``InputFileError`` naming the zip (and the member).
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib

from ..errors import InputFileError

MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 512 << 20     # a 100k-vertex glb with 52 targets is ~70 MB
MAX_TOTAL_BYTES = 1 << 30
MAX_RATIO = 200                  # uncompressed / compressed, per member (float PLY/glb data: < 10)
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_name(name: str) -> str | None:
    """Why a member name is refused (None: it is fine)."""
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or _DRIVE.match(name):
        return "is an absolute path"
    if any(part == ".." for part in name.split("/")):
        return "contains '..'"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _read_member(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The member's bytes, inflating at most its declared size + 1 (the directory may lie; the
    declared size was already checked against the caps)."""
    try:
        with zf.open(info) as fh:
            data = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise InputFileError(path, f"zip member '{info.filename}' is corrupt or truncated ({exc})") from None
    if len(data) != info.file_size:
        raise InputFileError(path, f"zip member '{info.filename}' inflates to {len(data):,} bytes, "
                                   f"not the {info.file_size:,} its directory says")
    return data


def read_members(path: str | os.PathLike, wanted: tuple[str, ...], optional: tuple[str, ...] = ()
                 ) -> dict[str, bytes]:
    """{base name: bytes} for every name in ``wanted`` (required) and ``optional`` found in the zip."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TOTAL_BYTES + 1)
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None
    if size > MAX_TOTAL_BYTES:
        raise InputFileError(path, f"zip is {size:,} bytes, more than we read ({MAX_TOTAL_BYTES:,})")
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise InputFileError(path, f"not a readable zip file ({exc})") from None
    if len(infos) > MAX_MEMBERS:
        raise InputFileError(path, f"zip has {len(infos)} entries; a LAM avatar has a handful "
                                   f"(we read at most {MAX_MEMBERS})")
    by_base: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        why = _unsafe_name(info.filename)
        if why:
            raise InputFileError(path, f"zip member '{info.filename}' {why}; refusing the archive")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise InputFileError(path, f"zip member '{info.filename}' is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise InputFileError(path, f"zip member '{info.filename}' is {info.file_size:,} bytes uncompressed "
                                       f"(more than {MAX_MEMBER_BYTES:,})")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise InputFileError(path, f"zip member '{info.filename}' compresses {info.file_size:,} bytes into "
                                       f"{info.compress_size:,} (ratio above {MAX_RATIO}: a zip bomb?)")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise InputFileError(path, f"zip holds more than {MAX_TOTAL_BYTES:,} bytes uncompressed")
        base = info.filename.rsplit("/", 1)[-1]
        if base in wanted or base in optional:
            if base in by_base:
                raise InputFileError(path, f"zip holds two members named '{base}' "
                                           f"('{by_base[base].filename}', '{info.filename}')")
            by_base[base] = info
    missing = [w for w in wanted if w not in by_base]
    if missing:
        raise InputFileError(path, f"not a LAM avatar zip: missing {', '.join(missing)}")
    return {base: _read_member(path, zf, info) for base, info in by_base.items()}
