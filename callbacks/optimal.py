"""The exact optimal return logged beside the evaluated ones, for tasks with an exact solver."""

from __future__ import annotations

import pytorch_lightning as pl

from callbacks.evaluation import PeriodicEval
from callbacks.schedule import FrameSchedule
from lightning_mbrl.envs.pwl_env import PREFIX, optimal_return
from lightning_mbrl.errors import ConfigError


class OptimalReturn(PeriodicEval):
    """Every ``every_frames`` real frames and at the end of training, log ``eval/optimal_return``: the
    best expected episode return of the task, computed exactly (the 1-D piecewise-linear MDPs,
    ``pwl/...``), so that the gap of ``eval/return`` and ``eval/boots*/return`` to the optimum is
    visible on the same plot."""

    def __init__(self, every_frames: int = 1_000) -> None:
        self.schedule = FrameSchedule(every_frames)
        self.value = float("nan")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        env = pl_module.env_id
        if not env.startswith(PREFIX):
            raise ConfigError(f"OptimalReturn needs a task with an exact solver ({PREFIX}... ids), got {env!r}")
        self.value = optimal_return(env, max_episode_steps=pl_module.spec.max_episode_steps,
                                    **pl_module.env_kwargs)
        self.schedule.start(pl_module.frames)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at_end: bool) -> None:
        pl_module.log_to_loggers({"eval/optimal_return": self.value})
