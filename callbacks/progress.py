"""The progress bar of every recipe: real env frames, the recent frame rate and its ETA, and the
phase the run is in (model pretraining, model fits, evaluations, videos) as a second bar."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm, TQDMProgressBar

from lightning_mbrl import progress
from lightning_mbrl.errors import require_positive

BAR_FORMAT = "{desc} {n:,}/{total:,} {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"
OPEN_BAR_FORMAT = "{desc} {n:,} {unit} [{elapsed}{postfix}]"  # a phase of unknown length (MBPO's model fit)
HIDDEN_METRICS = ("frames", "fps", "v_num")  # the bar itself shows frames and the recent rate


class FrameProgressBar(TQDMProgressBar):
    """On stderr, rank 0 only::

        frames 12,000/400,000   3%|▍          | [05:10, 31.2 frames/s, ETA 3:21:00, episodes=12, eval/return=312]
        model pretraining 1,200/10,000  12%|█  | [00:12, 98.0 steps/s, ETA 1:30]

    The first bar counts the module's real env frames (``frames`` of ``max_frames``; after a resume
    it starts where the checkpoint was); its rate and ETA come from the last ``rate_window_s`` seconds
    (``lightning_mbrl.progress.RateMeter``), so the fast random warm-up does not set the ETA of the
    slow model-based part. Under it, every phase that code reports with
    ``lightning_mbrl.progress.phase`` gets its own bar while it runs. Bars are redrawn at most every
    ``refresh_seconds`` (default: 0.5 on a terminal, 10 when stderr goes to a file, so logs stay small).

    The CLI adds it to every recipe; ``--trainer.enable_progress_bar false`` turns it off.
    """

    def __init__(self, refresh_seconds: float | None = None, rate_window_s: float = 300.0,
                 process_position: int = 0) -> None:
        if refresh_seconds is None:
            refresh_seconds = 0.5 if sys.stderr.isatty() else 10.0
        require_positive("refresh_seconds", refresh_seconds)
        require_positive("rate_window_s", rate_window_s)
        super().__init__(refresh_rate=1, process_position=process_position)
        self.interval = refresh_seconds  # also the phases' (progress.ProgressSink)
        self.rate_window_s = rate_window_s
        self.clock = time.monotonic
        self._meter = progress.RateMeter(rate_window_s, self.clock)
        self._next_refresh = 0.0
        self._phases: dict[int, tuple[Tqdm, progress.RateMeter]] = {}

    # ------------------------------------------------------------------------------ the frame bar
    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc="frames", total=self.trainer.lightning_module.max_frames, leave=True,
                    position=2 * self.process_position, disable=self.is_disabled, dynamic_ncols=True,
                    file=sys.stderr, smoothing=0, bar_format=BAR_FORMAT)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.is_enabled:
            progress.install(self, self.clock)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        bar = self.train_progress_bar
        bar.reset(total=pl_module.max_frames)
        bar.initial = 0
        self._meter = progress.RateMeter(self.rate_window_s, self.clock)
        self.refresh(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.is_enabled and self.clock() >= self._next_refresh:
            self.refresh(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.refresh(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # No closing here: evaluations at the end of training (other callbacks' on_train_end) still report.
        self.refresh(trainer, pl_module)

    def refresh(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Redraw the frame bar: frames, the recent rate and ETA, and the module's progress-bar metrics."""
        bar = self._train_progress_bar
        if bar is None or bar.disable:
            return
        self._next_refresh = self.clock() + self.interval
        frames = pl_module.frames
        self._meter.update(frames)
        bar.n = frames
        details = [progress.rate_and_eta(self._meter, frames, bar.total, "frames")]
        details += [f"{name}={_number(value)}" for name, value in self.get_metrics(trainer, pl_module).items()
                    if name not in HIDDEN_METRICS]
        bar.set_postfix_str(", ".join(details), refresh=True)

    # ------------------------------------------------------------------------------ phases (progress.ProgressSink)
    def phase_started(self, phase: progress.Phase) -> None:
        bar = Tqdm(desc=phase.name, total=phase.total, unit=phase.unit, leave=False, dynamic_ncols=True,
                   position=2 * self.process_position + 1 + len(self._phases), file=sys.stderr,
                   bar_format=BAR_FORMAT if phase.total is not None else OPEN_BAR_FORMAT)
        meter = progress.RateMeter(self.rate_window_s, phase.clock)
        meter.update(0)
        self._phases[id(phase)] = (bar, meter)

    def phase_advanced(self, phase: progress.Phase) -> None:
        bar, meter = self._phases[id(phase)]
        meter.update(phase.count)
        bar.n = phase.count
        bar.set_postfix_str(progress.rate_and_eta(meter, phase.count, phase.total, phase.unit), refresh=True)

    def phase_ended(self, phase: progress.Phase) -> None:
        bar, _ = self._phases.pop(id(phase))
        bar.n = phase.count
        bar.close()

    # ------------------------------------------------------------------------------ the end
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.close()

    def close(self) -> None:
        progress.uninstall(self)
        for bar, _ in self._phases.values():
            bar.close()
        self._phases.clear()
        if self._train_progress_bar is not None:
            self._train_progress_bar.close()


def _number(value: Any) -> str:
    """``12`` for whole numbers, four significant digits otherwise."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def callbacks_with_progress_bar(trainer_config: Any) -> list | None:
    """The CLI's ``trainer.callbacks`` (instantiated) plus a ``FrameProgressBar``; ``None`` where the
    progress bar is off (``enable_progress_bar: false``) or another progress bar is among them."""
    given = trainer_config.get("callbacks") or []
    given = given if isinstance(given, list) else [given]
    if trainer_config.get("enable_progress_bar") is False or any(isinstance(c, ProgressBar) for c in given):
        return None
    return [*given, FrameProgressBar()]
