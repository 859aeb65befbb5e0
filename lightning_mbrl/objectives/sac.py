"""Soft actor-critic losses (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications").

Pure functions, no Lightning. Each returns a TensorDict whose ``loss_*`` entries are the terms to
minimise and whose other entries are detached diagnostics. Which parameters each loss reaches:

- ``soft_td_target`` -> nothing by default (the target is a constant of the critic loss); with
  ``grad_to_inputs=True`` it is a differentiable function of ``reward`` and ``next_observation`` only
  (the actor and the target critics are ``frozen``), so a world model that predicted them receives
  the Bellman loss's gradient (OMD, paper 003);
- ``critic_loss`` -> critic only, plus whatever the target reaches;
- ``actor_loss`` -> actor only (the critic is ``frozen``: gradients pass through it to the action);
- ``alpha_loss`` -> ``log_alpha`` only (the log-probabilities are detached).
"""

from __future__ import annotations

import contextlib

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.utils import frozen


def soft_td_target(
    reward: Tensor,
    terminated: Tensor,
    next_observation: Tensor,
    actor: TanhGaussianActor,
    target_critic: EnsembleQ,
    alpha: Tensor,
    gamma: float,
    grad_to_inputs: bool = False,
    noise: Tensor | None = None,
    next_action_grad: bool = True,
) -> Tensor:
    """``y = r + gamma (1 - terminated) [min_j Q'_j(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(.|s')``.

    ``noise [B, A]``: the standard-normal draw of ``a'`` (``actor.squash``), for a target that must be the
    same function each time it is evaluated (OMD's implicit gradient differentiates it more than once);
    ``None`` draws a fresh one. ``next_action_grad=False`` draws ``a'`` at ``next_observation.detach()``: with
    ``grad_to_inputs``, ``next_observation`` then reaches ``y`` only through the target critics' input (the
    official MuJoCo OMD code's target).

    The bootstrap mask is ``1 - terminated``: a time-limit truncation keeps the bootstrap.
    Shapes: ``reward, terminated [B]`` -> ``[B]``.

    Gradient routing (named stop-gradients): by default ``y`` carries no graph. With
    ``grad_to_inputs=True`` it carries the graph of ``reward`` and ``next_observation`` (through
    ``a'``, reparameterised, and the target critics' input), but no parameter of ``actor`` or
    ``target_critic`` receives a gradient, and ``alpha`` is a constant.
    """
    if grad_to_inputs:
        scope = contextlib.ExitStack()
        scope.enter_context(frozen(actor))
        scope.enter_context(frozen(target_critic))
    else:
        scope = torch.no_grad()
    with scope:
        policy_input = next_observation if next_action_grad else next_observation.detach()
        if noise is None:
            next_action, next_log_prob = actor.sample(policy_input)
        else:
            next_action, next_log_prob = actor.squash(policy_input, noise)
        next_q = target_critic(next_observation, next_action).min(dim=0).values
        soft_value = next_q - alpha.detach() * next_log_prob
        return reward + gamma * (1.0 - terminated.to(reward.dtype)) * soft_value


def critic_loss(
    observation: Tensor,
    action: Tensor,
    target: Tensor,
    critic: EnsembleQ,
) -> TensorDict:
    """``L_Q = sum_j 0.5 E[(Q_j(s, a) - y)^2]`` (Eq. 5; one half of the MSE per critic, as softlearning)."""
    q = critic(observation, action)  # [n_critics, B]
    loss = 0.5 * (q - target).square().mean(dim=1).sum()
    return TensorDict({"loss_critic": loss, "q_mean": q.detach().mean()}, batch_size=[])


def actor_loss(
    observation: Tensor,
    actor: TanhGaussianActor,
    critic: EnsembleQ,
    alpha: Tensor,
) -> tuple[TensorDict, Tensor]:
    """``L_pi = E_s E_{a ~ pi}[alpha log pi(a|s) - min_j Q_j(s, a)]`` (Eq. 7 with the twin-Q minimum).

    Returns the loss TensorDict and the (graph-carrying) log-probabilities ``[B]``, which the
    temperature loss uses detached.
    """
    action, log_prob = actor.sample(observation)
    with frozen(critic):
        q = critic(observation, action).min(dim=0).values
    loss = (alpha.detach() * log_prob - q).mean()
    return TensorDict({"loss_actor": loss, "entropy": -log_prob.detach().mean()}, batch_size=[]), log_prob


def alpha_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> TensorDict:
    """``L_alpha = -E[log alpha (log pi(a|s) + H_target)]`` (Eq. 18, in log alpha as softlearning)."""
    loss = -(log_alpha * (log_prob.detach() + target_entropy)).mean()
    return TensorDict({"loss_alpha": loss, "alpha": log_alpha.detach().exp()}, batch_size=[])
