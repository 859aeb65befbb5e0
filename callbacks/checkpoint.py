"""Checkpoints on a schedule of real env frames, written atomically."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from callbacks.schedule import FrameSchedule
from lightning_mbrl.errors import require_non_negative


class FrameCheckpoint(pl.Callback):
    """Every ``every_frames`` real frames (per rank; ``0``: only at the end) and at the end of training,
    save ``last.ckpt`` and ``frames=<N>.ckpt`` in ``dirpath`` (default ``<run folder>/checkpoints``).
    ``fit --ckpt_path last`` resumes from the newest ``last.ckpt``.

    ``last.ckpt`` is written to ``last.ckpt.tmp`` first and then renamed over the old one (``os.replace``,
    atomic on POSIX file systems), so an interrupted write never replaces a good checkpoint;
    ``frames=<N>.ckpt`` is a hard link to it (no second copy on disk; a copy where links are not
    supported), made the same way. ``keep`` bounds the number of ``frames=*.ckpt`` files kept (oldest
    removed first; ``0`` keeps all), counting those a resumed run finds in its folder.

    Every checkpoint of the trainer records, under ``"run"``, the algorithm class and the recipe (set by
    the CLI), so that ``fit --ckpt_path`` can refuse a checkpoint of another recipe.
    """

    def __init__(self, every_frames: int = 50_000, dirpath: str | None = None, keep: int = 2) -> None:
        require_non_negative("keep", keep)
        self.schedule = FrameSchedule(every_frames)
        self.dirpath, self.keep = dirpath, keep
        self.saved: list[Path] = []
        self._last_saved_at: int | None = None
        self.recipe: str | None = None  # set by the CLI; saved in every checkpoint
        self.last_saved: Path | None = None  # this fit's newest last.ckpt and its frame count
        self.last_saved_frames: int | None = None

    def directory(self, trainer: pl.Trainer) -> Path:
        if self.dirpath is not None:
            return Path(self.dirpath)
        root = trainer.log_dir or trainer.default_root_dir
        return Path(root) / "checkpoints"

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.schedule.start(pl_module.frames)
        directory = self.directory(trainer)
        if trainer.is_global_zero and directory.is_dir():  # a resumed run continues its folder: count its files
            found = {int(m[1]): p for p in directory.glob("frames=*.ckpt")
                     if (m := re.fullmatch(r"frames=(\d+)\.ckpt", p.name))}
            self.saved = [found[n] for n in sorted(found) if n <= pl_module.frames]

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        cls = type(pl_module)
        checkpoint["run"] = {"recipe": self.recipe, "algorithm": f"{cls.__module__}.{cls.__qualname__}"}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.schedule.due(pl_module.frames):
            self.save(trainer, pl_module, f"frames={pl_module.frames}.ckpt")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._last_saved_at != pl_module.frames:
            self.save(trainer, pl_module, None)

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str | None) -> None:
        """Write ``last.ckpt`` and (if given) ``name``, each atomically."""
        directory = self.directory(trainer)
        last = directory / "last.ckpt"
        tmp = last.with_name("last.ckpt.tmp")
        # the full state; every rank calls it (it gathers every rank's state); rank 0 writes
        trainer.save_checkpoint(tmp, weights_only=False)
        self._last_saved_at = pl_module.frames
        self.last_saved, self.last_saved_frames = last, pl_module.frames
        if not trainer.is_global_zero:
            return
        os.replace(tmp, last)
        if name:
            path = directory / name
            tmp = path.with_name(path.name + ".tmp")
            tmp.unlink(missing_ok=True)
            try:
                os.link(last, tmp)
            except OSError:
                shutil.copyfile(last, tmp)
            os.replace(tmp, path)
            self.saved.append(directory / name)
            while self.keep and len(self.saved) > self.keep:
                self.saved.pop(0).unlink(missing_ok=True)
