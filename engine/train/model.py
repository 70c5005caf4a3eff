"""The generator as it is trained: maps → Gaussians on the articulated mesh → images, in torch.

``TrainingHead(model, config)`` holds what the generator's outputs are placed with (non-trainable
buffers): the head model in torch (``TorchHeadModel``), the checkpoint's UV binding (the same
``sample_uv_binding(model, n_gaussians, seed=binding_seed)`` the Checkpoint source uses), the
shape-map basis (``shape_uv_map`` is linear in β, so the map of a batch is one einsum) and the
eyelid channels of the condition vector. It reproduces ``generator.source`` in torch:
``CheckpointSource.sample(...).pose(params)`` places the Gaussians where ``gaussians(...)`` does.

Shapes: B batch, N Gaussians, V vertices, S identity, E expression components, R UV resolution.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..avatar.binding import sample_uv_binding
from ..generator.config import GeneratorConfig
from ..generator.networks import Generator, decode_attributes_torch, sample_maps_torch
from ..generator.uvmap import shape_uv_map
from ..head_model.lbs_torch import TorchHeadModel
from ..head_model.model import HeadModel
from ..raster.reference import covariances_3d

PARAM_KEYS = ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation")
CUE_SCALE = 0.01        # metres of expression displacement that saturate the geometry cue's colour
CUE_SIGMA = 0.5         # cue splat std-dev in units of the mean edge length


class TrainingHead(nn.Module):
    def __init__(self, model: HeadModel, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.lbs = TorchHeadModel(model)
        binding = sample_uv_binding(model, config.n_gaussians, seed=config.binding_seed)
        faces = np.asarray(model.faces, np.int64)

        def buf(name, array, dtype=torch.float32):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype), persistent=False)

        buf("uv", binding.uv)
        buf("corners", faces[binding.face_idx], torch.int64)
        buf("bary", binding.bary)
        buf("faces", faces, torch.int64)
        eye = np.eye(model.n_shape, dtype=np.float32)
        basis = np.stack([shape_uv_map(model, eye[s], config.uv_resolution)[:3] for s in range(model.n_shape)])
        buf("shape_basis", basis)                                              # [S, 3, R, R]
        buf("shape_mask", shape_uv_map(model, np.zeros(model.n_shape, np.float32), config.uv_resolution)[3:4])
        edges = np.linalg.norm(model.v_template[faces[:, [1, 2, 0]]] - model.v_template[faces], axis=-1)
        self.cue_sigma = float(CUE_SIGMA * edges.mean())
        self.eyelids: list[int] = []
        if config.n_eyelid and model.expr_space == "arkit":
            names = list(model.expr_names)
            self.eyelids = [names.index(n) if n in names else -1
                            for n in ("eyeBlinkLeft", "eyeBlinkRight")[: config.n_eyelid]]
        self.n_model_expr = model.n_expr

    # -- conditioning -------------------------------------------------------------------------------
    def shape_maps(self, shape: torch.Tensor) -> torch.Tensor:
        """shape [B, S] -> [B, 4, R, R] (what ``shape_uv_map`` gives per sample)."""
        disp = torch.einsum("bs,schw->bchw", shape, self.shape_basis)
        return torch.cat([disp, self.shape_mask.expand(shape.shape[0], -1, -1, -1)], dim=1)

    def condition(self, expr: torch.Tensor, jaw: torch.Tensor) -> torch.Tensor:
        """expr [B, E], jaw [B, 3] -> [B, n_cond] (``generator.source.condition_vector``, batched)."""
        cfg, n_b = self.config, expr.shape[0]
        psi = torch.zeros(n_b, cfg.n_expr, dtype=expr.dtype, device=expr.device)
        m = min(cfg.n_expr, expr.shape[1])
        psi[:, :m] = expr[:, :m]
        theta = torch.zeros(n_b, cfg.n_jaw, dtype=expr.dtype, device=expr.device)
        theta[:, : min(3, cfg.n_jaw)] = jaw[:, : min(3, cfg.n_jaw)]
        lids = torch.zeros(n_b, cfg.n_eyelid, dtype=expr.dtype, device=expr.device)
        for i, channel in enumerate(self.eyelids):
            if channel >= 0:
                lids[:, i] = expr[:, channel]
        return torch.cat([psi, theta, lids], dim=1)

    def vertices(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """params: the PARAM_KEYS as batched tensors -> posed vertices [B, V, 3]."""
        return self.lbs(*(params[k] for k in PARAM_KEYS))[0]

    # -- generator outputs -> Gaussians ---------------------------------------------------------------
    def gaussians(self, attributes: torch.Tensor, residuals: torch.Tensor, vertices: torch.Tensor):
        """attributes [B, C, R, R], residuals [B, 11, r, r], vertices [B, V, 3] ->
        (means [B, N, 3], covs [B, N, 3, 3], sh [B, N, K, 3], opacities [B, N])."""
        cfg, n_b = self.config, attributes.shape[0]
        uv = self.uv.expand(n_b, -1, -1)
        raw = sample_maps_torch(attributes, uv)                                       # [B, N, C]
        dec = decode_attributes_torch(cfg, raw.reshape(-1, raw.shape[-1]))
        res = torch.tanh(sample_maps_torch(residuals, uv).reshape(-1, residuals.shape[1]))
        offsets = dec["offsets"] + cfg.d_offset_range * res[:, 0:3]
        log_scales = dec["log_scales"] + cfg.d_log_scale_range * res[:, 3:6]
        quats = dec["quats"] + cfg.d_quat_range * res[:, 6:10]
        quats = quats / quats.norm(dim=1, keepdim=True).clamp_min(1e-12)
        opacity_logits = dec["opacity_logits"] + cfg.d_opacity_range * res[:, 10]
        n = self.uv.shape[0]
        v = vertices[:, self.corners]                                                  # [B, N, 3, 3]
        v0, v1, v2 = v[:, :, 0], v[:, :, 1], v[:, :, 2]
        e1, e2 = v1 - v0, v2 - v0
        x = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        nrm = torch.cross(e1, e2, dim=-1)
        z = nrm / nrm.norm(dim=-1, keepdim=True).clamp_min(1e-18)
        y = torch.cross(z, x, dim=-1)
        rot = torch.stack([x, y, z], dim=-1)                                           # [B, N, 3, 3]
        s = ((e1.norm(dim=-1) + e2.norm(dim=-1) + (v2 - v1).norm(dim=-1)) / 3.0).clamp_min(1e-9)
        points = (v * self.bary[None, :, :, None]).sum(2)
        means = points + s[..., None] * (rot @ offsets.view(n_b, n, 3, 1))[..., 0]
        local = covariances_3d(quats, torch.exp(log_scales)).view(n_b, n, 3, 3)
        covs = (s * s)[..., None, None] * (rot @ local @ rot.transpose(-1, -2))
        sh = dec["sh"].view(n_b, n, -1, 3)
        return means, covs, sh, torch.sigmoid(opacity_logits).view(n_b, n)

    def geometry_cue(self, params: dict[str, torch.Tensor], world_to_cam, intrinsics, width: int, height: int,
                     window: int = 5) -> torch.Tensor:
        """[B, 3, H, W] render of the mesh coloured by its expression-only displacement from neutral.

        Colour = 0.5 + d / (2 CUE_SCALE) (clamped) with d = vertices(params) − vertices(params with
        expression and jaw zeroed); the mesh is drawn as one isotropic splat per vertex.
        """
        from .splat_torch import rasterize

        with torch.no_grad():
            verts = self.vertices(params)
            neutral = dict(params, expr=torch.zeros_like(params["expr"]), jaw=torch.zeros_like(params["jaw"]))
            disp = verts - self.vertices(neutral)
            colours = (0.5 + disp / (2 * CUE_SCALE)).clamp(0.0, 1.0)
            n_b, n_v = verts.shape[:2]
            covs = (self.cue_sigma ** 2) * torch.eye(3, device=verts.device).expand(n_b, n_v, 3, 3)
            opac = torch.full((n_b, n_v), 0.95, device=verts.device)
            rgb, _ = rasterize(verts, covs, colours, opac, world_to_cam, intrinsics, width, height,
                               (0.0, 0.0, 0.0), window=window)
        return rgb


class GeneratorStep(nn.Module):
    """What DistributedDataParallel wraps: z, shape maps, conditions -> (attributes, residuals), float32.

    Runs mapping (tracking w_avg, always float32), then synthesis and deformation of one
    ``networks.Generator``, under bfloat16 autocast when ``amp`` (CUDA).
    """

    def __init__(self, generator: Generator, amp: bool = False):
        super().__init__()
        self.generator, self.amp = generator, amp

    def forward(self, z, shape_map, condition):
        g = self.generator
        w = g.mapping(z, update_w_avg=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            attributes, features = g.synthesis(w, shape_map, noise_mode="const")
            residuals = g.deformation(features, condition)
        return attributes.float(), residuals.float()
