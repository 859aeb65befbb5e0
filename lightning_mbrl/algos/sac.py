"""Soft actor-critic (Haarnoja et al. 2018) on the off-policy loop.

Defaults are the softlearning settings used by the MBPO code (REFERENCE.md 1.4): tanh-Gaussian
actor and twin Q-networks of 2 x 256 ReLU units, Adam with lr 3e-4 for actor, critics and
temperature, gamma 0.99, Polyak tau 5e-3 every update, batch 256, replay 1e6, automatic
temperature with target entropy -|A| unless given (or a fixed ``alpha``).

One iteration (``training_step``):

    collect frames_per_iteration real frames          -> real replay buffer
    repeat G * frames_per_iteration times:
        critic step on  L_Q   (soft TD target from the target critics)
        actor step on   L_pi  (critic frozen)
        alpha step on   L_alpha
        Polyak update of the target critics
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from lightning_mbrl import keys
from lightning_mbrl.algos.base import OffPolicyAlgorithm
from lightning_mbrl.errors import check_arguments, plain
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.utils import adam, polyak_update
from lightning_mbrl.objectives import sac as sac_losses


class SAC(OffPolicyAlgorithm):
    bf16_by_default = True  # SAC, MBPO, MBSAC and BOOTS learning tests pass in bf16-mixed (docs/precision.md)

    def __init__(
        self,
        env: str = "Pendulum-v1",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 1_000_000,
        init_random_frames: NonNegativeInt = 5_000,
        frames_per_iteration: PositiveInt = 1,
        updates_per_frame: PositiveInt = 1,
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
    ) -> None:
        """
        Args:
            env: a ``make_env`` id; observation and action sizes are read from it.
            hidden: hidden widths of the critics, and of the actor unless ``actor_hidden`` is given.
            alpha: a fixed temperature; ``None`` learns it (automatic entropy tuning).
            target_entropy: for learned alpha; ``None`` means ``-action_dim`` (Haarnoja et al.).
            updates_per_frame: G, gradient updates per real frame after warm-up.

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(SAC, locals())
        super().__init__(
            env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed,
            max_frames=max_frames, init_random_frames=init_random_frames,
            frames_per_iteration=frames_per_iteration, updates_per_frame=updates_per_frame,
            batch_size=batch_size, buffer_size=buffer_size, continuous_only=True,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints

        obs_dim, act_dim = self.spec.observation_dim, self.spec.action_dim
        with torch.random.fork_rng():  # reproducible initialisation without touching global RNG
            torch.manual_seed(seed)
            self.actor = TanhGaussianActor(obs_dim, act_dim, hidden if actor_hidden is None else actor_hidden)
            self.critic = EnsembleQ(obs_dim, act_dim, hidden, n_critics)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.learn_alpha = alpha is None
        log_alpha = torch.tensor(float(init_alpha if alpha is None else alpha)).log()  # alpha = 0 -> -inf
        self.log_alpha = nn.Parameter(log_alpha, requires_grad=self.learn_alpha)
        self.target_entropy = float(-act_dim if target_entropy is None else target_entropy)

    # ----------------------------------------------------------------------------- protocols
    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        if deterministic:
            return self.actor.mode(observation)
        return self.actor.sample(observation)[0]

    def q_values(self, observation: Tensor, action: Tensor) -> Tensor:
        return self.critic(observation, action)

    def policy_dist(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-tanh mean and log-std of the policy (planners search its noise)."""
        return self.actor(observation)

    # ----------------------------------------------------------------------------- optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        optimizers = {
            "critic": adam(self.critic.parameters(), lr=hp.critic_lr),
            "actor": adam(self.actor.parameters(), lr=hp.actor_lr),
        }
        if self.learn_alpha:
            optimizers["alpha"] = adam([self.log_alpha], lr=hp.alpha_lr)
        return optimizers

    # The update's pieces, callable separately (an algorithm that trains a model through the critic's
    # targets, or steps gradients it computed itself, composes them differently).
    def temperature(self) -> Tensor:
        """The temperature, a constant of every loss but ``loss_alpha``."""
        return self.log_alpha.detach().exp()

    def td_target(self, batch: TensorDictBase, grad_to_inputs: bool = False) -> Tensor:
        """The soft TD target ``y [B]`` of the batch (``objectives.sac.soft_td_target``; no graph unless
        ``grad_to_inputs``, then only through the batch's reward and next observation)."""
        return sac_losses.soft_td_target(
            batch.get(keys.REWARD).squeeze(-1), batch.get(keys.TERMINATED).squeeze(-1),
            batch.get(keys.NEXT_OBSERVATION), self.actor, self.critic_target, self.temperature(), self.hparams.gamma,
            grad_to_inputs=grad_to_inputs,
        )

    def critic_losses(self, batch: TensorDictBase, target: Tensor) -> TensorDict:
        """``loss_critic`` (and ``q_mean``) of the batch against ``target``."""
        return sac_losses.critic_loss(batch.get(keys.OBSERVATION), batch.get(keys.ACTION), target, self.critic)

    def actor_losses(self, observation: Tensor) -> TensorDict:
        """``loss_actor`` (and ``entropy``), plus ``loss_alpha`` (and ``alpha``) when alpha is learned."""
        out, log_prob = sac_losses.actor_loss(observation, self.actor, self.critic, self.temperature())
        if self.learn_alpha:
            out.update(sac_losses.alpha_loss(self.log_alpha, log_prob, self.target_entropy))
        return out

    def update(self, batch: TensorDictBase) -> TensorDict:
        """One SAC update on a batch of transitions; returns the losses and diagnostics."""
        hp = self.hparams
        critic_out = self.critic_losses(batch, self.td_target(batch))
        self.apply_gradients(critic_out["loss_critic"], self.optimizer("critic"))

        actor_out = self.actor_losses(batch.get(keys.OBSERVATION))
        if self.learn_alpha:  # disjoint parameters: one backward serves both
            self.apply_gradients(actor_out["loss_actor"] + actor_out["loss_alpha"],
                                 self.optimizer("actor"), self.optimizer("alpha"))
        else:
            self.apply_gradients(actor_out["loss_actor"], self.optimizer("actor"))

        polyak_update(self.critic_target, self.critic, hp.tau)
        self.updates += 1
        return critic_out.update(actor_out).detach()

    def training_step(self, batch: Any, batch_idx: int) -> None:
        self.collect()
        metrics = None
        if not self.warming_up:
            for _ in range(self.updates_per_iteration):
                metrics = self.update(self.sample(self.hparams.batch_size))
        self.log_iteration(metrics)
