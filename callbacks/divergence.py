"""Stop a run that diverges, instead of training on NaNs for hours."""

from __future__ import annotations

import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

from lightning_mbrl.distributed import SYNC
from lightning_mbrl.errors import TrainingDiverged, require_positive


class DivergenceGuard(pl.Callback):
    """Watches every metric row the module logs (``train/*``, ``model/*``, ``eval/*``: losses, the
    imagined rewards and returns of the model's predictions, ...) and, at each new row, every
    parameter and buffer of the module. The run stops with a one-line :class:`TrainingDiverged`
    naming the quantity and the frame as soon as

    - a logged value, a parameter or a buffer is not finite (always), or
    - with ``loss_growth`` set, the magnitude of a loss (a metric with ``loss`` in its name) exceeds
      ``loss_growth`` times the median of its last ``window`` logged magnitudes (after
      ``min_history`` rows); ``on_growth: warn`` warns instead of stopping.

    Rows are written every ``trainer.log_every_n_steps`` iterations and at every model fit and
    evaluation, so the check costs one pass over the parameters per row. On a stop no checkpoint of
    the diverged state is written: the newest checkpoint of ``callbacks.FrameCheckpoint`` (named in
    the message) is the last good one, and ``--ckpt_path`` resumes from it. All ranks stop together
    (the verdict is summed across ranks).
    """

    def __init__(
        self,
        loss_growth: float | None = None,
        on_growth: Literal["stop", "warn"] = "stop",
        window: int = 20,
        min_history: int = 5,
    ) -> None:
        if loss_growth is not None:
            require_positive("divergence.loss_growth", loss_growth)
        require_positive("divergence.window", window)
        require_positive("divergence.min_history", min_history)
        self.loss_growth, self.on_growth = loss_growth, on_growth
        self.window, self.min_history = window, min_history
        self.history: dict[str, deque[float]] = {}
        self.warnings = 0

    # ------------------------------------------------------------------------------------- checks
    @staticmethod
    def non_finite(module: pl.LightningModule, row: dict[str, float]) -> str | None:
        for name, value in row.items():
            if not math.isfinite(value) and not (name == "train/episode_return" and math.isnan(value)):
                return f"{name} is {value}"
        tensors = [*module.named_parameters(), *module.named_buffers()]
        floats = [(n, t) for n, t in tensors if t.is_floating_point()]
        if floats and not bool(torch.stack([t.detach().isfinite().all() for _, t in floats]).all()):
            name = next(n for n, t in floats if not bool(t.detach().isfinite().all()))
            return f"parameter or buffer {name} is not finite"
        return None

    def grown(self, row: dict[str, float]) -> str | None:
        """The first loss that grew past ``loss_growth`` times its running median (then records the row)."""
        found = None
        for name, value in row.items():
            if "loss" not in name.split("/")[-1]:
                continue
            past = self.history.setdefault(name, deque(maxlen=self.window))
            if found is None and self.loss_growth is not None and len(past) >= self.min_history:
                median = statistics.median(past)
                if abs(value) > self.loss_growth * median:
                    found = (f"{name} grew to {value:.4g}, {abs(value) / max(median, 1e-30):.3g} times the median "
                             f"{median:.4g} of its last {len(past)} values (divergence.loss_growth {self.loss_growth:g})")
            past.append(abs(value))
        return found

    # ------------------------------------------------------------------------------------- hooks
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        row = dict(pl_module.rows_to_check)
        if not row:
            return
        pl_module.rows_to_check.clear()
        problem, stop = self.non_finite(pl_module, row), True
        if problem is None:
            problem = self.grown(row)
            stop = problem is not None and self.on_growth == "stop"
            if problem is not None and not stop:
                self.warnings += 1
                rank_zero_warn(f"frame {pl_module.frames}: {problem}")
        verdict = torch.tensor([float(stop)], device=pl_module.device)
        if float(SYNC.sum_(verdict)) == 0:  # every rank row-checks at the same iterations
            return
        where = problem if (stop and problem) else "another rank diverged"
        raise TrainingDiverged(
            f"training diverged at frame {pl_module.frames}: {where}; stopped without saving this state "
            f"({self.last_good_checkpoint(trainer)})"
        )

    @staticmethod
    def last_good_checkpoint(trainer: pl.Trainer) -> str:
        from callbacks.checkpoint import FrameCheckpoint

        for cb in trainer.callbacks:
            if isinstance(cb, FrameCheckpoint) and cb.last_saved is not None:
                return f"last good checkpoint: {Path(cb.last_saved)}, frame {cb.last_saved_frames}"
        return "no checkpoint was written before"
