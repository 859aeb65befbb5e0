"""MBSAC (Dong et al. 2020, "On the Expressivity of Neural Networks for Deep RL"; REFERENCE.md 2.1).

SAC whose every minibatch is part real data and part *fresh* short rollouts of the current policy in
a single deterministic SLBO model trained online alongside the agent. Rewards of imagined steps come
from the task's known reward function; by default imagined steps never terminate (the BOOTS code
forces ``dones = False`` in its virtual env; ``imagined_termination: known`` ends them by the task's
termination function instead). Defaults are the BOOTS code's HalfCheetah settings; recipes set the
per-task values.

One iteration (``training_step``):

    collect frames_per_iteration real frames        -> real replay; update the running normalisers
    after the last random frame: model_pretrain_iters model steps on the random data (default: as many
    as random frames)
    repeat G * frames_per_iteration times:
        model_iters_per_update SLBO model steps on real minibatches of model_batch_size
        draw n_real + n_starts real transitions; roll the n_starts states out rollout_horizon
        steps with the current stochastic policy in the model (no graph)
        SAC update on the n_real real + n_starts * rollout_horizon imagined transitions
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict, TensorDictBase, cat as td_cat
from torch import Tensor

from lightning_mbrl import keys, progress
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.distributed import SYNC
from lightning_mbrl.envs.known_fns import reward_fn, termination_fn
from lightning_mbrl.errors import ConfigError, check_arguments, plain
from lightning_mbrl.models.slbo import DeterministicDynamics, fit_slbo
from lightning_mbrl.models.utils import adam
from lightning_mbrl.objectives.returns import alive_mask


ImaginedTermination = Literal["never", "known"]
IMAGINED_TERMINATION_CHOICES = get_args(ImaginedTermination)


class MBSAC(SAC):
    def __init__(
        self,
        env: str = "HalfCheetah-v5",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 400_000,
        init_random_frames: NonNegativeInt = 10_000,
        frames_per_iteration: PositiveInt = 1,
        updates_per_frame: PositiveInt = 8,
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
        alpha: NonNegativeFloat | None = 0.2,
        init_alpha: PositiveFloat = 1.0,
        target_entropy: float | None = None,
        normalize_observations: bool = True,
        # world model (SLBO)
        model_units: PositiveInt = 200,
        model_blocks: NonNegativeInt = 2,
        model_lr: PositiveFloat = 1e-3,
        model_batch_size: PositiveInt = 64,
        model_weight_decay: NonNegativeFloat = 1e-5,
        model_grad_clip: PositiveFloat = 1000.0,
        model_pretrain_iters: NonNegativeInt | None = None,
        model_iters_per_update: PositiveInt = 1,
        # imagination
        real_ratio: ClosedUnitInterval = 0.25,
        rollout_horizon: PositiveInt = 3,
        imagined_termination: ImaginedTermination = "never",
    ) -> None:
        """
        Args:
            env_kwargs: MuJoCo tasks need ``exclude_current_positions_from_observation: false``
                (the known reward's forward term is a position difference).
            alpha: fixed temperature (BOOTS: 0.2 HalfCheetah/Walker2d, 0.05 Ant/Humanoid); ``None``
                learns it with target entropy ``-|A|``.
            normalize_observations: feed the actor and critics observations normalised by the
                model's running state statistics (BOOTS ``use_normalizer``).
            model_pretrain_iters: model steps on the random frames before the first SAC update;
                ``None`` means one per random frame (BOOTS: 10,000 steps on 10,000 frames).
            model_iters_per_update: model steps before each of the G SAC updates (BOOTS: 1).
            real_ratio: fraction of each batch drawn from real data; the rest is
                ``n_starts * rollout_horizon`` imagined transitions (BOOTS: 64 + 64 x 3 = 256).
            imagined_termination: ``never`` (BOOTS: every imagined transition bootstraps) or
                ``known``: an imagined transition is terminal when the task's termination function
                says so of its predicted next state, and every later step of that rollout is
                terminal too (it starts from a state the real env would have ended in), so the
                critics never bootstrap from states no real transition continues from.

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(MBSAC, locals())
        super().__init__(
            env=env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed, max_frames=max_frames,
            init_random_frames=init_random_frames, frames_per_iteration=frames_per_iteration,
            updates_per_frame=updates_per_frame, batch_size=batch_size, buffer_size=buffer_size, hidden=hidden,
            actor_hidden=actor_hidden, n_critics=n_critics, gamma=gamma, tau=tau, actor_lr=actor_lr,
            critic_lr=critic_lr, alpha_lr=alpha_lr, alpha=alpha, init_alpha=init_alpha, target_entropy=target_entropy,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints
        self.terminate_imagined = imagined_termination == "known"
        if model_pretrain_iters is None:
            model_pretrain_iters = init_random_frames
        self.model_pretrain_iters = model_pretrain_iters
        self.n_real = round(batch_size * real_ratio)
        self.n_starts, leftover = divmod(batch_size - self.n_real, rollout_horizon)
        if leftover:
            raise ConfigError(
                f"batch_size - round(batch_size * real_ratio) = {batch_size - self.n_real} imagined transitions must "
                f"be a multiple of rollout_horizon ({rollout_horizon}); e.g. batch_size 256, real_ratio 0.25, horizon 3"
            )
        if model_pretrain_iters and not init_random_frames:
            raise ConfigError("model_pretrain_iters > 0 needs init_random_frames > 0 (the model pretrains on them)")
        try:
            known_reward = reward_fn(env, self.env_kwargs)
        except ConfigError as err:
            raise ConfigError(f"MBSAC rolls out with the task's known reward: {err}") from None
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1)
            self.world_model = DeterministicDynamics(
                self.spec.observation_dim, self.spec.action_dim, model_units, model_blocks,
                reward_fn=known_reward, termination_fn=termination_fn(env, self.env_kwargs),
                weight_decay=model_weight_decay,
            )
        # counters of the model-based schedule (checkpointed with the loop counters)
        self.model_steps = 0
        self.rollouts = 0
        self.imagined = 0

    # ----------------------------------------------------------------------------- the policy
    def policy_input(self, observation: Tensor) -> Tensor:
        """What the actor and critics see: the model-normalised observation, or the raw one."""
        if self.hparams.normalize_observations:
            return self.world_model.state_normalizer(observation)
        return observation

    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        return super().act(self.policy_input(observation), deterministic)

    def q_values(self, observation: Tensor, action: Tensor) -> Tensor:
        return super().q_values(self.policy_input(observation), action)

    def policy_dist(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        return super().policy_dist(self.policy_input(observation))

    # ----------------------------------------------------------------------------- optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().make_optimizers(), "model": adam(self.world_model.parameters(), lr=self.hparams.model_lr)}

    def training_step(self, batch: Any, batch_idx: int) -> None:
        real = self.collect()
        # every rank's new frames, in rank order: the normalisers stay identical across ranks
        self.world_model.update_normalizers(SYNC.cat(real[keys.OBSERVATION]), SYNC.cat(real[keys.NEXT_OBSERVATION]))
        model_metrics = None
        if self.frames == self.hparams.init_random_frames:
            with progress.phase("model pretraining", self.model_pretrain_iters, unit="steps") as tick:
                for _ in range(self.model_pretrain_iters):
                    model_metrics = self.model_step()
                    tick()
        metrics = None
        if not self.warming_up:
            for _ in range(self.updates_per_iteration):
                for _ in range(self.hparams.model_iters_per_update):
                    model_metrics = self.model_step()
                batch = self.imagined_batch()
                metrics = self.update(batch)
            # the model's predictions, watched by callbacks.DivergenceGuard with the losses
            metrics["imagined_reward"] = batch[self.n_real :].get(keys.REWARD).mean()
        self.log_iteration(metrics, model_metrics)

    def update(self, batch: TensorDictBase) -> TensorDict:
        """SAC's update on the batch with the observations the actor and critics see."""
        if self.hparams.normalize_observations:
            batch = batch.clone(False)
            batch.set(keys.OBSERVATION, self.policy_input(batch.get(keys.OBSERVATION)))
            batch.set(keys.NEXT_OBSERVATION, self.policy_input(batch.get(keys.NEXT_OBSERVATION)))
        return super().update(batch)

    # ----------------------------------------------------------------------------- the model
    def model_step(self) -> TensorDict:
        """One SLBO model step (``models.slbo.fit_slbo``): Adam on the l2 loss of a real minibatch,
        gradients averaged across ranks, norm clipped."""
        losses = fit_slbo(
            self.world_model, self.optimizer("model"), self.sample, 1, batch_size=self.hparams.model_batch_size,
            grad_clip=self.hparams.model_grad_clip,
            apply=lambda loss, optimizer, clip: self.apply_gradients(loss, optimizer, max_grad_norm=clip),
        )
        self.model_steps += 1
        return losses

    def imagined_batch(self) -> TensorDictBase:
        """``n_real`` real transitions and ``rollout_horizon``-step rollouts of the current stochastic
        policy from ``n_starts`` other real states, generated fresh for this update. Imagined
        transitions carry ``terminated = False`` (BOOTS), or with ``imagined_termination: known``
        the known termination of their next state, or of any earlier step of their rollout."""
        real = self.sample(self.n_real + self.n_starts).select(*keys.TRANSITION_KEYS)
        start = real[self.n_real :].get(keys.OBSERVATION)
        rollout = self.world_model.rollout(start, lambda obs: self.act(obs), self.hparams.rollout_horizon)
        terminated = rollout.get(keys.TERMINATED)
        if self.terminate_imagined:
            terminated |= ~alive_mask(terminated)  # terminal at and after the first termination
        else:
            terminated.zero_()
        imagined = rollout.select(*keys.TRANSITION_KEYS).reshape(-1)
        self.rollouts += self.n_starts
        self.imagined += imagined.numel()
        return td_cat([real[: self.n_real], imagined], 0)

    # ----------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["loop_counters"].update(model_steps=self.model_steps, rollouts=self.rollouts, imagined=self.imagined)
