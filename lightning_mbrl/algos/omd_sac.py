"""OMD and its MLE baseline for continuous control, with SAC as the inner agent (Nikishin et al. 2022,
paper 003, Appendix F; the official MuJoCo code's settings, REFERENCE 3.4; docs/omd.md).

Both agents learn a deterministic model ``T_theta(s, a) = (r_hat, s_hat')``, one MLP on ``[s, a]``
with two hidden layers of ``model_hidden`` ReLU units and ``obs_dim + 1`` outputs (the next observation
directly, not a delta, and the reward: the code's ``DetModel``), and train SAC's critic only on the
model's predictions for real ``(s, a)``. They differ only in the model's loss (``model_loss``):

- ``"omd"``: the implicit gradient of the real-data critic loss through the critic fitted on the model
  (paper Eq. 13, the identity approximation: the only one in the code's MuJoCo part; ``approx="cg"``
  solves with the damped Hessian as on CartPole);
- ``"mle"``: ``||s_hat' - s'||^2`` (summed over dimensions) ``+ (r_hat - r)^2``, batch means: MBPO with one
  deterministic model and one-step "rollouts" (REFERENCE 3.4).

One update (``update``; ``updates_per_frame`` per real frame after ``init_random_frames``), on one real
replay batch ``(s, a, r, s', d)``, ``w`` the critic's parameters:

    mle only: model step (Adam) on the loss below       (the code's order: the model first)
    (r_hat, s_hat') = T_theta(s, a)                                 (a constant of the inner loop)
    repeat K (inner_steps) times, the code's inner SAC step:
        critic step on L(theta, w) = sum_j 0.5 E[(Q_j(s, a) - y(r_hat, s_hat'))^2]
            y(r, s') = r + gamma (1 - d) [min_j Q'_j(s', a') - alpha log pi(a'|s')],  a' ~ pi(.|s')
        Polyak step of the target critics
        actor and temperature steps on the real s (SAC's losses)
    omd only: model step (Adam) by dL_true(w*)/dtheta ~ -(dL_true/dw) (d^2 L(theta, w*) / dtheta dw),
        L_true = L on the real (r, s'); mle's loss: ||s_hat' - s'||^2 + (r_hat - r)^2

The inner losses reach only the critic, the actor and the temperature, as in SAC (the model's
predictions enter as constants); the model step reaches only the model (the implicit gradient is set as
its ``.grad``; the MLE loss has no other parameters); the target critics move only by the Polyak step.
In the inner loss the model reaches ``y`` through ``r_hat`` and the target critics' input ``s_hat'``; ``a'``
is drawn at a stop-gradient of ``s_hat'`` (the code's target). The implicit gradient differentiates it
with one fixed draw of the next-action noise (``objectives.sac.soft_td_target``'s ``noise``), so that
the Hessian-vector products of ``cg`` see one function, and in full precision (as the discrete
agent's, ``algos/omd.py``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from jsonargparse.typing import ClosedUnitInterval, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn
from torch.func import functional_call

from lightning_mbrl import keys
from lightning_mbrl.algos.omd import HIDDEN_GAIN, Approximation, orthogonal_init_
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.errors import ConfigError, check_arguments, plain
from lightning_mbrl.models.mlp import mlp
from lightning_mbrl.models.utils import adam, frozen, polyak_update
from lightning_mbrl.objectives import sac as sac_losses
from lightning_mbrl.objectives.omd import Params, implicit_gradient
from lightning_mbrl.precision import full_precision_context

ContinuousModelLoss = Literal["omd", "mle"]


class DeterministicContinuousModel(nn.Module):
    """The code's ``DetModel``: ``[s, a] -> (hidden, hidden) ReLU -> [s_hat', r_hat]``, every layer orthogonal
    with gain sqrt(2) and zero biases (its MLP's ``default_init``, the output layer included).

    ``forward(observation [B, D], action [B, A]) -> (reward [B], next_observation [B, D])``.
    """

    def __init__(self, observation_dim: int, action_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = orthogonal_init_(mlp(observation_dim + action_dim, hidden, observation_dim + 1), HIDDEN_GAIN, HIDDEN_GAIN)

    def forward(self, observation: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(torch.cat([observation, action], dim=-1))
        return out[..., -1], out[..., :-1]


class OMDSAC(SAC):
    bf16_by_default = False  # no bf16 learning evidence for OMD (docs/precision.md)

    def __init__(
        self,
        env: str = "HalfCheetah-v5",
        env_kwargs: dict[str, Any] | None = None,
        max_episode_steps: PositiveInt | None = None,
        seed: int = 0,
        max_frames: PositiveInt = 1_000_000,
        init_random_frames: NonNegativeInt = 10_000,
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
        # the model
        model_loss: ContinuousModelLoss = "omd",
        model_hidden: PositiveInt = 64,
        model_lr: PositiveFloat = 3e-4,
        inner_steps: PositiveInt = 1,
        approx: Approximation = "identity",
        cg_damping: NonNegativeFloat = 1e-5,
        cg_max_iter: PositiveInt = 100,
    ) -> None:
        """
        Args:
            model_loss: ``"omd"`` (implicit gradient of the real critic loss) or ``"mle"``.
            model_hidden: width of the model's two hidden layers (the code's config: 64).
            model_lr: the model's Adam learning rate (the config's 3e-4; the paper sweeps 1e-4 and 3e-4).
            inner_steps: K, inner SAC steps per model step (the paper sweeps 1 and 3).
            approx: ``"identity"`` (the code's only MuJoCo version) or ``"cg"``; ``model_loss="omd"`` only.
            cg_damping, cg_max_iter: the CG solve of ``(H + cg_damping I) u = v``.
            target_entropy: ``None`` means ``-|A| / 2`` (the code's MuJoCo config).

            The rest are SAC's (``algos/sac.py``), with the code's values as defaults: 2 x 256 networks,
            temperature from 1.0, tau 5e-3, learning rates 3e-4, 10,000 random frames.

        Each argument is checked against its annotation (``errors.check_arguments``).
        """
        check_arguments(OMDSAC, locals())
        super().__init__(
            env=env, env_kwargs=env_kwargs, max_episode_steps=max_episode_steps, seed=seed, max_frames=max_frames,
            init_random_frames=init_random_frames, frames_per_iteration=frames_per_iteration,
            updates_per_frame=updates_per_frame, batch_size=batch_size, buffer_size=buffer_size, hidden=hidden,
            actor_hidden=actor_hidden, n_critics=n_critics, gamma=gamma, tau=tau, actor_lr=actor_lr,
            critic_lr=critic_lr, alpha_lr=alpha_lr, alpha=alpha, init_alpha=init_alpha, target_entropy=target_entropy,
        )
        self.save_hyperparameters()
        self.hparams.update(plain(dict(self.hparams)))  # jsonargparse's PositiveInt(3) as 3 in checkpoints
        if approx != "identity" and model_loss != "omd":
            raise ConfigError(f"approx={approx!r} applies to model_loss='omd' only (got model_loss={model_loss!r})")
        if target_entropy is None:
            self.target_entropy = -self.spec.action_dim / 2.0
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1)
            self.world_model = DeterministicContinuousModel(
                self.spec.observation_dim, self.spec.action_dim, (model_hidden, model_hidden))
        self.inner_updates = 0  # inner SAC steps (checkpointed with the loop counters)

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().make_optimizers(), "model": adam(self.world_model.parameters(), lr=self.hparams.model_lr)}

    # ----------------------------------------------------------------------------- losses
    def critic_loss_of(self, w: Params, batch: TensorDictBase, target: Tensor) -> Tensor:
        """SAC's critic loss (``objectives.sac.critic_loss``) with the critic's parameters ``w``
        (named as ``self.critic.named_parameters()``)."""
        critic = lambda obs, act: functional_call(self.critic, w, (obs, act))  # noqa: E731
        return sac_losses.critic_loss(batch.get(keys.OBSERVATION), batch.get(keys.ACTION), target, critic)["loss_critic"]

    def model_target(self, theta: Params, batch: TensorDictBase, noise: Tensor) -> Tensor:
        """The soft TD target ``[B]`` of the model's ``(r_hat, s_hat')`` for the batch's ``(s, a)``, with the
        model's parameters ``theta`` and the next-action ``noise [B, A]``: differentiable in ``theta`` only,
        through ``r_hat`` and the target critics' input ``s_hat'``; the next action is drawn at a stop-gradient
        of ``s_hat'`` (the official MuJoCo code's target)."""
        reward, next_observation = functional_call(
            self.world_model, theta, (batch.get(keys.OBSERVATION), batch.get(keys.ACTION)))
        return sac_losses.soft_td_target(
            reward, batch.get(keys.TERMINATED).squeeze(-1), next_observation, self.actor, self.critic_target,
            self.temperature(), self.hparams.gamma, grad_to_inputs=True, noise=noise, next_action_grad=False)

    def implicit_model_gradient(self, batch: TensorDictBase, noises: tuple[Tensor, Tensor] | None = None
                                ) -> tuple[Params, TensorDict]:
        """OMD's model gradient at the current critic taken as ``w*`` (module docstring): the world
        model's parameter names -> detached gradients, and the diagnostics (``loss_outer``; ``cg_*``).
        ``noises``: the standard-normal next-action draws ``[B, A]`` of the model's and the real targets
        (fresh ones if ``None``). Touches no ``.grad``; in full precision."""
        hp = self.hparams
        observation = batch.get(keys.OBSERVATION)
        if noises is None:
            noises = tuple(torch.randn(*observation.shape[:-1], self.spec.action_dim, device=observation.device,
                                       dtype=observation.dtype)
                           for _ in range(2))
        model_noise, real_noise = noises
        with torch.no_grad():  # L_true(w) depends on w only
            real_target = sac_losses.soft_td_target(
                batch.get(keys.REWARD).squeeze(-1), batch.get(keys.TERMINATED).squeeze(-1),
                batch.get(keys.NEXT_OBSERVATION), self.actor, self.critic_target, self.temperature(), hp.gamma,
                noise=real_noise)

        def inner_loss(theta: Params, w: Params, data: TensorDictBase) -> Tensor:
            return self.critic_loss_of(w, data, self.model_target(theta, data, model_noise))

        # The actor is frozen out here: torch.func's transforms forbid ``requires_grad_`` inside them.
        with full_precision_context(), frozen(self.actor):
            return implicit_gradient(
                inner_loss, lambda w: self.critic_loss_of(w, batch, real_target),
                dict(self.world_model.named_parameters()), dict(self.critic.named_parameters()), batch,
                approx=hp.approx, damping=hp.cg_damping, max_iter=hp.cg_max_iter, negative_curvature="continue",
            )

    def model_losses(self, batch: TensorDictBase, reward: Tensor, next_observation: Tensor) -> TensorDict:
        """MLE: ``loss_model = loss_dynamics + loss_reward``, the next observation's squared error summed over
        dimensions and the reward's, each a batch mean. Reaches only the model."""
        loss_dynamics = (next_observation - batch.get(keys.NEXT_OBSERVATION)).square().sum(-1).mean()
        loss_reward = (reward - batch.get(keys.REWARD).squeeze(-1)).square().mean()
        return TensorDict({"loss_model": loss_dynamics + loss_reward, "loss_dynamics": loss_dynamics,
                           "loss_reward": loss_reward}, batch_size=[])

    # ----------------------------------------------------------------------------- the update
    def inner_step(self, imagined: TensorDictBase, observation: Tensor) -> TensorDict:
        """The code's inner SAC step: the critic on the model's transitions ``imagined``, the Polyak
        step, then the actor and the temperature on the real ``observation``."""
        critic_out = self.critic_losses(imagined, self.td_target(imagined))
        self.apply_gradients(critic_out["loss_critic"], self.optimizer("critic"))
        polyak_update(self.critic_target, self.critic, self.hparams.tau)
        actor_out = self.actor_losses(observation)
        if self.learn_alpha:
            self.apply_gradients(actor_out["loss_actor"] + actor_out["loss_alpha"],
                                 self.optimizer("actor"), self.optimizer("alpha"))
        else:
            self.apply_gradients(actor_out["loss_actor"], self.optimizer("actor"))
        self.inner_updates += 1
        return critic_out.update(actor_out).detach()

    def model_step(self, batch: TensorDictBase, reward: Tensor, next_observation: Tensor) -> TensorDict:
        """One Adam step of the model on the real ``batch``: the implicit gradient (OMD) or the MLE loss of
        the predictions ``reward [B]``, ``next_observation [B, D]`` (with their graph). Returns the
        detached diagnostics."""
        model_opt = self.optimizer("model")
        if self.hparams.model_loss == "omd":
            grads, out = self.implicit_model_gradient(batch)
            self.step_with_gradients(self.world_model, grads, model_opt)
            return out
        out = self.model_losses(batch, reward, next_observation)
        self.apply_gradients(out["loss_model"], model_opt)
        with torch.no_grad():  # the real critic loss, a diagnostic here (OMD's outer loss)
            out["loss_outer"] = self.critic_losses(batch, self.td_target(batch))["loss_critic"]
        return out.detach()

    def update(self, batch: TensorDictBase) -> TensorDict:
        """One outer update on a real replay batch (module docstring): for OMD the inner SAC steps on the
        model's predictions, then the implicit model step; for MLE, the code's order: the model step, then
        the inner steps on the updated model's predictions. Returns the detached diagnostics."""
        hp = self.hparams
        observation, action = batch.get(keys.OBSERVATION), batch.get(keys.ACTION)
        if hp.model_loss == "mle":
            model_metrics = self.model_step(batch, *self.world_model(observation, action))
        with torch.no_grad():
            reward, next_observation = self.world_model(observation, action)
        imagined = batch.select(keys.OBSERVATION, keys.ACTION, keys.TERMINATED).set(
            keys.REWARD, reward.unsqueeze(-1)).set(keys.NEXT_OBSERVATION, next_observation)
        for _ in range(hp.inner_steps):
            metrics = self.inner_step(imagined, observation)
        if hp.model_loss == "omd":
            model_metrics = self.model_step(batch, reward, next_observation)
        metrics.update(model_metrics)
        # the model's error on the predictions the critic was trained on
        metrics["next_observation_mse"] = (next_observation - batch.get(keys.NEXT_OBSERVATION)).square().sum(-1).mean()
        self.updates += 1
        return metrics

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["loop_counters"]["inner_updates"] = self.inner_updates
