"""TensorBoard logging of a training run (rank 0): ``<out>/tensorboard/``, beside log.csv and samples/.

Scalars (the log.csv rows, same steps): ``loss/g``, ``loss/d``, ``logits/real``, ``logits/fake``,
``r1`` (only on R1 steps), ``speed/steps_per_s``; images: ``samples`` (the PNG grid,
[2 H, 8 W, 3] uint8, row 1 dataset, row 2 EMA generator) whenever samples are written.

The ``tensorboard`` package is a development dependency: without it ``open_board`` prints one
line and returns None, and training goes on with log.csv alone. A resumed run appends to the
same folder with ``purge_step`` = the resumed step + 1, so points an interrupted run logged after
its last saved state are hidden and the resumed run's points replace them (no duplicates).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

FOLDER = "tensorboard"
SCALAR_TAGS = {"loss_g": "loss/g", "loss_d": "loss/d", "d_real": "logits/real", "d_fake": "logits/fake",
               "r1": "r1", "steps_per_s": "speed/steps_per_s"}


class Board:
    """A SummaryWriter on ``<out>/tensorboard``: ``scalars(row)``, ``image(step, grid)``, ``flush()``, ``close()``."""

    def __init__(self, writer):
        self.writer = writer

    def scalars(self, row: dict) -> None:
        """row: a log.csv row (``step`` and the columns of SCALAR_TAGS); non-finite values (no R1) are skipped."""
        for key, tag in SCALAR_TAGS.items():
            value = row.get(key)
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag, value, row["step"])

    def image(self, step: int, grid: np.ndarray) -> None:
        """grid [H, W, 3] uint8."""
        self.writer.add_image("samples", grid, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_board(out: str, step: int) -> Board | None:
    """A Board on ``out``/tensorboard for a run starting at ``step`` (> 0: resumed), or None without the package."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard is not installed: logging to log.csv only (pip install tensorboard)", file=sys.stderr)
        return None
    return Board(SummaryWriter(os.path.join(out, FOLDER), purge_step=step + 1 if step > 0 else None))
