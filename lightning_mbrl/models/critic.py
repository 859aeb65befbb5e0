"""Ensembles of Q-functions computed as one batched network. No Lightning imports."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from lightning_mbrl.models.mlp import BatchedMLP


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
