"""The small interfaces callbacks and planners rely on, instead of concrete algorithms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from tensordict import TensorDict, TensorDictBase
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


@runtime_checkable
class PolicyDistribution(Protocol):
    def policy_dist(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        """``observation [B, obs_dim] -> (mu, log_std)`` ``[B, A]``, pre-tanh: ``a = tanh(mu + std * xi)``."""
        ...


@runtime_checkable
class WorldModel(Protocol):
    """A learned (or known) model in TorchRL's step convention; ``lightning_mbrl.models.rollout``
    documents the keys and implements it once for the library's models (``WorldModel`` base class)."""

    def step(self, td: TensorDictBase, *, differentiable: bool = False, members: bool | Tensor = False,
             **options: Any) -> TensorDictBase:
        """Reads the root of ``td`` (observation, action, latent keys) and writes ``td["next"]``."""
        ...

    def rollout(self, start: TensorDictBase | Tensor, policy: Callable[[Tensor], Any], horizon: int, *,
                differentiable: bool = False, **options: Any) -> TensorDict:
        """``horizon`` steps under ``policy``: a TensorDict ``[horizon, *B]``."""
        ...


@runtime_checkable
class ReplayView(Protocol):
    """Read-only replay data: ``len``, ``view[i:j]`` (a TensorDict of transitions), ``sample(n)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: Any) -> TensorDictBase: ...

    def sample(self, batch_size: int) -> TensorDictBase: ...


@runtime_checkable
class RunView(Protocol):
    """What callbacks may read of a run (every algorithm provides it): the real frames so far, this
    rank's seed, the task (id, keyword arguments, ``lightning_mbrl.envs.EnvSpec``), the frame budget,
    the real replay (read-only), the device, fresh envs of the task, and a way to log a row of
    metrics (and the rows logged since a watcher last looked)."""

    @property
    def frames(self) -> int: ...

    @property
    def rank_seed(self) -> int: ...

    @property
    def spec(self) -> Any: ...

    @property
    def env_id(self) -> str: ...

    @property
    def env_kwargs(self) -> Mapping[str, Any]: ...

    @property
    def max_frames(self) -> int: ...

    @property
    def real_replay(self) -> ReplayView: ...

    @property
    def device(self) -> Any: ...

    #: The metrics logged since a watcher (``callbacks.DivergenceGuard``) last looked; it clears them.
    rows_to_check: dict[str, float]

    def make_env(self, num_envs: int = 1, seed: int | None = None, **overrides: Any) -> EnvBase: ...

    def log_to_loggers(self, row: Mapping[str, float]) -> None: ...


@runtime_checkable
class HasWorldModel(Protocol):
    """An algorithm that learns a world model (MBPO, MBSAC, ...); read it with ``world_model_of``."""

    world_model: WorldModel


def world_model_of(module: object) -> WorldModel | None:
    """The module's world model (``module.world_model``) if it has one that follows the protocol."""
    model = getattr(module, "world_model", None)
    if model is not None and not isinstance(model, WorldModel):
        raise TypeError(f"{type(module).__name__}.world_model does not follow lightning_mbrl.protocols.WorldModel")
    return model
