"""Model-Augmented Actor-Critic (Clavera, Fu and Abbeel 2020, paper 004; REFERENCE.md 5).

MBPO's loop (``algos.mbpo``: the probabilistic ensemble fitted on real data, branched model rollouts
into a model replay, ``real_ratio`` of each batch real) with MAAC's two losses
(``objectives.maac``):

- actor: the pathwise objective J_pi, H model steps of the reparameterised policy through the
  ensemble (a random member per sample), the task's known reward and the model's termination on the
  predictions, terminal ``gamma^H`` times the mean over K sampled actions of the min twin Q, minus
  ``alpha log pi(a_0|s_0)``; backpropagated into the policy only;
- critic: soft twin Q regressed on STEVE targets (horizons 0..2, every member continuing its own
  trajectory, a random half of the members per horizon, inverse-variance weights); target critics
  Polyak-averaged every ``target_update_every`` updates; alpha learned (target entropy ``-|A|``).

Both losses use the batch of Algorithm 1 (``D = D_model ∪ D_env``, the mixed batch), as the paper and
the code do. One iteration:

    collect frames_per_iteration real frames                    -> real replay
    every model_train_freq frames: fit the ensemble; branch model rollouts -> model replay
    repeat G * frames_per_iteration times:
        critic step on the STEVE target; actor (+ alpha) step on J_pi; every target_update_every: Polyak

Defaults are the code's HalfCheetah settings (``maac_run_sweep.py``, EXP_NAME script4): H = 4
(``T = 3``), K = 5, STEVE horizon 2 with half the members, 8 members of 4 x 200, G = 8,
``real_ratio`` 0.05, learning rates 3e-4 (model 1e-3).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from jsonargparse.typing import (
    ClosedUnitInterval,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from tensordict import TensorDict, TensorDictBase

from lightning_mbrl import keys
from lightning_mbrl.algos.mbpo import MBPO, Termination
from lightning_mbrl.envs.known_fns import reward_fn as known_reward_fn
from lightning_mbrl.errors import ConfigError, HoldoutRatio, LeftOpenUnitInterval, check_arguments, plain
from lightning_mbrl.models.utils import polyak_update
from lightning_mbrl.objectives import maac as maac_losses
from lightning_mbrl.objectives import sac as sac_losses

RewardSource = Literal["known", "learned"]
MemberDraw = Literal["stratified", "independent"]


class MAAC(MBPO):
    bf16_by_default = False  # no learning evidence in bf16-mixed yet (pathwise gradients through the model)

    def __init__(
        self,
        env: str = "HalfCheetah-v5",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 200_000,
        init_random_frames: NonNegativeInt = 5_000,
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
        alpha: NonNegativeFloat | None = None,
        init_alpha: PositiveFloat = 1.0,
        target_entropy: float | None = None,
        # world model
        ensemble_size: PositiveInt = 8,
        num_elites: PositiveInt = 8,
        model_hidden: tuple[PositiveInt, ...] = (200, 200, 200, 200),
        model_lr: PositiveFloat = 1e-3,
        model_batch_size: PositiveInt = 256,
        holdout_ratio: HoldoutRatio = 0.2,
        max_holdout: NonNegativeInt = 5_000,
        max_model_epochs: PositiveInt | None = 200,
        termination: Termination = "known",
        # imagination
        model_train_freq: PositiveInt = 250,
        rollout_batch_size: PositiveInt = 100_000,
        rollout_schedule: Sequence[int] = (20, 100, 1, 1),
        epoch_length: PositiveInt = 1_000,
        model_retain_epochs: PositiveInt = 1,
        real_ratio: ClosedUnitInterval = 0.05,
        # MAAC
        actor_horizon: NonNegativeInt = 4,
        n_value_actions: PositiveInt = 5,
        steve_horizon: NonNegativeInt = 2,
        steve_used_ratio: LeftOpenUnitInterval = 0.5,
        target_update_every: PositiveInt = 8,
        reward: RewardSource = "known",
        actor_member_draw: MemberDraw = "stratified",
    ) -> None:
        """
        Args:
            actor_horizon: H, the model steps of the pathwise actor objective (the paper's H; the
                code's ``T = H - 1``: 4 for HalfCheetah, Hopper and Ant, 2 for Walker2d). 0 is SAC's
                actor loss (the model-free ablation of Figure 4).
            n_value_actions: K, actions sampled at the last predicted state for its value (1 is the
                single-sample ablation of Figure 4).
            steve_horizon: the largest STEVE horizon of the critic's target; 0 is the plain soft TD
                target (the "no STEVE" ablation).
            steve_used_ratio: fraction of the members giving candidates at each STEVE horizon.
            target_update_every: updates between Polyak steps of the target critics (the code: G).
            reward: ``known`` (the task's reward function on the model's predictions, the code's
                ``tf_reward``) or ``learned`` (the ensemble's reward output).
            actor_member_draw: how the actor objective's model steps draw a member per sample:
                ``stratified`` (each start state's member uniform, the members sharing the batch
                equally: one GEMM per layer without padding, ``GaussianEnsemble.forward_stratified``)
                or ``independent`` (the code's i.i.d. draws).

        The other arguments are MBPO's (``algos.mbpo.MBPO``). Each argument is checked against its
        annotation (``errors.check_arguments``).
        """
        check_arguments(MAAC, locals())
        super().__init__(
            env=env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed, max_frames=max_frames,
            init_random_frames=init_random_frames, frames_per_iteration=frames_per_iteration,
            updates_per_frame=updates_per_frame, batch_size=batch_size, buffer_size=buffer_size, hidden=hidden,
            actor_hidden=actor_hidden, n_critics=n_critics, gamma=gamma, tau=tau, actor_lr=actor_lr,
            critic_lr=critic_lr, alpha_lr=alpha_lr, alpha=alpha, init_alpha=init_alpha, target_entropy=target_entropy,
            ensemble_size=ensemble_size, num_elites=num_elites, model_hidden=model_hidden, model_lr=model_lr,
            model_batch_size=model_batch_size, holdout_ratio=holdout_ratio, max_holdout=max_holdout,
            max_model_epochs=max_model_epochs, termination=termination,
            model_train_freq=model_train_freq, rollout_batch_size=rollout_batch_size,
            rollout_schedule=rollout_schedule, epoch_length=epoch_length, model_retain_epochs=model_retain_epochs,
            real_ratio=real_ratio,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))
        self.known_reward = None
        if reward == "known":
            try:
                self.known_reward = known_reward_fn(env, self.env_kwargs)
            except ConfigError as err:
                raise ConfigError(f"reward='known': {err}; use reward 'learned'") from None

    # ----------------------------------------------------------------------------- the losses
    def td_target(self, batch: TensorDictBase, grad_to_inputs: bool = False) -> torch.Tensor:
        """STEVE's soft target (``objectives.maac.steve_target``); ``steve_horizon: 0`` is SAC's."""
        hp = self.hparams
        if hp.steve_horizon == 0 or grad_to_inputs:
            return super().td_target(batch, grad_to_inputs)
        out = maac_losses.steve_target(
            batch.get(keys.REWARD).squeeze(-1), batch.get(keys.TERMINATED).squeeze(-1),
            batch.get(keys.NEXT_OBSERVATION), self.actor, self.world_model, self.critic_target, self.temperature(),
            gamma=hp.gamma, horizon=hp.steve_horizon, used_ratio=hp.steve_used_ratio, reward_fn=self.known_reward,
            mode="sample",
        )
        return out["target"]

    def actor_losses(self, observation: torch.Tensor) -> TensorDict:
        """``loss_actor`` (MAAC's pathwise J_pi), ``entropy``, ``model_return``, and ``loss_alpha`` when
        alpha is learned."""
        hp = self.hparams
        out, log_prob = maac_losses.pathwise_actor_loss(
            observation, self.actor, self.world_model, self.critic, self.temperature(), horizon=hp.actor_horizon,
            gamma=hp.gamma, n_value_actions=hp.n_value_actions, reward_fn=self.known_reward, mode="sample",
            draw=hp.actor_member_draw,
        )
        if self.learn_alpha:
            out.update(sac_losses.alpha_loss(self.log_alpha, log_prob, self.target_entropy))
        return out

    def update(self, batch: TensorDictBase) -> TensorDict:
        """One MAAC update: critic on the STEVE target, actor (and alpha) on J_pi, and every
        ``target_update_every`` updates a Polyak step of the target critics."""
        critic_out = self.critic_losses(batch, self.td_target(batch))
        self.apply_gradients(critic_out["loss_critic"], self.optimizer("critic"))
        actor_out = self.actor_losses(batch.get(keys.OBSERVATION))
        if self.learn_alpha:
            self.apply_gradients(actor_out["loss_actor"] + actor_out["loss_alpha"],
                                 self.optimizer("actor"), self.optimizer("alpha"))
        else:
            self.apply_gradients(actor_out["loss_actor"], self.optimizer("actor"))
        self.updates += 1
        if self.updates % self.hparams.target_update_every == 0:
            polyak_update(self.critic_target, self.critic, self.hparams.tau)
        return critic_out.update(actor_out).detach()
