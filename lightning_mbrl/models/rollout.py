"""Rolling a learned dynamics model forward under a policy: one function for every world model.

A *step function* is ``step(obs [N, D], action [N, A], *, differentiable) -> (next_obs [N, D],
reward [N], terminated bool [N])`` (``EnsembleDynamics.step`` with its mode bound,
``DeterministicDynamics.step``). No Lightning imports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl import keys

StepFn = Callable[..., tuple[Tensor, Tensor, Tensor]]


def model_rollout(
    step: StepFn,
    start_obs: Tensor,
    policy: Callable[[Tensor], Tensor | tuple[Tensor, Tensor]],
    horizon: int,
    *,
    differentiable: bool = False,
) -> TensorDict:
    """``horizon`` model steps from ``start_obs [N, obs_dim]`` with ``action = policy(obs)``.

    ``policy`` returns ``action [N, A]``, or ``(action, log_prob [N])`` (a stochastic policy's
    reparameterised sample with its log-probability, e.g. ``TanhGaussianActor.sample``); then the
    rollout also records ``action_log_prob [horizon, N, 1]``, with the graph when differentiable
    (MAAC's entropy bonus along the path).

    Returns a TensorDict of batch ``[horizon, N]`` with ``observation``, ``action``,
    ``("next", "observation")``, ``("next", "reward") [horizon, N, 1]``,
    ``("next", "terminated") bool [horizon, N, 1]`` and ``mask`` (``bool [horizon, N, 1]``):
    ``mask[t]`` is False once the rollout terminated at a step before ``t`` (the terminating step
    itself is kept). The tensor stays rectangular: terminated rollouts keep being stepped from their
    last state, and ``td[td["mask"].squeeze(-1)]`` gives only the transitions before termination.

    ``differentiable=False`` runs the whole rollout, policy included, under ``torch.no_grad()``;
    ``differentiable=True`` keeps the graph through the policy and the model (pathwise, MAAC).
    """
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    grad_mode = contextlib.nullcontext() if differentiable else torch.no_grad()
    observations, actions, log_probs, next_observations, rewards, terminals, masks = [], [], [], [], [], [], []
    with grad_mode:
        obs = start_obs
        alive = torch.ones(*start_obs.shape[:-1], 1, dtype=torch.bool, device=start_obs.device)
        for _ in range(horizon):
            action = policy(obs)
            if isinstance(action, tuple):
                action, log_prob = action
                log_probs.append(log_prob.unsqueeze(-1))
            next_obs, reward, terminated = step(obs, action, differentiable=differentiable)
            observations.append(obs)
            actions.append(action)
            next_observations.append(next_obs)
            rewards.append(reward.unsqueeze(-1))
            terminals.append(terminated.unsqueeze(-1))
            masks.append(alive)
            alive = alive & ~terminated.unsqueeze(-1)
            obs = next_obs
    recorded = {keys.ACTION_LOG_PROB: torch.stack(log_probs)} if log_probs else {}
    return TensorDict(
        {
            **recorded,
            keys.OBSERVATION: torch.stack(observations),
            keys.ACTION: torch.stack(actions),
            keys.NEXT_OBSERVATION: torch.stack(next_observations),
            keys.REWARD: torch.stack(rewards),
            keys.TERMINATED: torch.stack(terminals),
            keys.MASK: torch.stack(masks),
        },
        batch_size=[horizon, *start_obs.shape[:-1]],
    )
