"""Checkpoints on a schedule of real env frames, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from callbacks.schedule import FrameSchedule
from lightning_mbrl.errors import require_non_negative


class FrameCheckpoint(pl.Callback):
    """Every ``every_frames`` real frames and at the end of training, save ``frames=<N>.ckpt`` and
    ``last.ckpt`` in ``dirpath`` (default ``<run folder>/checkpoints``).

    Each file is written to ``<name>.tmp`` first and then renamed over the old one (``os.replace``, atomic
    on POSIX file systems), so an interrupted write never replaces a good checkpoint. ``keep`` bounds
    the number of ``frames=*.ckpt`` files kept (oldest removed first; ``0`` keeps all).
    """

    def __init__(self, every_frames: int = 50_000, dirpath: str | None = None, keep: int = 3) -> None:
        require_non_negative("keep", keep)
        self.schedule = FrameSchedule(every_frames)
        self.dirpath, self.keep = dirpath, keep
        self.saved: list[Path] = []

    def directory(self, trainer: pl.Trainer) -> Path:
        if self.dirpath is not None:
            return Path(self.dirpath)
        root = trainer.log_dir or trainer.default_root_dir
        return Path(root) / "checkpoints"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule.start(pl_module.frames)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.schedule.due(pl_module.frames):
            self.save(trainer, pl_module, f"frames={pl_module.frames}.ckpt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer, pl_module, None)

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str | None) -> None:
        """Write ``name`` (if given) and ``last.ckpt``, each atomically."""
        directory = self.directory(trainer)
        for target in ([name] if name else []) + ["last.ckpt"]:
            path = directory / target
            tmp = path.with_name(path.name + ".tmp")
            trainer.save_checkpoint(tmp)  # every rank calls it; only rank 0 writes
            if trainer.is_global_zero:
                os.replace(tmp, path)
        if name and trainer.is_global_zero:
            self.saved.append(directory / name)
            while self.keep and len(self.saved) > self.keep:
                self.saved.pop(0).unlink(missing_ok=True)
