"""The standard 3D Gaussian Splatting PLY (the INRIA layout), read and written without plyfile.

Vertex properties, in the order we write them (all float32, binary little-endian):
    x y z                 mean
    nx ny nz              unused normals (written as 0; optional on read)
    f_dc_0..2             SH DC coefficient per colour channel (R, G, B)
    f_rest_0..M-1         higher SH bands, M = 3 * ((d + 1)^2 - 1), d = 0..3, ordered channel-major
                          as INRIA writes them: all R coefficients (bands 1..K-1), then G, then B:
                          f_rest_{c * (K - 1) + (k - 1)} = sh[:, k, c]
    opacity               logit
    scale_0..2            log std-dev
    rot_0..3              quaternion (w, x, y, z)

Reading accepts binary little/big-endian and ascii files, any numeric property types, extra
vertex properties (returned as extras, e.g. GaussianAvatars' ``binding_0``), missing normals,
SH degree 0-3, and other elements after the vertex element. Anything malformed raises one
``InputFileError`` naming the file and the problem. Quaternions are renormalised on read only when
their norm is off by more than 1e-5 (so written unit quaternions round-trip bit for bit).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..avatar.gaussian_set import GaussianSet
from ..errors import InputFileError, check_shape
from ._common import write_atomic

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_MAX_HEADER = 1 << 20        # bytes
_MAX_COUNT = 1 << 31         # Gaussians; beyond this we refuse before allocating
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_END_HEADER = re.compile(rb"\nend_header[ \t]*\r?\n")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-\.]*$")


@dataclass
class PlyContents:
    """What ``read_ply_full`` returns: the Gaussians and every extra vertex property ([N] arrays)."""

    gaussians: GaussianSet
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str]]   # (name, numpy type code) ; list properties are ("name", "list")


def _parse_header(path: str, head: bytes) -> tuple[str, list[_Element], list[str], int]:
    if not head.startswith(b"ply"):
        raise InputFileError(path, "not a PLY file (it does not start with 'ply')")
    match = _END_HEADER.search(head)
    if match is None:
        if len(head) >= _MAX_HEADER:
            raise InputFileError(path, f"PLY header is longer than {_MAX_HEADER} bytes or has no 'end_header'")
        raise InputFileError(path, "PLY header has no 'end_header' line (file truncated?)")
    data_start = match.end()
    raw = head[:data_start]
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InputFileError(path, "PLY header contains non-ASCII bytes") from None
    lines = [ln.rstrip("\r") for ln in text.split("\n")][:-1]
    if lines[0].strip() != "ply":
        raise InputFileError(path, "not a PLY file (first line is not 'ply')")
    fmt = None
    elements: list[_Element] = []
    comments: list[str] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words:
            continue
        key = words[0]
        if key in ("comment", "obj_info"):
            comments.append(line.split(None, 1)[1] if len(words) > 1 else "")
        elif key == "format":
            if fmt is not None:
                raise InputFileError(path, f"PLY header line {number}: second 'format' line")
            if len(words) != 3 or words[1] not in _FORMATS or words[2] != "1.0":
                raise InputFileError(path, f"PLY header line {number}: unsupported format '{line.strip()}'")
            fmt = _FORMATS[words[1]]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise InputFileError(path, f"PLY header line {number}: malformed element line '{line.strip()}'")
            count = int(words[2])
            if count > _MAX_COUNT:
                raise InputFileError(path, f"PLY element '{words[1]}' claims {count} entries, more than we accept")
            elements.append(_Element(words[1], count, []))
        elif key == "property":
            if not elements:
                raise InputFileError(path, f"PLY header line {number}: property before any element")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _TYPES or words[3] not in _TYPES:
                    raise InputFileError(path, f"PLY header line {number}: unknown type in '{line.strip()}'")
                elements[-1].props.append((words[4], "list"))
            elif len(words) == 3 and words[1] in _TYPES:
                if not _NAME.match(words[2]):
                    raise InputFileError(path, f"PLY header line {number}: odd property name '{words[2]}'")
                if any(p[0] == words[2] for p in elements[-1].props):
                    raise InputFileError(path, f"PLY property '{words[2]}' is declared twice")
                elements[-1].props.append((words[2], _TYPES[words[1]]))
            else:
                raise InputFileError(path, f"PLY header line {number}: malformed property line '{line.strip()}'")
        elif key == "end_header":
            break
        else:
            raise InputFileError(path, f"PLY header line {number}: unknown keyword '{key}'")
    if fmt is None:
        raise InputFileError(path, "PLY header has no 'format' line")
    return fmt, elements, comments, data_start


def _sh_layout(path: str, names: set[str]) -> int:
    """Number of f_rest properties (checked contiguous and a valid count)."""
    rest = sorted(n for n in names if n.startswith("f_rest_"))
    m = len(rest)
    if m not in (0, 9, 24, 45):
        raise InputFileError(path, f"{m} f_rest properties; a 3DGS PLY has 0, 9, 24 or 45 (SH degree 0-3)")
    for i in range(m):
        if f"f_rest_{i}" not in names:
            raise InputFileError(path, f"f_rest properties are not numbered 0..{m - 1} (f_rest_{i} is missing)")
    return m


def vertex_property_names(path: str | os.PathLike) -> list[str]:
    """The vertex element's property names, from the header only (cheap: e.g. to tell a
    GaussianAvatars point cloud, which has ``binding_0``, from a plain 3DGS file)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(_MAX_HEADER)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    _, elements, _, _ = _parse_header(path, head)
    return [name for element in elements if element.name == "vertex" for name, _ in element.props]


def read_ply_full(path: str | os.PathLike) -> PlyContents:
    """Read a 3DGS PLY -> PlyContents(gaussians (N), extras {name: [N]}, comments)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(_MAX_HEADER)
            fmt, elements, comments, data_start = _parse_header(path, head)
            vertex_at = [i for i, e in enumerate(elements) if e.name == "vertex"]
            if not vertex_at:
                raise InputFileError(path, "PLY file has no 'vertex' element (not a point/Gaussian file)")
            if len(vertex_at) > 1:
                raise InputFileError(path, "PLY file has more than one 'vertex' element")
            vi = vertex_at[0]
            vertex = elements[vi]
            names = [p[0] for p in vertex.props]
            if any(t == "list" for _, t in vertex.props):
                raise InputFileError(path, "PLY vertex element has list properties; not a 3DGS file")
            missing = [n for n in _REQUIRED if n not in names]
            if missing:
                raise InputFileError(path, f"not a 3DGS PLY: vertex properties missing: {', '.join(missing)}")
            n_rest = _sh_layout(path, set(names))
            n = vertex.count
            if fmt == "ascii":
                table = _read_ascii(path, fh, data_start, elements, vi)
            else:
                skip = 0
                for e in elements[:vi]:
                    if any(t == "list" for _, t in e.props):
                        raise InputFileError(path, f"PLY element '{e.name}' with list properties precedes "
                                                   "the vertex element; not supported")
                    skip += e.count * sum(np.dtype(t).itemsize for _, t in e.props)
                dtype = np.dtype([(nm, fmt + t) for nm, t in vertex.props])
                need = data_start + skip + n * dtype.itemsize
                if size < need:
                    raise InputFileError(path, f"file is truncated: the header claims {n} Gaussians "
                                               f"({need} bytes) but the file has {size} bytes")
                fh.seek(data_start + skip)
                buf = fh.read(n * dtype.itemsize)
                if len(buf) != n * dtype.itemsize:
                    raise InputFileError(path, "file is truncated (short read)")
                table = np.frombuffer(buf, dtype=dtype, count=n)
    except OSError as exc:
        raise InputFileError(path, f"cannot read file: {exc.strerror or exc}") from None

    def col(name):
        return np.asarray(table[name], dtype=np.float32)

    means = np.stack([col("x"), col("y"), col("z")], 1)
    k = n_rest // 3 + 1
    sh = np.empty((n, k, 3), np.float32)
    for c in range(3):
        sh[:, 0, c] = col(f"f_dc_{c}")
        for j in range(1, k):
            sh[:, j, c] = col(f"f_rest_{c * (k - 1) + (j - 1)}")
    log_scales = np.stack([col(f"scale_{i}") for i in range(3)], 1)
    quats = np.stack([col(f"rot_{i}") for i in range(4)], 1)
    opacity = col("opacity")
    for name, arr in (("positions", means), ("SH colours", sh), ("scales", log_scales),
                      ("rotations", quats), ("opacities", opacity)):
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr.reshape(n, -1))).any(1).sum()) if n else 0
            raise InputFileError(path, f"{bad} Gaussians have NaN or infinite {name}")
    norm = np.linalg.norm(quats.astype(np.float64), axis=1)
    if n and (norm < 1e-12).any():
        raise InputFileError(path, f"{int((norm < 1e-12).sum())} Gaussians have a zero rotation quaternion")
    off = np.abs(norm - 1.0) > 1e-5
    if off.any():
        quats[off] = (quats[off] / norm[off, None]).astype(np.float32)
    known = set(_REQUIRED) | {"nx", "ny", "nz"} | {f"f_rest_{i}" for i in range(n_rest)}
    extras = {nm: np.asarray(table[nm]).astype(table.dtype[nm].newbyteorder("="))
              for nm in names if nm not in known}
    return PlyContents(GaussianSet(means, log_scales, quats, opacity, sh), extras, comments)


def _read_ascii(path, fh, data_start, elements, vi):
    fh.seek(data_start)
    text = fh.read()
    try:
        tokens = text.decode("ascii").split()
    except UnicodeDecodeError:
        raise InputFileError(path, "ascii PLY body contains non-ASCII bytes") from None
    pos = 0
    for e in elements[:vi]:
        for _ in range(e.count):
            for _, t in e.props:
                if t == "list":
                    if pos >= len(tokens) or not tokens[pos].isdigit():
                        raise InputFileError(path, f"ascii PLY: bad list length in element '{e.name}'")
                    pos += 1 + int(tokens[pos])
                else:
                    pos += 1
    vertex = elements[vi]
    width = len(vertex.props)
    need = vertex.count * width
    if pos + need > len(tokens):
        raise InputFileError(path, f"file is truncated: the header claims {vertex.count} Gaussians "
                                   f"but the ascii body has too few values")
    try:
        values = np.array(tokens[pos:pos + need], dtype=np.float64).reshape(vertex.count, width)
    except ValueError:
        raise InputFileError(path, "ascii PLY body contains a value that is not a number") from None
    dtype = np.dtype([(nm, t) for nm, t in vertex.props])
    table = np.empty(vertex.count, dtype)
    for i, (nm, t) in enumerate(vertex.props):
        column = values[:, i]
        if np.dtype(t).kind in "iu":
            if not np.isfinite(column).all() or (column != np.round(column)).any():
                raise InputFileError(path, f"ascii PLY: integer property '{nm}' has a non-integer value")
            info = np.iinfo(t)
            if (column < info.min).any() or (column > info.max).any():
                raise InputFileError(path, f"ascii PLY: property '{nm}' has a value out of range for its type")
        table[nm] = column
    return table


def read_ply(path: str | os.PathLike) -> GaussianSet:
    """Read a 3DGS PLY -> GaussianSet (extras are dropped; see ``read_ply_full``)."""
    return read_ply_full(path).gaussians


def ply_bytes(gaussians: GaussianSet, extras: dict[str, np.ndarray] | None = None,
              comments: tuple[str, ...] = ()) -> bytes:
    """Serialise Gaussians (N) to the INRIA 3DGS PLY layout; deterministic bytes (see _ply_parts)."""
    header, table = _ply_parts(gaussians, extras, comments)
    return header + table.tobytes()


def vertex_names(k: int) -> list[str]:
    """The INRIA 3DGS PLY vertex properties for ``k`` SH coefficients per channel, in file order."""
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * (k - 1))]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def fill_vertex_table(table: np.ndarray, g: GaussianSet) -> None:
    """Write ``g`` [N] into a structured ``table`` [N] with (at least) ``vertex_names`` fields;
    normals stay as they are (zero). f_rest is channel-major, as the INRIA writer stores it."""
    k = g.sh.shape[1]
    table["x"], table["y"], table["z"] = g.means.T
    for c in range(3):
        table[f"f_dc_{c}"] = g.sh[:, 0, c]
        for j in range(1, k):
            table[f"f_rest_{c * (k - 1) + (j - 1)}"] = g.sh[:, j, c]
    table["opacity"] = g.opacity_logits
    for i in range(3):
        table[f"scale_{i}"] = g.log_scales[:, i]
    for i in range(4):
        table[f"rot_{i}"] = g.quats[:, i]


def _ply_parts(gaussians: GaussianSet, extras: dict[str, np.ndarray] | None,
               comments: tuple[str, ...]) -> tuple[bytes, np.ndarray]:
    """(header bytes, vertex table) of the INRIA 3DGS PLY layout.

    ``extras``: {name: [N] array} written as additional float32 (or int32 for integer arrays)
    properties after ``rot_3``, in sorted name order (e.g. ``binding_0``).
    """
    g = gaussians
    n = len(g)
    k = g.sh.shape[1]
    props: list[tuple[str, str]] = [(nm, "<f4") for nm in vertex_names(k)]
    extras = dict(extras or {})
    taken = {p[0] for p in props}
    for name in sorted(extras):
        if name in taken or not _NAME.match(name):
            raise ValueError(f"extra PLY property name '{name}' is reserved or invalid")
        arr = np.asarray(extras[name])
        check_shape(f"extra '{name}'", arr, (n,))
        props.append((name, "<i4" if arr.dtype.kind in "iub" else "<f4"))
    table = np.zeros(n, np.dtype(props))
    fill_vertex_table(table, g)
    for name in extras:
        table[name] = np.asarray(extras[name])
    ply_type = {"<f4": "float", "<i4": "int"}
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header.append(f"element vertex {n}")
    header += [f"property {ply_type[t]} {nm}" for nm, t in props]
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii"), table


def write_ply(path: str | os.PathLike, gaussians: GaussianSet, extras: dict[str, np.ndarray] | None = None,
              comments: tuple[str, ...] = ()) -> None:
    """Write Gaussians (N) as a 3DGS PLY (binary little-endian). Same input -> identical bytes.

    Writes to a temporary file beside ``path`` and renames it, so a failed write leaves no
    half-written file.
    """
    gaussians.validate_finite("Gaussians to write")
    for c in comments:
        if "\n" in c or "\r" in c:
            raise ValueError("PLY comments must be single lines")
    header, table = _ply_parts(gaussians, extras, comments)
    write_atomic(path, header, memoryview(table).cast("B"))  # no copy of the table
