"""Batches for training: a ``DistributedSampler`` over the training split, streamed from disk.

``BatchStream(dataset, batch, rank, world_size, seed)`` yields dicts of tensors; its position
(items consumed by this process) is all that resuming needs: epoch = position // per-epoch items,
offset = position % per-epoch items, and the sampler's order is a pure function of
(seed, epoch), so a resumed run reads exactly the images the uninterrupted one would have.

With ``workers > 0`` a torch ``DataLoader`` of that many persistent worker processes decodes the
batches ahead of the trainer. The order is still decided here, in the training process (an
``ItemOrder`` walked from the stream's position); workers only decode the index lists they are
handed, so the batches are the same with 0 or N workers and ``position`` counts the items the
trainer consumed, not those prefetched.

Batch dict: image [B, 3, H, W], the head parameters (``model.PARAM_KEYS``, [B, ...]),
world_to_cam [B, 4, 4], intrinsics [B, 4] (float32), index [B] int64.
"""

from __future__ import annotations

import signal

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import GaussianHeadsError
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


class ItemOrder:
    """The dataset index read at each stream position of one process: a pure function of (seed, epoch, offset)."""

    def __init__(self, split: _TrainSplit, rank: int, world_size: int, seed: int):
        self.split = split
        self.sampler = DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.per_epoch = len(self.sampler)
        self._epoch, self._order = -1, []

    def __call__(self, position: int) -> int:
        epoch, offset = divmod(position, self.per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(iter(self.sampler)), epoch
        return self.split[self._order[offset]]

    def batches(self, position: int, batch: int):
        """Endless index lists of ``batch`` items from ``position`` on (what the DataLoader's workers decode)."""
        while True:
            yield [self(position + i) for i in range(batch)]
            position += batch


class _Failed:
    """A GaussianHeadsError raised in a worker, carried back as its message (InputFileError does not unpickle)."""

    def __init__(self, message: str):
        self.message = message


class _DecodeBatch(Dataset):
    """Worker side: an index list -> the CPU batch dict of ``collate`` (or ``_Failed``)."""

    def __init__(self, dataset: HeadDataset):
        self.dataset = dataset

    def __getitem__(self, indices):
        try:
            return collate(self.dataset, indices, "cpu")
        except GaussianHeadsError as exc:
            return _Failed(str(exc))


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)                        # decoding is numpy/PIL: no use for torch's thread pool
    for s in (signal.SIGINT, signal.SIGTERM):       # the trainer stops on these and then shuts the workers down
        signal.signal(s, signal.SIG_IGN)


class BatchStream:
    """``next()`` -> the batch dict at ``position`` (then advanced by ``batch``); ``close()`` stops the workers."""

    def __init__(self, dataset: HeadDataset, batch: int, rank: int, world_size: int, seed: int, device,
                 position: int = 0, workers: int = 0):
        self.dataset, self.batch, self.device = dataset, int(batch), torch.device(device)
        self.workers = int(workers)
        split = _TrainSplit(dataset)
        if len(split) < world_size * self.batch:
            raise GaussianHeadsError(f"{dataset.root}: {len(split)} training images are fewer than one batch "
                                     f"of {self.batch} per process x {world_size} processes")
        self.split, self._where = split, (rank, world_size, int(seed))
        self.position = int(position)
        self._order = ItemOrder(split, *self._where)
        self._loader = None                         # the DataLoader's iterator, started at the first next()

    def _start_workers(self):
        from torch.utils.data import DataLoader

        # the order walks in this process (a second ItemOrder, ahead of ``position`` by what is prefetched)
        order = ItemOrder(self.split, *self._where).batches(self.position, self.batch)
        loader = DataLoader(_DecodeBatch(self.dataset), batch_size=None, sampler=order, num_workers=self.workers,
                            persistent_workers=True, prefetch_factor=2, pin_memory=self.device.type == "cuda",
                            worker_init_fn=_worker_init,
                            generator=torch.Generator().manual_seed(self._where[2]))  # leaves torch's global RNG alone
        return iter(loader)

    def next(self) -> dict[str, torch.Tensor]:
        if self.workers <= 0:
            indices = [self._order(self.position + i) for i in range(self.batch)]
            self.position += self.batch
            return collate(self.dataset, indices, self.device)
        if self._loader is None:
            self._loader = self._start_workers()
        batch = next(self._loader)
        if isinstance(batch, _Failed):
            self.close()
            raise GaussianHeadsError(batch.message)
        self.position += self.batch
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def close(self) -> None:
        """Stop the worker processes (a later ``next()`` starts new ones at the current position)."""
        loader, self._loader = self._loader, None
        if loader is not None:
            loader._shutdown_workers()              # what the iterator's __del__ does, but now
