"""Q-functions: ensembles of ``Q(s, a)`` computed as one batched network (continuous actions), and
one network giving ``Q(s, .)`` for every discrete action. No Lightning imports."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from lightning_mbrl.models.mlp import BatchedMLP, mlp


class EnsembleQ(nn.Module):
    """``n_critics`` independent ``Q(s, a)`` networks (SAC's twin critics for ``n_critics = 2``).

    ``forward(observation [B, obs_dim], action [B, A]) -> [n_critics, B]``: all members in one
    ``baddbmm`` per layer.
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        n_critics: int = 2,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.n_critics = n_critics
        self.net = BatchedMLP(n_critics, observation_dim + action_dim, hidden, 1, act)

    def forward(self, observation: Tensor, action: Tensor) -> Tensor:
        return self.net(torch.cat([observation, action], dim=-1)).squeeze(-1)


class DiscreteQ(nn.Module):
    """``Q(s, .)`` for all ``n_actions`` discrete actions at once (the DQN network of Mnih et al.
    2015, an MLP here): ``observation_dim -> hidden[0] -> ... -> n_actions``, any depth.

    ``forward(observation [*B, observation_dim]) -> [*B, n_actions]``.
    """

    def __init__(
        self,
        observation_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.net = mlp(observation_dim, hidden, n_actions, act)

    def forward(self, observation: Tensor) -> Tensor:
        return self.net(observation)
