"""Callbacks that tests pass to recipe runs in subprocesses (``--trainer.callbacks+=tests.helpers.X``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lightning_mbrl import keys


class KillAt(pl.Callback):
    """SIGKILL this process at the start of the first iteration that begins at ``frames`` or later:
    no handler runs, no checkpoint is written, like a preempted job."""

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if pl_module.frames >= self.frames:
            os.kill(os.getpid(), signal.SIGKILL)


class DumpRank(pl.Callback):
    """At the end of a fit, each rank saves its module state and the observations of its real replay to
    ``<directory>/rank<r>.pt``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        buffer = pl_module.runtime.buffer
        state = {
            "state_dict": {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()},
            "observations": buffer[: len(buffer)][keys.OBSERVATION].cpu().clone(),
            "frames": pl_module.frames,
            "updates": pl_module.updates,
            "world_size": trainer.world_size,
        }
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        torch.save(state, Path(self.directory) / f"rank{trainer.global_rank}.pt")
