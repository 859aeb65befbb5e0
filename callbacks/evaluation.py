"""Deterministic-policy evaluation on a schedule of real env frames, and the base every evaluator shares."""

from __future__ import annotations

import abc
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import Tensor

from callbacks.schedule import FrameSchedule
from lightning_mbrl import keys, progress
from lightning_mbrl.data.collection import ActorPolicy
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.precision import evaluation_context
from lightning_mbrl.protocols import EnvMaker, Policy

EVAL_SEED_OFFSET = 10_000


def run_episodes(env, policy, max_steps: int) -> tuple[Tensor, Tensor]:
    """Run one episode in each env of the batch, all stepped together; returns (returns, lengths).

    Envs that finish early stop stepping (TorchRL partial steps) and keep their final values.
    """
    rollout = env.rollout(max_steps, policy, break_when_any_done=False, break_when_all_done=True)
    returns = rollout.get(keys.NEXT_EPISODE_RETURN)[..., -1, 0]
    lengths = rollout.get((keys.NEXT, keys.STEP_COUNT))[..., -1, 0]
    return returns.float(), lengths.float()


def counting(act: Callable[[Tensor], Tensor], tick: Callable[[], None]) -> Callable[[Tensor], Tensor]:
    """``act`` that calls ``tick()`` once per call (one step of a batch of envs), for progress reports."""

    def counted(observation: Tensor) -> Tensor:
        tick()
        return act(observation)

    return counted


class EnvOwningCallback(pl.Callback):
    """Base of the evaluation callbacks that own an env (``self._env``, built in ``on_fit_start``,
    ``None`` where there is none): it is closed when fitting ends."""

    _env = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class PeriodicEval(EnvOwningCallback, abc.ABC):
    """Base of the evaluators (``PolicyEval``, ``BootsEval``, ``MPCEval``, ``VideoEval``): ``run`` every
    ``schedule.every_frames`` real frames, and once more when training ends unless it just ran at that
    frame count, so a run shorter than ``every_frames`` is still evaluated at its end (``0`` disables
    both). Every rank runs it at the same frame counts (evaluators gather their results across ranks).
    The end evaluation happens in ``on_train_end``, before ``FrameCheckpoint`` writes the final
    checkpoint (the CLI lists the ``trainer.callbacks`` before the ``checkpoint`` section's callback)."""

    schedule: FrameSchedule
    _precision_plugin = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._precision_plugin = trainer.precision_plugin

    def precision_context(self):
        """The trainer's precision (``bf16-mixed``: autocast) for the evaluator's forward passes, which run
        outside ``training_step`` (``lightning_mbrl.precision.evaluation_context``)."""
        return evaluation_context(self._precision_plugin)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.schedule.due(pl_module.frames):
            self.run(trainer, pl_module, at_end=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.schedule.due_at_end(pl_module.frames):
            self.run(trainer, pl_module, at_end=True)

    @abc.abstractmethod
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at_end: bool) -> None:
        """Evaluate now and log (``at_end``: from ``on_train_end``, where Lightning's ``self.log`` is not allowed)."""


class PolicyEval(PeriodicEval):
    """Every ``every_frames`` real frames and at the end of training (``PeriodicEval``), run
    ``episodes`` episodes of the deterministic (mean) policy as one batch and log ``eval/return``
    (mean), ``eval/return_std`` and ``eval/episode_length``.

    Works with any module that is a ``protocols.Policy`` and ``protocols.EnvMaker``. It runs
    under ``no_grad`` with the global RNG state restored afterwards, so it never changes training.
    The eval env is reseeded before each evaluation: every evaluation starts from the same states
    (common random numbers across the curve, and the same after a resume).
    """

    def __init__(self, every_frames: int = 5_000, episodes: int = 10, max_episode_steps: int | None = None) -> None:
        if every_frames < 0:
            raise ConfigError(f"eval.every_frames must be >= 0 (0 disables), got {every_frames}")
        self.schedule = FrameSchedule(every_frames)
        if episodes < 1:
            raise ConfigError(f"eval.episodes must be >= 1, got {episodes}")
        self.every_frames = every_frames
        self.episodes = episodes
        self.max_episode_steps = max_episode_steps
        self.calls = 0
        self.last_return = float("nan")
        self.seed: int | None = None
        self._env = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (isinstance(pl_module, Policy) and isinstance(pl_module, EnvMaker)):
            raise TypeError(f"PolicyEval needs a module with act() and make_env(); got {type(pl_module).__name__}")
        if self.every_frames:
            self.seed = pl_module.rank_seed + EVAL_SEED_OFFSET
            self._env = pl_module.make_env(num_envs=self.episodes, seed=self.seed)
            self.schedule.start(pl_module.frames)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, at_end: bool) -> None:
        returns, lengths = self.evaluate(pl_module)
        self.calls += 1
        # Every rank evaluates at the same frame count, so the gathers below never deadlock.
        returns = trainer.strategy.all_gather(returns.to(pl_module.device)).flatten()
        lengths = trainer.strategy.all_gather(lengths.to(pl_module.device)).flatten()
        self.last_return = float(returns.mean())
        pl_module.log_to_loggers({
            "eval/return": self.last_return,
            "eval/return_std": float(returns.std(unbiased=False)),
            "eval/episode_length": float(lengths.mean()),
        })
        if not at_end:
            pl_module.log("eval/return", self.last_return, prog_bar=True, logger=False, on_step=True, on_epoch=False)

    def evaluate(self, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        max_steps = self.max_episode_steps or pl_module.spec.max_episode_steps or 1000

        def act(obs: Tensor) -> Tensor:
            with self.precision_context():
                return pl_module.act(obs.to(pl_module.device), deterministic=True).cpu()

        with progress.phase("eval policy", max_steps, unit="steps") as tick, torch.no_grad(), torch.random.fork_rng():
            self._env.set_seed(self.seed)  # the same start states at every evaluation (and after a resume)
            return run_episodes(self._env, ActorPolicy(counting(act, tick)), max_steps)
