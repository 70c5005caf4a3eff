"""Process-group set-up for ``torchrun`` (DistributedDataParallel): gloo on CPU, NCCL on CUDA.

``torchrun --nproc_per_node N -m engine train …`` sets RANK, WORLD_SIZE and LOCAL_RANK; a plain
``python -m engine train`` runs as a single process (world size 1, no process group).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import GaussianHeadsError


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistEnv:
    """Read torchrun's environment, pick the device and start the process group if needed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise GaussianHeadsError("--device cuda: torch sees no CUDA GPU")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        # [1, C] weights: their gradients' strides differ from the bucket's only in a size-1 dimension
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return DistEnv(rank, world, local, dev)


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank when ``flag`` is true on any (all ranks stop at the same step)."""
    if not env.distributed:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def cleanup(env: DistEnv) -> None:
    """Leave the process group together: a rank tearing gloo down while its peer still talks
    aborts the peer ("terminate called without an active exception")."""
    if env.distributed and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
