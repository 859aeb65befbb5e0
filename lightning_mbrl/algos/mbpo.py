"""Model-based policy optimisation (Janner et al. 2019, "When to Trust Your Model").

SAC trained mostly on short branched rollouts of a probabilistic ensemble. Defaults are the MBPO
code's HalfCheetah settings (REFERENCE.md 1.2-1.4); recipes set the per-task values.

One iteration (``training_step``):

    collect frames_per_iteration real frames                    -> real replay
    every model_train_freq policy frames (starting with the first):
        fit the ensemble on all real data (holdout early stopping, elites)     -> model/*
        k = rollout_length(epoch), epoch = policy frames after warm-up // epoch_length
        branch rollout_batch_size k-step rollouts of the current policy
        from real states; keep the transitions before termination -> model replay
    repeat G * frames_per_iteration times:
        SAC update on real_ratio real + (1 - real_ratio) imagined transitions
"""

from __future__ import annotations

from typing import Any, Literal, Sequence, get_args

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDictBase, cat as td_cat

from lightning_mbrl import keys, progress
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.data.model_replay import (
    ModelReplay,
    check_rollout_schedule,
    model_replay_capacity,
    rollout_length,
)
from lightning_mbrl.data.snapshot import load_replay_state, replay_state
from lightning_mbrl.distributed import SYNC
from lightning_mbrl.envs.known_fns import termination_fn
from lightning_mbrl.errors import ConfigError, HoldoutRatio, check_arguments, plain
from lightning_mbrl.models.model_training import fit_ensemble, make_model_optimizer
from lightning_mbrl.models.world_model import EnsembleDynamics
from lightning_mbrl.objectives.returns import alive_mask, discounted_return

Termination = Literal["known", "learned", "never"]
TERMINATION_CHOICES = get_args(Termination)
MBPO_HIDDEN_DECAYS = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5)  # per hidden layer; 1e-4 on the output (REFERENCE 1.3)


def model_weight_decays(n_hidden: int) -> tuple[float, ...]:
    """MBPO's per-layer L2 decays for a model of ``n_hidden`` hidden layers: the code's values for
    4 layers; for other depths its first ``n_hidden`` values, extended with the last one."""
    hidden = MBPO_HIDDEN_DECAYS[:n_hidden] + (MBPO_HIDDEN_DECAYS[-1],) * max(0, n_hidden - 4)
    return (*hidden, 1e-4)


class MBPO(SAC):
    def __init__(
        self,
        env: str = "HalfCheetah-v5",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 400_000,
        init_random_frames: NonNegativeInt = 5_000,
        frames_per_iteration: PositiveInt = 1,
        updates_per_frame: PositiveInt = 40,
        batch_size: PositiveInt = 256,
        buffer_size: PositiveInt = 1_000_000,
        hidden: tuple[PositiveInt, ...] = (256, 256),
        actor_hidden: tuple[PositiveInt, ...] | None = None,
        n_critics: PositiveInt = 2,
        gamma: ClosedUnitInterval = 0.99,
        tau: ClosedUnitInterval = 5e-3,
        actor_lr: PositiveFloat = 3e-4,
        critic_lr: PositiveFloat = 3e-4,
        alpha_lr: PositiveFloat = 3e-4,
        alpha: NonNegativeFloat | None = None,
        init_alpha: PositiveFloat = 1.0,
        target_entropy: float | None = -3.0,
        # world model
        ensemble_size: PositiveInt = 7,
        num_elites: PositiveInt = 5,
        model_hidden: tuple[PositiveInt, ...] = (200, 200, 200, 200),
        model_lr: PositiveFloat = 1e-3,
        model_batch_size: PositiveInt = 256,
        holdout_ratio: HoldoutRatio = 0.2,
        max_holdout: NonNegativeInt = 5_000,
        max_model_epochs: PositiveInt | None = None,
        termination: Termination = "known",
        # imagination
        model_train_freq: PositiveInt = 250,
        rollout_batch_size: PositiveInt = 100_000,
        rollout_schedule: Sequence[int] = (20, 150, 1, 1),
        epoch_length: PositiveInt = 1_000,
        model_retain_epochs: PositiveInt = 1,
        real_ratio: ClosedUnitInterval = 0.05,
    ) -> None:
        """
        Args:
            model_train_freq: real frames between model fits (and imagination rounds).
            rollout_batch_size: rollouts branched per model fit (M = this / model_train_freq per frame).
            rollout_schedule: ``[min_epoch, max_epoch, min_length, max_length]``; epochs of
                ``epoch_length`` real frames.
            real_ratio: fraction of each SAC batch drawn from real data.
            termination: ``known`` (the task's termination function), ``learned`` (a head of the
                ensemble) or ``never``.

            The precision of the model fit, rollouts and updates is the Trainer's (``--trainer.precision``;
            ``lightning_mbrl.precision``): under ``bf16-mixed`` the hidden layers' GEMMs run in bf16.

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(MBPO, locals())
        super().__init__(
            env=env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed, max_frames=max_frames,
            init_random_frames=init_random_frames, frames_per_iteration=frames_per_iteration,
            updates_per_frame=updates_per_frame, batch_size=batch_size, buffer_size=buffer_size, hidden=hidden,
            actor_hidden=actor_hidden, n_critics=n_critics, gamma=gamma, tau=tau, actor_lr=actor_lr,
            critic_lr=critic_lr, alpha_lr=alpha_lr, alpha=alpha, init_alpha=init_alpha, target_entropy=target_entropy,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints
        if num_elites > ensemble_size:
            raise ConfigError(f"num_elites ({num_elites}) must be <= ensemble_size ({ensemble_size})")
        check_rollout_schedule(rollout_schedule)
        if model_train_freq % frames_per_iteration:
            raise ConfigError(
                f"model_train_freq ({model_train_freq}) must be a multiple of frames_per_iteration ({frames_per_iteration})"
            )
        done_fn = None
        if termination == "known":
            try:
                done_fn = termination_fn(env, self.env_kwargs)
            except ConfigError as err:
                raise ConfigError(f"termination='known': {err}; use termination 'never' or 'learned'") from None
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1)
            self.world_model = EnsembleDynamics(
                self.spec.observation_dim, self.spec.action_dim, termination_fn=done_fn,
                learn_termination=termination == "learned", n_members=ensemble_size, n_elites=num_elites,
                hidden=tuple(model_hidden), weight_decays=model_weight_decays(len(model_hidden)),
            )
        # counters of the model-based schedule (checkpointed with the loop counters)
        self.model_fits = 0
        self.model_steps = 0  # optimizer steps of the ensemble, over all fits
        self.rollouts = 0
        self.imagined = 0
        self.model_replay: ModelReplay | None = None

    # ----------------------------------------------------------------------------- optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().make_optimizers(), "model": make_model_optimizer(self.world_model.ensemble, lr=self.hparams.model_lr)}

    @property
    def policy_frames_before_iteration(self) -> int:
        return self.frames - self.hparams.frames_per_iteration - self.hparams.init_random_frames

    @property
    def epoch(self) -> int:
        """MBPO's epoch counter: epochs of ``epoch_length`` policy frames completed before this
        iteration. As in the MBPO code, the random warm-up frames (its initial exploration) are not
        counted: epoch 0 begins with the first fit, so ``rollout_schedule`` epochs mean the same as
        in the paper (Hopper, ``[20, 100, 1, 15]``: k = 15 from 100k policy frames = 105k frames)."""
        return max(0, self.policy_frames_before_iteration) // self.hparams.epoch_length

    @property
    def current_rollout_length(self) -> int:
        """The rollout length k of this iteration's imagination round (MBPO's schedule in epochs)."""
        return rollout_length(self.epoch, self.hparams.rollout_schedule)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self.collect()
        metrics = None
        if not self.warming_up:
            if self.policy_frames_before_iteration % self.hparams.model_train_freq == 0:
                self.fit_world_model()
                self.imagine()
            for _ in range(self.updates_per_iteration):
                metrics = self.update(self.mixed_batch())
        self.log_iteration(metrics)

    # ----------------------------------------------------------------------------- the model
    def fit_world_model(self) -> TensorDictBase:
        """Fit the ensemble on every real transition collected so far (warm-started)."""
        hp = self.hparams
        data = self.runtime.buffer[: len(self.runtime.buffer)]
        wm = self.world_model
        inputs = wm.make_inputs(data[keys.OBSERVATION], data[keys.ACTION])
        targets = wm.make_targets(data[keys.OBSERVATION], data[keys.ACTION], data[keys.REWARD],
                                  data[keys.NEXT_OBSERVATION], data[keys.TERMINATED])
        with progress.phase("model fit", hp.max_model_epochs, unit="epochs") as tick:
            stats = fit_ensemble(
                wm.ensemble, inputs, targets, self.optimizer("model"), batch_size=hp.model_batch_size,
                holdout_ratio=hp.holdout_ratio, max_holdout=hp.max_holdout, max_epochs=hp.max_model_epochs, sync=SYNC,
                on_epoch=tick,
            )
        self.model_fits += 1
        self.model_steps += int(stats["steps"])
        elites = stats["elites"]
        row = {
            "model/elites": float(sum(1 << int(e) for e in elites)),
            "model/epochs": float(stats["epochs"]),
            "model/fits": float(self.model_fits),
        }
        if min(int(len(data) * hp.holdout_ratio), hp.max_holdout) > 0:  # no holdout (ratio 0): no holdout error
            row["model/holdout_mse"] = float(stats["holdout_mse"][elites].mean())
        self.log_to_loggers(row)
        return stats

    def imagine(self) -> None:
        """Branch ``rollout_batch_size`` k-step rollouts from real states into the model replay."""
        hp = self.hparams
        k = self.current_rollout_length
        capacity = model_replay_capacity(hp.model_retain_epochs, k, hp.rollout_batch_size, hp.epoch_length,
                                         hp.model_train_freq)
        if self.model_replay is None:
            self.model_replay = ModelReplay(capacity, device=self.device)
        self.model_replay.resize(capacity)
        start = self.runtime.buffer.sample(hp.rollout_batch_size)[keys.OBSERVATION]
        rollout = self.world_model.rollout(start, lambda obs: self.actor.sample(obs)[0], k, mode="sample",
                                           differentiable=False)
        terminated = rollout.get(keys.TERMINATED).squeeze(-1)
        kept = rollout.select(*keys.TRANSITION_KEYS)[alive_mask(terminated)]  # up to and with the terminating step
        self.model_replay.extend(kept)
        self.rollouts += hp.rollout_batch_size
        self.imagined += kept.shape[0]
        returns = discounted_return(rollout.get(keys.REWARD).squeeze(-1), terminated)
        self.log_to_loggers({
            "model/rollout_length": float(k),
            "model/imagined_return": float(returns.mean()),
            "model/imagined_kept": float(kept.shape[0]),
        })

    def mixed_batch(self) -> TensorDictBase:
        """``real_ratio`` real and ``1 - real_ratio`` imagined transitions (MBPO: 12 + 244 of 256)."""
        hp = self.hparams
        n_real = int(hp.batch_size * hp.real_ratio)
        parts = []
        if n_real:
            parts.append(self.sample(n_real).select(*keys.TRANSITION_KEYS))
        if hp.batch_size - n_real:
            parts.append(self.model_replay.sample(hp.batch_size - n_real).select(*keys.TRANSITION_KEYS))
        return parts[0] if len(parts) == 1 else td_cat(parts, 0)

    # ----------------------------------------------------------------------------- checkpoint
    def rank_state(self) -> dict[str, Any]:
        """Adds the model replay (filled part, storage order), so the updates after a resume draw the
        same imagined transitions as an uninterrupted run."""
        state = super().rank_state()
        if self.model_replay is not None:
            state["model_replay"] = {"capacity": self.model_replay.capacity, **replay_state(self.model_replay.buffer)}
        return state

    def load_rank_state(self, state: dict[str, Any]) -> None:
        saved = state.get("model_replay")
        if saved is not None:
            self.model_replay = ModelReplay(saved["capacity"], device=self.device)
            load_replay_state(self.model_replay.buffer, saved, device=self.device)
        super().load_rank_state(state)  # RNG states last

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["loop_counters"].update(model_fits=self.model_fits, model_steps=self.model_steps, rollouts=self.rollouts, imagined=self.imagined)
