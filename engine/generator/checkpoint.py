"""Generator checkpoints: safetensors weights and/or two ONNX branches, plus ``config.json``. Never pickles.

A checkpoint is a folder, or a ``.zip`` of the same files at its top level (or inside one folder):

    config.json            {"format": "gaussian_heads.generator", "version": 1,
                            "config": {GeneratorConfig fields}, "meta": {...},
                            "files": {"weights": "generator.safetensors" | null,
                                      "identity_onnx": "identity.onnx" | null,
                                      "deformation_onnx": "deformation.onnx" | null}}
    generator.safetensors  float32 state_dict of ``networks.Generator`` (includes ``mapping.w_avg``,
                           the tracked w average used for truncation, and the constant noise buffers)
    identity.onnx          identity branch (see ``onnx_export``)
    deformation.onnx       deformation branch

A ``.safetensors`` path is accepted too when a ``config.json`` lies beside it. Loading checks the
JSON, every tensor's name, shape and dtype against the network the config describes, and that
all values are finite; each failure raises ``InputFileError`` naming the offending file.
The ONNX form needs only numpy + onnxruntime (``onnx_runtime.OnnxRunner``); the safetensors form
needs torch (``TorchRunner``). ``load_runner`` picks whichever the checkpoint and the machine allow.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import GaussianHeadsError, InputFileError, check_shape
from .config import RESIDUAL_CHANNELS, SHAPE_MAP_CHANNELS, GeneratorConfig

FORMAT = "gaussian_heads.generator"
VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "generator.safetensors"
IDENTITY_NAME = "identity.onnx"
DEFORMATION_NAME = "deformation.onnx"
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class GeneratorRunner(Protocol):
    """Runs the two branches for one sample (batch 1), numpy in and out."""

    config: GeneratorConfig
    backend: str  # "torch" or "onnx"

    def identity(self, z: np.ndarray, shape_map: np.ndarray, truncation: float) -> tuple[np.ndarray, np.ndarray]:
        """z [z_dim], shape_map [4, R, R] -> (attributes [attr_channels, R, R], features [Cf, r, r])."""

    def deformation(self, features: np.ndarray, condition: np.ndarray) -> np.ndarray:
        """features [Cf, r, r], condition [n_cond] -> raw residual maps [11, r, r]."""


@dataclass
class CheckpointFiles:
    """A parsed checkpoint: config, meta and access to its member files (folder or zip)."""

    path: str
    config: GeneratorConfig
    meta: dict
    files: dict  # role -> member name or None
    _root: str = ""              # folder holding the members (folder form)
    _zip_prefix: str | None = None  # member prefix inside the zip (zip form)

    def has(self, role: str) -> bool:
        return bool(self.files.get(role))

    def member_path(self, role: str) -> str:
        """A user-facing name of the member: the file path, or 'archive.zip/member'."""
        name = self.files[role]
        if self._zip_prefix is None:
            return os.path.join(self._root, name)
        return f"{self.path}/{self._zip_prefix}{name}"

    def read(self, role: str) -> bytes:
        name = self.files.get(role)
        if not name:
            raise InputFileError(self.path, f"the checkpoint has no {role.replace('_', ' ')} file")
        if self._zip_prefix is None:
            full = os.path.join(self._root, name)
            try:
                with open(full, "rb") as fh:
                    return fh.read()
            except OSError as exc:
                raise InputFileError(full, f"cannot read ({exc.strerror or exc})") from None
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self._zip_prefix + name)
        except KeyError:
            raise InputFileError(self.path, f"the archive lacks {self._zip_prefix + name}") from None
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputFileError(self.member_path(role), f"truncated or corrupt archive member ({exc})") from None


def _parse_config_json(text: bytes, where: str) -> tuple[GeneratorConfig, dict, dict]:
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(where, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputFileError(where, f"not a Gaussian Heads generator config (expected format '{FORMAT}')")
    if data.get("version") != VERSION:
        raise InputFileError(where, f"unsupported checkpoint version {data.get('version')!r} (this build reads {VERSION})")
    try:
        config = GeneratorConfig.from_dict(data.get("config"))
    except GaussianHeadsError as exc:
        raise InputFileError(where, str(exc)) from None
    files = data.get("files") or {}
    if not isinstance(files, dict):
        raise InputFileError(where, "'files' must be an object")
    for role in ("weights", "identity_onnx", "deformation_onnx"):
        name = files.get(role)
        if name is not None and (not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".")):
            raise InputFileError(where, f"bad file name for {role}: {name!r}")
    files = {role: files.get(role) for role in ("weights", "identity_onnx", "deformation_onnx")}
    if not files["weights"] and not (files["identity_onnx"] and files["deformation_onnx"]):
        raise InputFileError(where, "lists neither safetensors weights nor both ONNX branches")
    meta = data.get("meta") or {}
    return config, (meta if isinstance(meta, dict) else {}), files


def read_checkpoint(path: str | os.PathLike) -> CheckpointFiles:
    """Parse a checkpoint folder, .zip, config.json or .safetensors path (no torch, no weights read)."""
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(_PICKLE_SUFFIXES):
        raise InputFileError(path, "pickled checkpoints are refused (they can run code); use safetensors or ONNX")
    if not os.path.exists(path):
        raise InputFileError(path, "no such file or folder")
    if os.path.isdir(path):
        cfg_path = os.path.join(path, CONFIG_NAME)
        root = path
    elif lower.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                candidates = sorted((n for n in names if n == CONFIG_NAME or n.endswith("/" + CONFIG_NAME)),
                                    key=lambda n: n.count("/"))
                if not candidates or candidates[0].count("/") > 1:
                    raise InputFileError(path, f"the archive has no {CONFIG_NAME} at its top level")
                member = candidates[0]
                text = zf.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputFileError(path, f"not a readable zip archive ({exc})") from None
        prefix = member[: -len(CONFIG_NAME)]
        config, meta, files = _parse_config_json(text, f"{path}/{member}")
        return CheckpointFiles(path, config, meta, files, _zip_prefix=prefix)
    elif os.path.basename(lower) == CONFIG_NAME or lower.endswith(".safetensors"):
        root = os.path.dirname(os.path.abspath(path))
        cfg_path = os.path.join(root, CONFIG_NAME)
    else:
        raise InputFileError(path, "not a generator checkpoint (a folder, .zip, config.json or .safetensors)")
    if not os.path.isfile(cfg_path):
        raise InputFileError(cfg_path, "missing: a generator checkpoint needs its config.json")
    try:
        with open(cfg_path, "rb") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputFileError(cfg_path, f"cannot read ({exc.strerror or exc})") from None
    config, meta, files = _parse_config_json(text, cfg_path)
    if lower.endswith(".safetensors"):
        files = dict(files, weights=os.path.basename(path))
    return CheckpointFiles(path, config, meta, files, _root=root)


def read_weights(ckpt: CheckpointFiles, expected: dict[str, tuple[int, ...]] | None = None) -> dict[str, np.ndarray]:
    """Read and validate the safetensors weights (numpy only).

    ``expected`` maps tensor names to shapes (from the network the config builds); names missing
    or unexpected, wrong shapes, non-float32 dtypes and NaN/inf values raise InputFileError.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    where = ckpt.member_path("weights") if ckpt.has("weights") else ckpt.path
    data = ckpt.read("weights")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, OverflowError, MemoryError) as exc:
        raise InputFileError(where, f"truncated or corrupt safetensors file ({exc})") from None
    except Exception as exc:  # the Rust parser can raise other errors on garbage
        raise InputFileError(where, f"truncated or corrupt safetensors file ({type(exc).__name__}: {exc})") from None
    if expected is not None:
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} tensor(s) ({', '.join(missing[:4])}{', …' if len(missing) > 4 else ''})")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} tensor(s) ({', '.join(unexpected[:4])}"
                             f"{', …' if len(unexpected) > 4 else ''})")
            raise InputFileError(where, "does not match its config: " + "; ".join(parts))
        for name, shape in expected.items():
            if tuple(tensors[name].shape) != tuple(shape):
                raise InputFileError(where, f"tensor {name} has shape {tuple(tensors[name].shape)}, "
                                            f"the config needs {tuple(shape)}")
    for name, t in tensors.items():
        if t.dtype != np.float32:
            raise InputFileError(where, f"tensor {name} is {t.dtype}, expected float32")
        if not np.isfinite(t).all():
            raise InputFileError(where, f"tensor {name} contains NaN or infinity")
    return tensors


# --------------------------------------------------------------------------- torch side

def load_generator_torch(path: str | os.PathLike):
    """Load the safetensors form into a ``networks.Generator`` (eval mode). Needs torch.

    Returns (generator, meta, CheckpointFiles).
    """
    ckpt = read_checkpoint(path)
    if not ckpt.has("weights"):
        raise InputFileError(ckpt.path, "holds only ONNX branches; torch loading needs generator.safetensors")
    import torch

    from .networks import Generator

    gen = Generator(ckpt.config)
    expected = {k: tuple(v.shape) for k, v in gen.state_dict().items()}
    tensors = read_weights(ckpt, expected)
    gen.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, strict=True)
    return gen.eval(), ckpt.meta, ckpt


def save_checkpoint(generator, path: str | os.PathLike, meta: dict | None = None, *, onnx: bool = False,
                    safetensors: bool = True) -> str:
    """Write a checkpoint (folder, or a .zip when ``path`` ends in .zip). Needs torch.

    ``onnx=True`` adds identity.onnx and deformation.onnx (see ``onnx_export``).
    Returns the path written.
    """
    from safetensors.numpy import save as st_save

    from .networks import to_numpy_state

    path = os.fspath(path)
    if not (safetensors or onnx):
        raise GaussianHeadsError("a checkpoint needs safetensors weights, ONNX branches, or both")
    members: dict[str, bytes] = {}
    files = {"weights": None, "identity_onnx": None, "deformation_onnx": None}
    if safetensors:
        members[WEIGHTS_NAME] = st_save(to_numpy_state(generator), metadata={"format": FORMAT})
        files["weights"] = WEIGHTS_NAME
    if onnx:
        from .onnx_export import export_branches

        members[IDENTITY_NAME], members[DEFORMATION_NAME] = export_branches(generator)
        files["identity_onnx"], files["deformation_onnx"] = IDENTITY_NAME, DEFORMATION_NAME
    doc = {"format": FORMAT, "version": VERSION, "config": generator.config.to_dict(), "meta": dict(meta or {}),
           "files": files}
    members[CONFIG_NAME] = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if path.lower().endswith(".zip"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        os.replace(tmp, path)
    else:
        os.makedirs(path, exist_ok=True)
        for name, data in members.items():
            tmp = os.path.join(path, name + ".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, os.path.join(path, name))
        if safetensors is False:  # a stale weights file would contradict config.json's "files"
            stale = os.path.join(path, WEIGHTS_NAME)
            if os.path.exists(stale):
                os.remove(stale)
    return path


class TorchRunner:
    """GeneratorRunner on a torch ``Generator`` (CPU)."""

    backend = "torch"

    def __init__(self, generator):
        import torch

        self._torch = torch
        self.generator = generator.eval()
        self.config: GeneratorConfig = generator.config

    def identity(self, z, shape_map, truncation):
        cfg, torch = self.config, self._torch
        z = np.asarray(z, np.float32).reshape(-1)
        check_shape("z", z, (cfg.z_dim,))
        shape_map = np.asarray(shape_map, np.float32)
        check_shape("shape_map", shape_map, (SHAPE_MAP_CHANNELS, cfg.uv_resolution, cfg.uv_resolution))
        with torch.no_grad():
            a, f = self.generator.identity(torch.from_numpy(z)[None], torch.from_numpy(shape_map)[None],
                                           torch.tensor([float(truncation)]), noise_mode="const")
        return a[0].numpy(), f[0].numpy()

    def deformation(self, features, condition):
        cfg, torch = self.config, self._torch
        features = np.asarray(features, np.float32)
        condition = np.asarray(condition, np.float32).reshape(-1)
        check_shape("condition", condition, (cfg.n_cond,))
        with torch.no_grad():
            r = self.generator.deformation(torch.from_numpy(features)[None], torch.from_numpy(condition)[None])
        out = r[0].numpy()
        check_shape("residuals", out, (RESIDUAL_CHANNELS, cfg.deform_resolution, cfg.deform_resolution))
        return out


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except Exception:  # ImportError, or a broken install
        return False
    return True


def load_runner(path: str | os.PathLike, backend: str = "auto", threads: int | None = None) -> GeneratorRunner:
    """Open a checkpoint for inference.

    backend "onnx" needs the ONNX pair and onnxruntime; "torch" needs the safetensors weights and
    torch; "auto" prefers ONNX (faster on CPU, no torch) and falls back to torch. ``threads`` sets
    onnxruntime's intra-op threads (None: its default); the torch backend uses torch's setting.
    """
    if backend not in ("auto", "onnx", "torch"):
        raise GaussianHeadsError(f"unknown generator backend {backend!r} (auto, onnx, torch)")
    ckpt = read_checkpoint(path)
    has_onnx = ckpt.has("identity_onnx") and ckpt.has("deformation_onnx")
    if backend in ("auto", "onnx") and has_onnx:
        try:
            import onnxruntime  # noqa: F401
            ort_ok = True
        except Exception:
            ort_ok = False
        if ort_ok:
            from .onnx_runtime import OnnxRunner

            return OnnxRunner(ckpt, threads=threads)
        if backend == "onnx":
            raise GaussianHeadsError("onnxruntime is not installed; it is needed for ONNX generator checkpoints")
    if backend == "onnx":
        raise InputFileError(ckpt.path, "has no ONNX branches (export them with "
                                        "`python -m engine.generator.onnx_export`)")
    if not ckpt.has("weights"):
        raise InputFileError(ckpt.path, "has no safetensors weights and its ONNX branches cannot run here")
    if not _torch_available():
        raise GaussianHeadsError(f"{ckpt.path}: this checkpoint holds only safetensors weights, which need torch; "
                                 "install torch or export the checkpoint to ONNX")
    generator, _, _ = load_generator_torch(path)
    return TorchRunner(generator)
