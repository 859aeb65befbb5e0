"""Dyna-DQN (paper 001, Young et al. 2023; REFERENCE 4.3): DQN on transitions imagined by a learned
model, with continuation-weighted targets. Pure functions, no Lightning.

Everything carries a leading member axis ``E`` (independent seeds of one batched run): a Q-network
is a callable ``observation [E, B, D] -> [E, B, n_actions]`` (``models.mlp.BatchedMLP``), and every
loss is returned per member, ``[E]``, each a mean over that member's batch, so that summing over
members trains each member on its own loss.

Which parameters each function reaches:

- ``imagine`` -> none (no graph: imagined transitions are data for the Q step);
- ``td_loss`` -> the online Q-network only (the target network's values are constants).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_mbrl import keys

QAll = Callable[[Tensor], Tensor]


class StepModel(Protocol):
    """What ``imagine`` steps: the simple model on observations (``models.simple_model.BernoulliModel``)
    or a latent model on latents (``models.latent_model.LatentModel``). ``sample(x [E, N, D], action long
    [E, N], uniform [E, N, k]) -> (next x, reward mean [E, N], continue_prob [E, N])``, no graph."""

    num_actions: int

    def sample(self, x: Tensor, action: Tensor, uniform: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...
#: Imagined transitions: the probability that the episode is still running when the step starts,
#: ``prod_{k < t} continue_prob_k`` (1 for the first step), ``[E, N]``.
WEIGHT = "weight"


def softmax_actions(q_values: Tensor, temperature: float, uniform: Tensor) -> Tensor:
    """Actions ``long [*B]`` drawn from ``softmax(Q / temperature)`` by the Gumbel-max trick on
    ``uniform [*B, n_actions]`` in (0, 1) (paper 001's behaviour policy)."""
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-7)))
    return (q_values / temperature + gumbel).argmax(-1)


@torch.no_grad()
def imagine(model: StepModel, q_net: QAll, start: Tensor, length: int, temperature: float,
            uniform: Tensor) -> TensorDict:
    """``length`` model steps from ``start [E, N, D]`` with actions from ``softmax(Q / temperature)``
    of the current Q-network: a TensorDict ``[E, N * length]`` (time-major) of ``observation``,
    ``action``, ``("next", "reward")``, ``("next", "continue_prob")``, ``("next", "observation")``
    and ``weight`` (module constant ``WEIGHT``).

    ``uniform [E, length, N, n_actions + D]`` in [0, 1) holds all the randomness (actions, then the
    Bernoulli features), so a member's rollout depends on its own draws only.
    """
    n_actions = model.num_actions
    obs, weight, steps = start, torch.ones(start.shape[:2], dtype=start.dtype, device=start.device), []
    for t in range(length):
        action = softmax_actions(q_net(obs), temperature, uniform[:, t, :, :n_actions])
        next_obs, reward, cont = model.sample(obs, action, uniform[:, t, :, n_actions:])
        steps.append(TensorDict({keys.OBSERVATION: obs, keys.ACTION: action, keys.REWARD: reward,
                                 keys.CONTINUE_PROB: cont, keys.NEXT_OBSERVATION: next_obs, WEIGHT: weight},
                                batch_size=obs.shape[:2]))
        obs, weight = next_obs, weight * cont
    return torch.cat(steps, dim=1)


def td_loss(q_net: QAll, target_net: QAll, batch: TensorDict, gamma: float) -> TensorDict:
    """Per-member ``loss_q [E] = mean_n w_n (Q(s_n, a_n) - y_n)^2`` with the DQN target
    ``y = r + gamma c max_a' Q_target(s', a')`` (Mnih et al. 2015; not double DQN, as paper 001).

    Real transitions: ``c = 1 - terminated``, ``w = 1``. Imagined ones (``imagine``): ``c`` is the
    model's continuation probability and ``w`` the probability that the rollout is still running
    (REFERENCE 4.3). Also returns the detached ``q_mean [E]``.
    """
    obs, action, reward = batch[keys.OBSERVATION], batch[keys.ACTION], batch[keys.REWARD]
    if keys.CONTINUE_PROB in batch.keys(True):
        cont = batch[keys.CONTINUE_PROB]
    else:
        cont = 1.0 - batch[keys.TERMINATED].to(reward.dtype)
    weight = batch.get(WEIGHT, None)
    with torch.no_grad():
        target = reward + gamma * cont * target_net(batch[keys.NEXT_OBSERVATION]).amax(-1)
    q = q_net(obs).gather(-1, action.unsqueeze(-1)).squeeze(-1)
    error = (q - target) ** 2
    if weight is not None:
        error = weight * error
    return TensorDict({"loss_q": error.mean(-1), "q_mean": q.detach().mean(-1)}, batch_size=[])
