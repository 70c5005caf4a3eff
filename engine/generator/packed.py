"""A checkpoint's deformation branch packed as plain arrays, so a stored identity needs no file.

A ``NetworkDeformation`` runs only the deformation branch per frame (the identity branch ran
once, when the identity was sampled). ``pack_deformation(path)`` reads what that branch needs
from a checkpoint; ``PackedRunner`` runs it from those arrays alone (a .blend on a render farm
carries them; the checkpoint file may be gone). Keys (all plain numpy, no pickles):

    config               [1] unicode    GeneratorConfig JSON
    weights.<name>       float32        the ``deformation.*`` tensors of generator.safetensors
                                        (prefix removed); present when the checkpoint has them
    deformation_onnx     [B] uint8      deformation.onnx bytes; present when the checkpoint has
                                        both ONNX branches

The backend is chosen as ``checkpoint.load_runner("auto")`` chooses for the checkpoint itself
(ONNX when it was packed and onnxruntime imports, else torch), so a reopened file poses exactly
as the session that sampled it. The default config's branch is ~57k parameters (~0.2 MB).
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import GaussianHeadsError, InputFileError, check_shape
from .checkpoint import read_checkpoint, read_weights
from .config import RESIDUAL_CHANNELS, GeneratorConfig
from .onnx_runtime import deformation_inputs

_PREFIX = "deformation."


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except Exception:
        return False
    return True


def pack_deformation(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays ``PackedRunner`` needs, read from the checkpoint at ``path``."""
    ckpt = read_checkpoint(path)
    out: dict[str, np.ndarray] = {"config": np.array([ckpt.config.to_json()])}
    if ckpt.has("weights"):
        for name, tensor in read_weights(ckpt).items():
            if name.startswith(_PREFIX):
                out["weights." + name[len(_PREFIX):]] = np.ascontiguousarray(tensor, np.float32)
    if ckpt.has("identity_onnx") and ckpt.has("deformation_onnx"):
        out["deformation_onnx"] = np.frombuffer(ckpt.read("deformation_onnx"), np.uint8).copy()
    if len(out) == 1:
        raise InputFileError(os.fspath(path), "holds no deformation branch to pack")
    return out


def is_packed(arrays: dict) -> bool:
    return "config" in arrays and ("deformation_onnx" in arrays or any(k.startswith("weights.") for k in arrays))


class PackedRunner:
    """Runs the deformation branch from packed arrays (``GeneratorRunner.deformation`` only)."""

    def __init__(self, arrays: dict, threads: int | None = None):
        if not is_packed(arrays):
            raise GaussianHeadsError("the stored generator deformation is not packed completely")
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.config = GeneratorConfig.from_json(str(self.arrays["config"].reshape(-1)[0]))
        weights = {k[len("weights."):]: v for k, v in self.arrays.items() if k.startswith("weights.")}
        if "deformation_onnx" in self.arrays and (_onnxruntime_available() or not weights):
            self._init_onnx(threads)
        else:
            self._init_torch(weights)

    def _init_onnx(self, threads):
        from .onnx_runtime import DEFORMATION_OUTPUTS, _check_io, _session

        cfg, where = self.config, "packed deformation.onnx"
        self.backend = "onnx"
        self._session = _session(self.arrays["deformation_onnx"].tobytes(), where, threads)
        rd, cf = cfg.deform_resolution, cfg.feature_channels
        _check_io(self._session, where, {"features": (1, cf, rd, rd), "condition": (1, cfg.n_cond)},
                  {"residuals": (1, RESIDUAL_CHANNELS, rd, rd)})
        self._outputs = list(DEFORMATION_OUTPUTS)

    def _init_torch(self, weights: dict):
        try:
            import torch
        except Exception:
            raise GaussianHeadsError("this avatar's generator deformation was packed as torch weights; "
                                     "torch is not installed here") from None
        from .networks import DeformationBranch

        self.backend = "torch"
        self._torch = torch
        branch = DeformationBranch(self.config)
        expected = {k: tuple(v.shape) for k, v in branch.state_dict().items()}
        if set(expected) != set(weights) or any(tuple(weights[k].shape) != s for k, s in expected.items()):
            raise GaussianHeadsError("the packed generator deformation does not match its config")
        branch.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in weights.items()},
                               strict=True)
        self._branch = branch.eval()

    def identity(self, z, shape_map, truncation):
        raise GaussianHeadsError("a packed generator holds only its deformation branch; sample from the checkpoint")

    def deformation(self, features: np.ndarray, condition: np.ndarray) -> np.ndarray:
        """features [Cf, r, r], condition [n_cond] -> raw residual maps [11, r, r]."""
        features, condition = deformation_inputs(self.config, features, condition)
        if self.backend == "onnx":
            (residuals,) = self._session.run(self._outputs, {"features": features[None], "condition": condition})
            return residuals[0]
        torch = self._torch
        with torch.no_grad():
            r = self._branch(torch.from_numpy(features)[None], torch.from_numpy(condition))
        return r[0].numpy()
