"""HeadModel <-> ``.npz`` (no pickles), written byte-for-byte reproducibly.

Layout of a head-model ``.npz`` (every entry a plain numpy array; ``np.load(allow_pickle=False)``
works):

    name          str (0-d unicode)         model name
    v_template    [V, 3] float32            metres, native frame
    shapedirs     [V, 3, S] float32
    exprdirs      [V, 3, E] float32
    expr_names    [E] unicode
    expr_space    str (0-d unicode)         "arkit" or "flame"
    expr_range    [E, 2] float32            optional
    j_regressor   [J, V] float32
    parents       [J] int32                 -1 for the root
    weights       [V, J] float32
    faces         [F, 3] int32
    vt, ft        [T, 2] float32, [F, 3] int32   optional
    posedirs      [V, 3, P] float32         optional
    mask_<region> [V] bool                  one per region
    frame         str (0-d unicode)
    extra_<key>   anything else the builder wants to keep (ignored by the loader)

``save_npz`` writes the zip itself with a fixed member order, fixed timestamps and fixed
attributes, so the same arrays always give the same bytes.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib

import numpy as np

from ..errors import InputFileError
from .model import HeadModel

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def model_to_arrays(model: HeadModel) -> dict[str, np.ndarray]:
    """HeadModel -> flat dict of plain numpy arrays (insertion order = file order)."""
    out: dict[str, np.ndarray] = {
        "name": np.array(model.name),
        "v_template": np.asarray(model.v_template, np.float32),
        "shapedirs": np.asarray(model.shapedirs, np.float32),
        "exprdirs": np.asarray(model.exprdirs, np.float32),
        "expr_names": np.array(list(model.expr_names), dtype=np.str_),
        "expr_space": np.array(model.expr_space),
        "j_regressor": np.asarray(model.j_regressor, np.float32),
        "parents": np.asarray(model.parents, np.int32),
        "weights": np.asarray(model.weights, np.float32),
        "faces": np.asarray(model.faces, np.int32),
        "frame": np.array(model.frame),
    }
    if model.expr_range is not None:
        out["expr_range"] = np.asarray(model.expr_range, np.float32)
    if model.vt is not None and model.ft is not None:
        out["vt"] = np.asarray(model.vt, np.float32)
        out["ft"] = np.asarray(model.ft, np.int32)
    if model.posedirs is not None:
        out["posedirs"] = np.asarray(model.posedirs, np.float32)
    for region in sorted(model.masks):
        out[f"mask_{region}"] = np.asarray(model.masks[region], bool)
    return out


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed ``.npz`` whose bytes depend only on the arrays.

    Members are written in the dict's order with a fixed date, fixed permissions and
    deflate level 9; arrays are stored C-contiguous in the ``.npy`` v1.0 format.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            arr = np.asarray(value)
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            if arr.dtype == object:
                raise ValueError(f"{key}: object arrays are not allowed (no pickles)")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, path)


def _str(value: np.ndarray) -> str:
    value = np.asarray(value)
    return str(value.reshape(-1)[0]) if value.size == 1 else str(value)


REQUIRED = ("v_template", "shapedirs", "exprdirs", "j_regressor", "parents", "weights", "faces")


def load_npz(path: str | os.PathLike, default_name: str | None = None) -> HeadModel:
    """Read a head-model ``.npz`` written by :func:`save_npz` (or by hand in that layout).

    Raises InputFileError (naming the file) when it is missing, not a zip, truncated, or holds
    arrays of the wrong shapes.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise InputFileError(path, f"not a readable .npz head model ({type(exc).__name__}: {exc})") from None
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputFileError(path, f"missing arrays {missing} (found {sorted(data)})")
    return arrays_to_model(data, path, default_name)


def arrays_to_model(data: dict[str, np.ndarray], path: str, default_name: str | None = None) -> HeadModel:
    """Validate a dict of arrays (as in the ``.npz`` layout) and build a HeadModel."""
    from .validate import validate_model

    v = np.asarray(data["v_template"], np.float32)
    n_expr = int(np.asarray(data["exprdirs"]).shape[-1]) if np.asarray(data["exprdirs"]).ndim == 3 else 0
    if "expr_names" in data:
        names = tuple(str(s) for s in np.asarray(data["expr_names"]).reshape(-1))
    else:
        names = tuple(f"psi{i:02d}" for i in range(n_expr))
    masks = {k[len("mask_"):]: np.asarray(data[k], bool) for k in sorted(data) if k.startswith("mask_")}
    model = HeadModel(
        name=_str(data["name"]) if "name" in data else (default_name or os.path.splitext(os.path.basename(path))[0]),
        v_template=v,
        shapedirs=np.asarray(data["shapedirs"], np.float32),
        exprdirs=np.asarray(data["exprdirs"], np.float32),
        expr_names=names,
        j_regressor=np.asarray(data["j_regressor"], np.float32),
        parents=np.asarray(data["parents"]).astype(np.int32),
        weights=np.asarray(data["weights"], np.float32),
        faces=np.asarray(data["faces"]).astype(np.int32),
        vt=np.asarray(data["vt"], np.float32) if "vt" in data else None,
        ft=np.asarray(data["ft"]).astype(np.int32) if "ft" in data else None,
        posedirs=np.asarray(data["posedirs"], np.float32) if "posedirs" in data else None,
        masks=masks,
        expr_space=_str(data["expr_space"]) if "expr_space" in data else "flame",
        frame=_str(data["frame"]) if "frame" in data else "",
        expr_range=np.asarray(data["expr_range"], np.float32) if "expr_range" in data else None,
    )
    validate_model(model, path)
    return model
