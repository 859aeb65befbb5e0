"""The small interfaces callbacks and planners rely on, instead of concrete algorithms."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor
from torchrl.envs import EnvBase


@runtime_checkable
class Policy(Protocol):
    def act(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """``observation [*B, obs_dim] -> action [*B, A]`` (in ``[-1, 1]``) or ``[*B]`` (discrete)."""
        ...


@runtime_checkable
class QFunction(Protocol):
    def q_values(self, observation: Tensor, action: Tensor) -> Tensor:
        """``[B, obs_dim], [B, A] -> [n_critics, B]`` (discrete actions: ``long [B]``)."""
        ...


@runtime_checkable
class DiscreteQFunction(Protocol):
    def q_all(self, observation: Tensor) -> Tensor:
        """``[*B, obs_dim] -> [*B, n_actions]``: the Q-value of every discrete action."""
        ...


@runtime_checkable
class EnvMaker(Protocol):
    def make_env(self, num_envs: int = 1, seed: int | None = None, **overrides: Any) -> EnvBase:
        """A fresh env (batch ``[num_envs]``) of the task the algorithm trains on."""
        ...
