"""Load the user's own FLAME model files into a HeadModel — without chumpy and without running code.

Supported: ``generic_model.pkl`` (FLAME 2020), ``flame2023.pkl`` / ``flame2023_no_jaw.pkl``,
FLAME 2023 Open pickles, and ``.npz`` conversions (FLAME key names, or our own head-model layout,
see :mod:`.storage`). Optional UVs from ``head_template_mesh.obj`` or ``FLAME_texture.npz``; region
masks from a ``FLAME_masks.pkl`` lying next to the model file.

Pickles are read by :class:`SafeUnpickler`: only numpy's array/dtype reconstruction helpers are
real; chumpy objects and scipy sparse matrices are replaced by inert records of their pickled
state that we turn into numpy arrays afterwards; every other global is refused (InputFileError
naming the file and the global), so a hostile pickle cannot execute anything.

FLAME's frame equals our native frame (+Y up, +Z forward, +X the subject's left, metres).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
import zlib

import numpy as np

from ..errors import GaussianHeadsError, InputFileError
from .model import JOINT_NAMES, HeadModel

FLAME_FRAME = ("FLAME's frame: +Y up, +Z forward (the face looks down +Z), +X the subject's left; metres; "
               "origin as in the FLAME file")
N_FLAME_SHAPE = 300


# ----------------------------------------------------------------------------------------------
# Restricted unpickling

class _Record:
    """Inert stand-in for a chumpy object or scipy sparse matrix: keeps its class name and state."""

    kind = "record"
    qualname = "?"
    state = None

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<{self.kind} {getattr(self, 'qualname', '?')}>"


def _record_class(module: str, name: str, kind: str) -> type:
    return type(f"Record_{name}", (_Record,), {"qualname": f"{module}.{name}", "kind": kind})


# numpy globals needed to rebuild arrays (old and new module paths)
_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global outside a short allow-list (see module docstring)."""

    def __init__(self, file, path: str):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_ALLOWED:
            import importlib

            return getattr(importlib.import_module(module), name)
        if (module, name) == ("copyreg", "_reconstructor") or (module, name) == ("copy_reg", "_reconstructor"):
            return _safe_reconstructor
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode                # how protocol-2 pickles from Python 3 spell bytes
        if module in ("builtins", "__builtin__") and name in ("object", "set", "frozenset"):
            return {"object": object, "set": set, "frozenset": frozenset}[name]   # chumpy state holds sets
        if module == "chumpy" or module.startswith("chumpy."):
            return _record_class(module, name, "chumpy")
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            return _record_class(module, name, "sparse")
        raise InputFileError(self.path, f"refusing to load: the pickle asks for '{module}.{name}', which a "
                                        "FLAME model never needs (possibly a malicious file)")


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` restricted to the one use pickles make of it (str -> latin-1 bytes)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError("refusing _codecs.encode with an unexpected encoding")
    return text.encode("latin1")


def _safe_reconstructor(cls, base, state):
    """copyreg._reconstructor restricted to our inert records (protocol 0/1 pickles of objects)."""
    if not (isinstance(cls, type) and issubclass(cls, _Record)) or base is not object:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    obj = cls.__new__(cls)
    obj.state = None
    return obj


def _to_array(value, path: str, key: str):
    """Turn a loaded value (ndarray, chumpy record, sparse record, list) into a numpy array."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, _Record):
        if value.kind == "sparse":
            return _sparse_to_dense(value, path, key)
        return _chumpy_to_array(value, path, key)
    if isinstance(value, (list, tuple, int, float)):
        return np.asarray(value)
    raise InputFileError(path, f"'{key}' holds a {type(value).__name__}, expected an array")


def _state_dict(rec: _Record, path: str, key: str) -> dict:
    st = rec.state
    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):  # (dict, slots)
        st = {**(st[0] or {}), **st[1]}
    if not isinstance(st, dict):
        raise InputFileError(path, f"'{key}': unexpected pickled state for {rec.qualname}")
    return st


def _sparse_to_dense(rec: _Record, path: str, key: str) -> np.ndarray:
    st = _state_dict(rec, path, key)
    shape = st.get("_shape", st.get("shape"))
    if shape is None:
        raise InputFileError(path, f"'{key}': sparse matrix without a shape")
    shape = tuple(int(s) for s in shape)
    out = np.zeros(shape, np.float64)
    name = rec.qualname.rsplit(".", 1)[-1]
    try:
        data = np.asarray(st["data"], np.float64)
        if name.startswith("coo"):
            row = np.asarray(st["row"] if "row" in st else st["coords"][0], np.int64)
            col = np.asarray(st["col"] if "col" in st else st["coords"][1], np.int64)
            np.add.at(out, (row, col), data)
        else:
            indices = np.asarray(st["indices"], np.int64)
            indptr = np.asarray(st["indptr"], np.int64)
            major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            if name.startswith("csc"):
                np.add.at(out, (indices, major), data)
            else:
                np.add.at(out, (major, indices), data)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputFileError(path, f"'{key}': malformed sparse matrix ({exc})") from None
    return out


def _chumpy_to_array(rec: _Record, path: str, key: str, depth: int = 0) -> np.ndarray:
    """Evaluate the few chumpy node types that appear in FLAME/SMPL pickles."""
    if depth > 32:
        raise InputFileError(path, f"'{key}': chumpy expression nested too deeply")
    st = _state_dict(rec, path, key)
    name = rec.qualname.rsplit(".", 1)[-1]

    def sub(v):
        return _chumpy_to_array(v, path, key, depth + 1) if isinstance(v, _Record) else np.asarray(v)

    if "x" in st and name in ("Ch", "ChHandle"):
        return np.asarray(sub(st["x"]), np.float64)
    if name in ("transpose",) and "a" in st:
        return np.transpose(sub(st["a"]), st.get("axes"))
    if name in ("reshape",) and "a" in st:
        return np.reshape(sub(st["a"]), st["newshape"])
    if name == "Select" and "a" in st:
        out = sub(st["a"]).ravel()[np.asarray(st["idxs"])]
        return out.reshape(st["preferred_shape"]) if st.get("preferred_shape") is not None else out
    binary = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}
    if name in binary and "a" in st and "b" in st:
        return binary[name](sub(st["a"]), sub(st["b"]))
    if "x" in st:
        return np.asarray(sub(st["x"]), np.float64)
    raise InputFileError(path, f"'{key}': unsupported chumpy object {rec.qualname} (export the model to .npz)")


def read_pickle(path: str) -> dict:
    """Read a FLAME pickle with :class:`SafeUnpickler`. -> dict of raw values."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc.strerror or exc})") from None
    try:
        data = SafeUnpickler(io.BytesIO(raw), path).load()
    except InputFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, MemoryError, OverflowError) as exc:
        raise InputFileError(path, f"not a readable FLAME pickle (truncated or corrupt: {type(exc).__name__}: "
                                   f"{exc})") from None
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a dict of FLAME arrays, found {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------
# FLAME dict -> HeadModel

FLAME_KEYS = ("v_template", "f", "shapedirs", "J_regressor", "weights", "kintree_table")


def flame_dict_to_model(data: dict, path: str, name: str | None = None) -> HeadModel:
    """FLAME-keyed arrays -> HeadModel (300 shape + rest expression, posedirs if present)."""
    missing = [k for k in FLAME_KEYS if k not in data]
    if missing:
        raise InputFileError(path, f"missing FLAME keys {missing} (found {sorted(map(str, data))})")
    arr = {k: _to_array(data[k], path, k) for k in FLAME_KEYS}
    v = np.asarray(arr["v_template"], np.float32)
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputFileError(path, f"v_template has shape {v.shape}, expected (V, 3)")
    n_v = v.shape[0]
    dirs = np.asarray(arr["shapedirs"], np.float32)
    if dirs.ndim != 3 or dirs.shape[:2] != (n_v, 3):
        raise InputFileError(path, f"shapedirs has shape {dirs.shape}, expected ({n_v}, 3, N)")
    if "exprdirs" in data:
        shapedirs = dirs
        exprdirs = np.asarray(_to_array(data["exprdirs"], path, "exprdirs"), np.float32)
    else:
        n_s = min(N_FLAME_SHAPE, dirs.shape[2])
        shapedirs, exprdirs = dirs[:, :, :n_s], dirs[:, :, n_s:]
    n_e = exprdirs.shape[2] if exprdirs.ndim == 3 else 0
    kin = np.asarray(arr["kintree_table"])
    if kin.ndim != 2 or kin.shape[0] != 2:
        raise InputFileError(path, f"kintree_table has shape {kin.shape}, expected (2, J)")
    parents = kin[0].astype(np.int64)
    parents[(parents < 0) | (parents >= kin.shape[1])] = -1
    posedirs = None
    if "posedirs" in data and data["posedirs"] is not None:
        posedirs = np.asarray(_to_array(data["posedirs"], path, "posedirs"), np.float32)
    faces = np.asarray(arr["f"])
    if faces.dtype.kind not in "iu":
        if faces.dtype.kind != "f" or not np.all(faces == np.round(faces)):
            raise InputFileError(path, f"faces 'f' have dtype {faces.dtype}, expected integers")
    from .validate import validate_model

    model = HeadModel(
        name=name or os.path.splitext(os.path.basename(path))[0],
        v_template=v,
        shapedirs=np.ascontiguousarray(shapedirs),
        exprdirs=np.ascontiguousarray(exprdirs),
        expr_names=tuple(f"psi{i:02d}" for i in range(n_e)),
        j_regressor=np.asarray(arr["J_regressor"], np.float32),
        parents=parents.astype(np.int32),
        weights=np.asarray(arr["weights"], np.float32),
        faces=faces.astype(np.int32),
        posedirs=posedirs,
        masks={},
        expr_space="flame",
        frame=FLAME_FRAME,
        expr_range=None,
    )
    if model.parents.shape != (len(JOINT_NAMES),):
        raise InputFileError(path, f"{model.parents.shape[0]} joints in kintree_table, expected {len(JOINT_NAMES)} "
                                   "(global, neck, jaw, eye_l, eye_r)")
    validate_model(model, path)
    return model


def _read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise InputFileError(path, f"not a readable .npz ({type(exc).__name__}: {exc})") from None


def read_obj_uv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``head_template_mesh.obj`` -> (vt [T,2] float32, ft [F,3] int32); triangles only."""
    vt, ft = [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("vt "):
                    vt.append([float(x) for x in line.split()[1:3]])
                elif line.startswith("f "):
                    corners = line.split()[1:]
                    if len(corners) != 3:
                        raise InputFileError(path, "only triangle meshes are supported")
                    ft.append([int(c.split("/")[1]) - 1 for c in corners])
    except OSError as exc:
        raise InputFileError(path, f"cannot read ({exc.strerror or exc})") from None
    except (ValueError, IndexError):
        raise InputFileError(path, "malformed OBJ (faces need v/vt indices)") from None
    if not vt or not ft:
        raise InputFileError(path, "no UVs (vt) or faces in the OBJ")
    return np.asarray(vt, np.float32), np.asarray(ft, np.int32)


def add_uvs(model: HeadModel, uv_path: str | os.PathLike) -> HeadModel:
    """Attach UVs from ``head_template_mesh.obj`` or ``FLAME_texture.npz`` (in place; returns model)."""
    uv_path = os.fspath(uv_path)
    if not os.path.isfile(uv_path):
        raise InputFileError(uv_path, "file not found")
    if uv_path.lower().endswith(".obj"):
        vt, ft = read_obj_uv(uv_path)
    else:
        data = _read_npz(uv_path)
        if "vt" not in data or "ft" not in data:
            raise InputFileError(uv_path, f"expected arrays 'vt' and 'ft', found {sorted(data)}")
        vt, ft = np.asarray(data["vt"], np.float32), np.asarray(data["ft"]).astype(np.int32)
    if ft.shape != model.faces.shape:
        raise InputFileError(uv_path, f"{ft.shape[0]} UV faces for a model with {model.faces.shape[0]} faces")
    if vt.ndim != 2 or vt.shape[1] != 2 or ft.min() < 0 or ft.max() >= vt.shape[0]:
        raise InputFileError(uv_path, "UV indices out of range or vt not (T, 2)")
    model.vt, model.ft = vt, ft
    return model


# FLAME_masks.pkl region names -> ours
FLAME_MASK_REGIONS = {
    "face": ("face",), "lips": ("lips",), "eyes": ("left_eyeball", "right_eyeball"),
    "ears": ("left_ear", "right_ear"), "scalp": ("scalp",), "neck": ("neck",), "nose": ("nose",),
}


def add_flame_masks(model: HeadModel, masks_path: str | os.PathLike) -> HeadModel:
    """Region masks from FLAME's ``FLAME_masks.pkl`` (dict of vertex-index arrays) into ``model.masks``."""
    masks_path = os.fspath(masks_path)
    data = read_pickle(masks_path)
    out = {}
    for region, names in FLAME_MASK_REGIONS.items():
        present = [n for n in names if n in data]
        if not present:
            continue
        mask = np.zeros(model.n_vertices, bool)
        for n in present:
            idx = np.asarray(_to_array(data[n], masks_path, n)).astype(np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= model.n_vertices):
                raise InputFileError(masks_path, f"mask '{n}' indexes vertices outside 0..{model.n_vertices - 1}")
            mask[idx] = True
        out[region] = mask
    model.masks = out
    return model


def load_flame(path: str | os.PathLike, uv_path: str | os.PathLike | None = None) -> HeadModel:
    """A FLAME ``.pkl`` or ``.npz`` -> HeadModel (expr_space "flame", expr_names psi00..).

    Raises InputFileError naming the file when it is missing, truncated, hostile, or of the wrong
    layout.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError(path, "file not found")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"PK"):
        data = _read_npz(path)
        if "faces" in data and "parents" in data:      # our own head-model layout
            from .storage import arrays_to_model

            model = arrays_to_model(data, path)
        else:
            model = flame_dict_to_model(data, path)
    elif magic[:1] == b"\x80" or magic[:1] in (b"(", b"}", b"]"):
        model = flame_dict_to_model(read_pickle(path), path)
    else:
        raise InputFileError(path, "neither a FLAME pickle nor an .npz file")
    if uv_path is not None:
        add_uvs(model, uv_path)
    masks_path = os.path.join(os.path.dirname(os.path.abspath(path)), "FLAME_masks.pkl")
    if not model.masks and os.path.isfile(masks_path):
        add_flame_masks(model, masks_path)
    return model


__all__ = ["SafeUnpickler", "load_flame", "add_uvs", "add_flame_masks", "read_pickle", "flame_dict_to_model",
           "GaussianHeadsError"]
