"""Batches for training: a ``DistributedSampler`` over the training split, streamed from disk.

``BatchStream(dataset, batch, rank, world_size, seed)`` yields dicts of tensors; its position
(items consumed by this process) is all that resuming needs: epoch = position // per-epoch items,
offset = position % per-epoch items, and the sampler's order is a pure function of
(seed, epoch), so a resumed run reads exactly the images the uninterrupted one would have.

Batch dict: image [B, 3, H, W], the head parameters (``model.PARAM_KEYS``, [B, ...]),
world_to_cam [B, 4, 4], intrinsics [B, 4] (float32), index [B] int64.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from .dataset import SPLIT_TRAIN, HeadDataset
from .model import PARAM_KEYS


class _TrainSplit(Dataset):
    def __init__(self, dataset: HeadDataset):
        self.dataset = dataset
        self.indices = dataset.indices(SPLIT_TRAIN)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return int(self.indices[i])


def collate(dataset: HeadDataset, indices, device) -> dict[str, torch.Tensor]:
    """Read the items at dataset ``indices`` into one batch dict (see the module docstring)."""
    idx = np.asarray(indices, np.int64)
    a = dataset.arrays
    out = {"image": torch.from_numpy(np.stack([dataset.load_image(int(i)) for i in idx]))}
    for key in PARAM_KEYS:
        out[key] = torch.from_numpy(np.ascontiguousarray(a[key][idx], np.float32))
    out["world_to_cam"] = torch.from_numpy(np.ascontiguousarray(a["world_to_cam"][idx], np.float32))
    out["intrinsics"] = torch.from_numpy(np.ascontiguousarray(a["intrinsics"][idx], np.float32))
    out["index"] = torch.from_numpy(idx)
    return {k: v.to(device) for k, v in out.items()}


class BatchStream:
    def __init__(self, dataset: HeadDataset, batch: int, rank: int, world_size: int, seed: int, device,
                 position: int = 0):
        self.dataset, self.batch, self.device = dataset, int(batch), device
        split = _TrainSplit(dataset)
        if len(split) < world_size * self.batch:
            from ..errors import GaussianHeadsError

            raise GaussianHeadsError(f"{dataset.root}: {len(split)} training images are fewer than one batch "
                                     f"of {self.batch} per process x {world_size} processes")
        self.split = split
        self.sampler = DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.per_epoch = len(self.sampler)
        self.position = int(position)
        self._epoch, self._order = -1, []

    def _item(self, position: int) -> int:
        epoch, offset = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(iter(self.sampler)), epoch
        return self.split[self._order[offset]]

    def next(self) -> dict[str, torch.Tensor]:
        indices = [self._item(self.position + i) for i in range(self.batch)]
        self.position += self.batch
        return collate(self.dataset, indices, self.device)
