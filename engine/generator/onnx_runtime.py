"""Run the exported identity and deformation branches with onnxruntime alone (never imports torch).

Inputs and outputs are described in ``onnx_export``'s docstring; sessions are checked against the
checkpoint's config when opened, so a mismatched or corrupt file fails early with InputFileError.
"""

from __future__ import annotations

import numpy as np

from ..errors import GaussianHeadsError, InputFileError, check_shape
from .checkpoint import CheckpointFiles
from .config import RESIDUAL_CHANNELS, SHAPE_MAP_CHANNELS, GeneratorConfig

IDENTITY_INPUTS = ("z", "truncation", "shape_map")
IDENTITY_OUTPUTS = ("attributes", "features")
DEFORMATION_INPUTS = ("features", "condition")
DEFORMATION_OUTPUTS = ("residuals",)


def _session(data: bytes, where: str, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    # Idle worker threads sleep instead of spinning: on a shared CPU (Blender's UI, the numba
    # rasterizer, other jobs) spinning cost ~1.5x wall time in our measurements (docs/PERFORMANCE.md).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InputFileError(where, f"not a valid ONNX model ({msg})") from None


def _check_io(session, where: str, inputs: dict[str, tuple], outputs: dict[str, tuple]) -> None:
    got_in = {i.name: tuple(i.shape) for i in session.get_inputs()}
    got_out = {o.name: tuple(o.shape) for o in session.get_outputs()}
    for kind, got, want in (("input", got_in, inputs), ("output", got_out, outputs)):
        if set(got) != set(want):
            raise InputFileError(where, f"{kind}s are {sorted(got)}, the config needs {sorted(want)}")
        for name, shape in want.items():
            if got[name] != shape:
                raise InputFileError(where, f"{kind} {name} has shape {got[name]}, the config needs {shape}")



def deformation_inputs(cfg, features: np.ndarray, condition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked, contiguous float32 inputs of the deformation branch: features [Cf, r, r] and
    condition [n_cond] -> (features [Cf, r, r], condition [1, n_cond])."""
    features = np.ascontiguousarray(np.asarray(features, np.float32))
    check_shape("features", features, (cfg.feature_channels, cfg.deform_resolution, cfg.deform_resolution))
    condition = np.ascontiguousarray(np.asarray(condition, np.float32).reshape(1, -1))
    check_shape("condition", condition, (1, cfg.n_cond))
    return features, condition

class OnnxRunner:
    """GeneratorRunner on the two ONNX branches of a checkpoint (numpy + onnxruntime only)."""

    backend = "onnx"

    def __init__(self, ckpt: CheckpointFiles, threads: int | None = None):
        cfg: GeneratorConfig = ckpt.config
        self.config = cfg
        self.path = ckpt.path
        r, rd, cf = cfg.uv_resolution, cfg.deform_resolution, cfg.feature_channels
        where = ckpt.member_path("identity_onnx")
        self._identity = _session(ckpt.read("identity_onnx"), where, threads)
        _check_io(self._identity, where,
                  {"z": (1, cfg.z_dim), "truncation": (1,), "shape_map": (1, SHAPE_MAP_CHANNELS, r, r)},
                  {"attributes": (1, cfg.attr_channels, r, r), "features": (1, cf, rd, rd)})
        where = ckpt.member_path("deformation_onnx")
        self._deformation = _session(ckpt.read("deformation_onnx"), where, threads)
        _check_io(self._deformation, where, {"features": (1, cf, rd, rd), "condition": (1, cfg.n_cond)},
                  {"residuals": (1, RESIDUAL_CHANNELS, rd, rd)})

    def identity(self, z: np.ndarray, shape_map: np.ndarray, truncation: float):
        """z [z_dim], shape_map [4, R, R] -> (attributes [attr_channels, R, R], features [Cf, r, r])."""
        cfg = self.config
        z = np.ascontiguousarray(np.asarray(z, np.float32).reshape(1, -1))
        check_shape("z", z, (1, cfg.z_dim))
        shape_map = np.ascontiguousarray(np.asarray(shape_map, np.float32))
        check_shape("shape_map", shape_map, (SHAPE_MAP_CHANNELS, cfg.uv_resolution, cfg.uv_resolution))
        if not np.isfinite(z).all() or not np.isfinite(shape_map).all():
            raise GaussianHeadsError("generator inputs contain NaN or infinity")
        attributes, features = self._identity.run(
            list(IDENTITY_OUTPUTS),
            {"z": z, "truncation": np.array([truncation], np.float32), "shape_map": shape_map[None]})
        return attributes[0], features[0]

    def deformation(self, features: np.ndarray, condition: np.ndarray) -> np.ndarray:
        """features [Cf, r, r], condition [n_cond] -> raw residual maps [11, r, r]."""
        features, condition = deformation_inputs(self.config, features, condition)
        (residuals,) = self._deformation.run(list(DEFORMATION_OUTPUTS),
                                             {"features": features[None], "condition": condition})
        return residuals[0]
