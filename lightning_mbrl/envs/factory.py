"""``make_env``: one factory for every environment the library trains on.

Gymnasium ids become TorchRL envs with the standard transforms; custom torch-native MDPs register
into the same table with :func:`register_env`. The same registry holds each task's known reward and
termination functions (:func:`register_known_fns`, served by ``known_fns``). Every env the factory
returns has

- float32 ``"observation"`` of shape ``[*batch, obs_dim]``;
- continuous actions rescaled to ``[-1, 1]`` (so policies, models and planners never see env
  units), or integer (categorical) actions for discrete envs;
- ``("next", "terminated")`` and ``("next", "truncated")`` kept apart (time limits truncate);
- ``"step_count"`` (StepCounter), ``"episode_reward"`` (RewardSum) and ``"is_init"`` (InitTracker).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, TypeVar

import gymnasium as gym
import numpy as np
import torch
from torchrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    InitTracker,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
)
from torchrl.envs.libs.gym import GymWrapper

from lightning_mbrl.errors import ConfigError

T = TypeVar("T")

#: ``(env_id, env_kwargs) -> fn``: builds a task's known reward or termination ``fn(obs, action, next_obs)``
#: (``known_fns``) for ``make_env(env_id, **env_kwargs)``; raises ``ConfigError`` for options it cannot serve.
KnownFnFactory = Callable[[str, Mapping[str, Any] | None], Callable[..., torch.Tensor]]

#: Gymnasium ids that are built and tested here.
GYM_IDS: tuple[str, ...] = (
    "Ant-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Humanoid-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
    "Pendulum-v1",
    "CartPole-v1",
)

#: Custom builders: exact ids, and prefixes (ending in "/") whose builder receives the full id.
_CUSTOM_IDS: dict[str, Callable[..., EnvBase]] = {}
_CUSTOM_PREFIXES: dict[str, Callable[..., EnvBase]] = {}


@dataclass(frozen=True)
class KnownFns:
    """The known-function factories of one env id or prefix; None where the task has no known function."""

    reward: KnownFnFactory | None = None
    termination: KnownFnFactory | None = None


#: Known functions, by exact id and by prefix (as the builders).
_KNOWN_FN_IDS: dict[str, KnownFns] = {}
_KNOWN_FN_PREFIXES: dict[str, KnownFns] = {}


@dataclass(frozen=True)
class EnvSpec:
    """What an algorithm needs to size its networks; computed from the env, never typed in YAML."""

    env_id: str
    observation_dim: int
    action_dim: int  # continuous: number of action dimensions; discrete: 1
    num_actions: int | None  # discrete: number of actions; continuous: None
    max_episode_steps: int | None

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None


def register_env(
    name: str,
    builder: Callable[..., EnvBase],
    *,
    reward: KnownFnFactory | None = None,
    termination: KnownFnFactory | None = None,
) -> None:
    """Register a custom env id (``"maze"``) or prefix (``"pwl/"``, the builder gets the full id).

    ``builder(env_id, *, device, max_episode_steps, **kwargs)`` returns a batch-less TorchRL env;
    the factory adds the standard transforms and batching. An env with an ``episode_steps``
    attribute reports it as its time limit (``env_spec(...).max_episode_steps``). ``reward`` and
    ``termination`` are the task's known functions (:func:`register_known_fns`); None: it has none.
    """
    table = _CUSTOM_PREFIXES if name.endswith("/") else _CUSTOM_IDS
    table[name] = builder
    register_known_fns(name, reward=reward, termination=termination)
    _spec_cached.cache_clear()


def register_known_fns(name: str, *, reward: KnownFnFactory | None, termination: KnownFnFactory | None) -> None:
    """Register the known reward and termination factories of an env id or prefix (``"pwl/"``: the
    factories get the full id) that ``make_env`` builds, a gymnasium id or a :func:`register_env` one.
    Registering a name again replaces its functions."""
    table = _KNOWN_FN_PREFIXES if name.endswith("/") else _KNOWN_FN_IDS
    table[name] = KnownFns(reward=reward, termination=termination)


def known_fn_factory(env_id: str, kind: Literal["reward", "termination"]) -> KnownFnFactory:
    """The registered ``kind`` factory of ``env_id``; ``ConfigError`` naming the id and the ids that
    have one when there is none."""
    entry = _lookup(_KNOWN_FN_IDS, _KNOWN_FN_PREFIXES, env_id)
    factory = getattr(entry, kind) if entry is not None else None
    if factory is None:
        def having(table: dict[str, KnownFns]) -> list[str]:
            return sorted(name for name, fns in table.items() if getattr(fns, kind) is not None)

        supported = having(_KNOWN_FN_IDS) + [prefix + "..." for prefix in having(_KNOWN_FN_PREFIXES)]
        raise ConfigError(f"no known {kind} function for env id {env_id!r}; supported: {', '.join(supported)}")
    return factory


def known_env_ids() -> list[str]:
    return sorted(GYM_IDS) + sorted(_CUSTOM_IDS) + sorted(p + "..." for p in _CUSTOM_PREFIXES)


def _lookup(ids: Mapping[str, T], prefixes: Mapping[str, T], env_id: str) -> T | None:
    """The entry of ``env_id``: its exact id's, else the first registered prefix it starts with."""
    if env_id in ids:
        return ids[env_id]
    return next((entry for prefix, entry in prefixes.items() if env_id.startswith(prefix)), None)


def _custom_builder(env_id: str) -> Callable[..., EnvBase] | None:
    return _lookup(_CUSTOM_IDS, _CUSTOM_PREFIXES, env_id)


def check_env_id(env_id: str) -> None:
    if not isinstance(env_id, str) or (env_id not in GYM_IDS and _custom_builder(env_id) is None):
        raise ConfigError(f"unknown env id {env_id!r}; known ids: {', '.join(known_env_ids())}")


def _make_gym(env_id: str, max_episode_steps: int | None, env_kwargs: dict[str, Any]) -> gym.Env:
    try:
        env = gym.make(env_id, max_episode_steps=max_episode_steps, **env_kwargs)
    except TypeError as err:  # an option the env's constructor does not take
        raise ConfigError(f"env_kwargs for {env_id!r} rejected: {err}") from None
    if isinstance(env.action_space, gym.spaces.Box):
        low, high = env.action_space.low, env.action_space.high
        if not (np.all(low == -1.0) and np.all(high == 1.0)):
            bound = np.ones(low.shape, dtype=np.float32)
            env = gym.wrappers.RescaleAction(env, -bound, bound)
    elif not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(f"env {env_id!r}: action space {env.action_space} is not Box or Discrete")
    return env


def _make_single(
    env_id: str, device: str, max_episode_steps: int | None, env_kwargs: dict[str, Any]
) -> EnvBase:
    builder = _custom_builder(env_id)
    if builder is not None:
        base = builder(env_id, device=device, max_episode_steps=max_episode_steps, **env_kwargs)
    else:
        gym_env = _make_gym(env_id, max_episode_steps, env_kwargs)
        base = GymWrapper(gym_env, categorical_action_encoding=True, device=device)
    transforms = [StepCounter(), RewardSum(), InitTracker()]
    obs_dtypes = [spec.dtype for spec in base.observation_spec.values(True, True)]
    if torch.float64 in obs_dtypes:
        transforms.insert(0, DoubleToFloat())
    return TransformedEnv(base, Compose(*transforms))


def make_env(
    env_id: str,
    *,
    num_envs: int = 1,
    seed: int | None = None,
    device: str = "cpu",
    max_episode_steps: int | None = None,
    **env_kwargs: Any,
) -> EnvBase:
    """Build ``env_id`` as a TorchRL env; ``num_envs > 1`` gives a batch ``[num_envs]`` of them.

    ``max_episode_steps`` overrides the env's time limit (truncation); ``env_kwargs`` go to the
    env's constructor (e.g. gymnasium v5 observation options).
    """
    check_env_id(env_id)
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ConfigError(f"max_episode_steps must be >= 1 or null, got {max_episode_steps}")
    make_one = functools.partial(_make_single, env_id, device, max_episode_steps, dict(env_kwargs))
    env = make_one() if num_envs == 1 else SerialEnv(num_envs, make_one, device=device)
    if seed is not None:
        env.set_seed(seed)
    return env


@functools.lru_cache(maxsize=None)
def _spec_cached(env_id: str, kwargs_json: str) -> EnvSpec:
    kwargs = json.loads(kwargs_json)
    env = make_env(env_id, **kwargs)
    try:
        obs_spec = env.observation_spec["observation"]
        action_spec = env.full_action_spec[env.action_key]
        num_actions = getattr(action_spec.space, "n", None) if not action_spec.dtype.is_floating_point else None
        max_steps = None
        inner = getattr(env.base_env, "_env", None)
        if inner is not None and inner.spec is not None:
            max_steps = inner.spec.max_episode_steps
        if getattr(env.base_env, "episode_steps", None) is not None:  # a custom env's own time limit
            max_steps = env.base_env.episode_steps
        if kwargs.get("max_episode_steps") is not None:
            max_steps = kwargs["max_episode_steps"]
        return EnvSpec(
            env_id=env_id,
            observation_dim=int(obs_spec.shape[-1]),
            action_dim=1 if num_actions is not None else int(action_spec.shape[-1]),
            num_actions=int(num_actions) if num_actions is not None else None,
            max_episode_steps=max_steps,
        )
    finally:
        env.close()


def env_spec(env_id: str, **env_kwargs: Any) -> EnvSpec:
    """Sizes of ``env_id`` (observation dim, action dim or count, time limit)."""
    check_env_id(env_id)
    try:
        key = json.dumps(env_kwargs, sort_keys=True)
    except TypeError:
        raise ConfigError(f"env_kwargs for {env_id!r} must be plain YAML values, got {env_kwargs!r}") from None
    return _spec_cached(env_id, key)
