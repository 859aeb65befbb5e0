"""Deep Q-learning losses: DQN (Mnih et al. 2015, "Human-level control through deep reinforcement
learning", Nature 518) and double DQN (van Hasselt, Guez and Silver 2016, "Deep Reinforcement
Learning with Double Q-learning", AAAI).

Pure functions, no Lightning. A Q-network here is any callable ``obs [B, D] -> [B, n_actions]``
(``models.critic.DiscreteQ``). Which parameters each function reaches:

- ``td_target`` -> none: by default a constant of the loss (computed under ``no_grad``); with
  ``grad_to_inputs=True`` a differentiable function of ``reward`` and ``next_observation`` (a
  model's predictions, paper 001's Dyna targets, OMD), the networks' parameters still frozen;
- ``q_loss`` -> the online Q-network only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl.models.utils import frozen

#: ``observation [B, D] -> Q-values [B, n_actions]``.
QAll = Callable[[Tensor], Tensor]

LOSSES = ("huber", "mse")


def td_target(
    reward: Tensor,
    terminated: Tensor,
    next_observation: Tensor,
    q_net: QAll,
    target_net: QAll,
    gamma: float,
    double: bool,
    grad_to_inputs: bool = False,
) -> Tensor:
    """The one-step TD target ``y`` for every transition of the batch.

    - DQN (Mnih et al. 2015, Methods, the target of Eq. 1 / Algorithm 1):
      ``y = r + gamma (1 - terminated) max_a' Q(s', a'; theta^-)``.
    - Double DQN (van Hasselt et al. 2016, Eq. 4): the online network chooses, the target network
      evaluates: ``y = r + gamma (1 - terminated) Q(s', argmax_a' Q(s', a'; theta); theta^-)``.

    The bootstrap mask is ``1 - terminated``: a time-limit truncation keeps the bootstrap.
    ``q_net`` is only called for double DQN. Shapes: ``reward [B]``, ``terminated [B]`` (bool or
    float), ``next_observation [B, D]`` -> ``[B]``, with the dtype of ``reward``.

    Gradient routing (named stop-gradient): by default ``y`` carries no graph. With
    ``grad_to_inputs=True`` it carries the graph of ``reward`` and ``next_observation`` (through the
    target network's input and the max), and no parameter of either network receives a gradient.
    """
    if grad_to_inputs:
        scope = contextlib.ExitStack()
        for net in (q_net, target_net):
            if isinstance(net, nn.Module):
                scope.enter_context(frozen(net))
    else:
        scope = torch.no_grad()
    with scope:
        next_q_target = target_net(next_observation)  # [B, n_actions]
        if double:
            best = q_net(next_observation).argmax(dim=-1, keepdim=True)  # [B, 1]
            next_value = next_q_target.gather(-1, best).squeeze(-1)
        else:
            next_value = next_q_target.amax(dim=-1)
        return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_value.to(reward.dtype)


def q_loss(
    observation: Tensor,
    action: Tensor,
    target: Tensor,
    q_net: QAll,
    loss: str = "huber",
) -> TensorDict:
    """``L(theta) = E[l(Q(s, a; theta) - y)]`` (Mnih et al. 2015, Eq. 2 with a fixed target ``y``).

    ``l`` is the Huber loss with threshold 1 (``loss="huber"``: ``0.5 x^2`` for ``|x| <= 1``,
    ``|x| - 0.5`` beyond; its gradient is the TD error clipped to [-1, 1], which is the error
    clipping of Mnih et al. 2015, Methods) or the squared error (``loss="mse"``: ``x^2``, no 0.5
    factor, so for small errors it is twice the Huber value).

    Shapes: ``observation [B, D]``, ``action long [B]``, ``target [B]``. Returns ``loss_q`` and the
    detached diagnostic ``q_mean`` (mean of ``Q(s, a)`` over the batch).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    q = q_net(observation).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)  # [B]
    if loss == "huber":
        value = F.smooth_l1_loss(q, target, beta=1.0)
    else:
        value = F.mse_loss(q, target)
    return TensorDict({"loss_q": value, "q_mean": q.detach().mean()}, batch_size=[])
