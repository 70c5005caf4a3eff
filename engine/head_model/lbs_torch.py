"""FLAME-style linear blend skinning in torch: batched and differentiable (twin of :mod:`.lbs`).

``TorchHeadModel(model)(shape, expr, global_rot, neck, jaw, eyes, translation)`` with
shape [B,S], expr [B,E], global_rot/neck/jaw [B,3], eyes [B,2,3] (left, right), translation [B,3]
returns (vertices [B,V,3], transforms [B,J,4,4]) — the same numbers as ``lbs.forward`` (1e-5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import GaussianHeadsError, check_shape
from .model import HeadModel, HeadParams


def rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3]; smooth (and differentiable) at zero."""
    th2 = (rotvec * rotvec).sum(-1)
    small = th2 < 1e-6
    th2_safe = torch.where(small, torch.ones_like(th2), th2)
    th = torch.sqrt(th2_safe)
    a = torch.where(small, 1.0 - th2 / 6.0, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24.0, (1.0 - torch.cos(th)) / th2_safe)
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(rotvec.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


class TorchHeadModel(nn.Module):
    """A HeadModel as an ``nn.Module`` (arrays are non-trainable buffers; move it with ``.to``)."""

    def __init__(self, model: HeadModel, dtype: torch.dtype = torch.float32):
        super().__init__()
        n_v = model.n_vertices
        self.n_vertices, self.n_shape, self.n_expr = n_v, model.n_shape, model.n_expr
        self.parents = [int(p) for p in model.parents]
        self.n_joints = len(self.parents)

        def buf(name, array):
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype), persistent=False)

        # Vertices are processed coordinate-major ([B, 3, V]). Most are bound rigidly to one joint:
        # the joint owning the most vertices transforms the whole mesh with one [3,3] @ [3,V]
        # matmul per frame; the other rigid groups and the blended vertices (per-vertex blended
        # transforms) are then recomputed on their index subsets and written over it.
        w = np.asarray(model.weights, np.float64)
        rigid = w.max(axis=1) > 1.0 - 1e-6
        owner = w.argmax(axis=1)
        counts = [int(np.sum(rigid & (owner == j))) for j in range(self.n_joints)]
        self.main_joint = int(np.argmax(counts))
        self.groups: list[tuple[int, str]] = []
        for j in range(self.n_joints):
            idx = np.nonzero(rigid & (owner == j))[0]
            if j != self.main_joint and len(idx):
                self.register_buffer(f"rigid_idx_{j}", torch.as_tensor(idx), persistent=False)
                self.groups.append((j, f"rigid_idx_{j}"))
        blended = np.nonzero(~rigid)[0]
        self.n_blended = len(blended)
        self.register_buffer("blend_idx", torch.as_tensor(blended), persistent=False)
        buf("blend_weights", model.weights[blended].T)                                 # [J, Vb]

        buf("v_template", model.v_template.T.reshape(-1))                              # [3*V]
        # blendshape bases stored as [S+E, 3*V] so a batch of coefficients is one matmul
        dirs = np.concatenate([model.shapedirs, model.exprdirs], axis=2)                # [V, 3, S+E]
        buf("dirs", dirs.transpose(2, 1, 0).reshape(dirs.shape[2], -1))
        # joints are linear in the coefficients: J = J_template + coeffs @ joint_dirs
        jr = model.j_regressor.astype(np.float64)
        buf("joint_template", (jr @ model.v_template).reshape(-1))                      # [J*3]
        buf("joint_dirs", np.einsum("jv,vce->ejc", jr, dirs).reshape(-1, self.n_joints * 3))
        self.has_posedirs = model.posedirs is not None
        if self.has_posedirs:
            buf("posedirs", model.posedirs.transpose(2, 1, 0).reshape(model.posedirs.shape[2], -1))
        self.register_buffer("faces", torch.as_tensor(model.faces.astype(np.int64)), persistent=False)

    def forward(self, shape: torch.Tensor, expr: torch.Tensor, global_rot: torch.Tensor, neck: torch.Tensor,
                jaw: torch.Tensor, eyes: torch.Tensor, translation: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (vertices [B,V,3], transforms [B,J,4,4] world transforms of the joints)."""
        n_b = shape.shape[0]
        for name, t, tail in (("shape", shape, (self.n_shape,)), ("expr", expr, (self.n_expr,)),
                              ("global_rot", global_rot, (3,)), ("neck", neck, (3,)), ("jaw", jaw, (3,)),
                              ("eyes", eyes, (2, 3)), ("translation", translation, (3,))):
            check_shape(name, t, (n_b,) + tail)
        dt = self.v_template.dtype
        coeffs = torch.cat([shape, expr], dim=1).to(dt)
        v_shaped = torch.addmm(self.v_template, coeffs, self.dirs).view(n_b, 3, self.n_vertices)
        joints = torch.addmm(self.joint_template, coeffs, self.joint_dirs).view(n_b, self.n_joints, 3)
        pose = torch.cat([global_rot[:, None], neck[:, None], jaw[:, None], eyes], dim=1).to(dt)
        rot = rodrigues(pose)                                                              # [B, J, 3, 3]
        if self.has_posedirs:
            eye3 = torch.eye(3, dtype=dt, device=rot.device)
            feat = (rot[:, 1:] - eye3).reshape(n_b, -1)
            v_posed = torch.addmm(v_shaped.reshape(n_b, -1), feat, self.posedirs).view(n_b, 3, self.n_vertices)
        else:
            v_posed = v_shaped

        world_r: list[torch.Tensor] = []
        world_t: list[torch.Tensor] = []
        for j, p in enumerate(self.parents):
            if p < 0:
                world_r.append(rot[:, j])
                world_t.append(joints[:, j])
            else:
                world_r.append(world_r[p] @ rot[:, j])
                world_t.append((world_r[p] @ (joints[:, j] - joints[:, p])[..., None])[..., 0] + world_t[p])
        wr = torch.stack(world_r, dim=1)                                                   # [B, J, 3, 3]
        wt = torch.stack(world_t, dim=1)                                                   # [B, J, 3]
        trans = translation.to(dt)
        skin_t = wt - (wr @ joints[..., None])[..., 0] + trans[:, None]                    # [B, J, 3]
        j0 = self.main_joint
        out = torch.baddbmm(skin_t[:, j0, :, None], wr[:, j0], v_posed)                  # [B, 3, V]
        for j, name in self.groups:
            idx = getattr(self, name)
            out.index_copy_(2, idx, torch.baddbmm(skin_t[:, j, :, None], wr[:, j], v_posed.index_select(2, idx)))
        if self.n_blended:
            skin = torch.cat([wr, skin_t[..., None]], dim=-1)                              # [B, J, 3, 4]
            # per-vertex blended transforms, coordinate-major: [B, 12, Vb]
            blend = (skin.reshape(n_b, self.n_joints, 12).transpose(1, 2) @ self.blend_weights)
            blend = blend.view(n_b, 3, 4, -1)
            x = v_posed.index_select(2, self.blend_idx)                                    # [B, 3, Vb]
            vb = (blend[:, :, :3] * x[:, None]).sum(2) + blend[:, :, 3]                    # [B, 3, Vb]
            out.index_copy_(2, self.blend_idx, vb)
        verts = out.transpose(1, 2).contiguous()                                           # [B, V, 3]
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dt, device=verts.device).expand(n_b, self.n_joints, 1, 4)
        transforms = torch.cat([torch.cat([wr, (wt + trans[:, None])[..., None]], dim=-1), bottom], dim=-2)
        return verts, transforms

    def forward_params(self, params: HeadParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Convenience: a (batched or single-frame) numpy HeadParams -> forward(); adds [B=1] if needed."""
        dev = self.v_template.device
        fields = [np.asarray(getattr(params, n), np.float32) for n in
                  ("shape", "expr", "global_rot", "neck", "jaw", "eyes", "translation")]
        if fields[0].ndim == 1:
            fields = [f[None] for f in fields]
        elif fields[0].ndim != 2:
            raise GaussianHeadsError(f"HeadParams.shape has shape {fields[0].shape}, expected (S,) or (B, S)")
        return self.forward(*(torch.as_tensor(f, device=dev) for f in fields))
