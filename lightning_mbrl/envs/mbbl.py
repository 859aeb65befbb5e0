"""The MuJoCo task variants of MAAC's experiments (paper 004, Table 1; REFERENCE.md 5.4), from the MBBL
benchmark: ``make_env("mbbl/HalfCheetah")``, ``mbbl/Hopper``, ``mbbl/Walker2d``, ``mbbl/Ant``.

Each is the gymnasium v5 model (same XML, frame skip 5, 4, 4, 5, 1000-step time limit) with

- observation ``concat(qpos[1:], qvel)`` (Ant: ``qpos[2:]``), velocities not clipped;
- no termination (``terminated`` is always False; episodes end by the time limit);
- the reward of the next observation's forward velocity ``v = next_obs[i]`` (``qvel[0]``):

      HalfCheetah  v - 0.1 |a|^2                                  (i = 8)
      Hopper       v - 0.1 |a|^2 - 3 (z - 1.3)^2 + 1             (i = 5,  z = next_obs[0])
      Walker2d     v - 0.1 |a|^2 - 3 (z - 1.3)^2 + 1             (i = 8)
      Ant          v - 0.1 |a|^2 - 3 (z - 0.57)^2 + 1            (i = 13)

The same formula is the task's known reward function (registered with the ids), so a model's
predictions are scored exactly as the simulator scores the real step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torchrl.envs import EnvBase
from torchrl.envs.libs.gym import GymWrapper

from lightning_mbrl.envs.factory import register_env
from lightning_mbrl.envs.mujoco_fns import never_terminated
from lightning_mbrl.errors import ConfigError

PREFIX = "mbbl/"


@dataclass(frozen=True)
class Variant:
    gym_id: str
    skip_qpos: int  # leading qpos entries left out of the observation (x; Ant: x, y)
    velocity_index: int  # the observation's forward velocity, qvel[0]
    target_height: float | None  # the height term's target (None: no height term)


VARIANTS: dict[str, Variant] = {
    "HalfCheetah": Variant("HalfCheetah-v5", 1, 8, None),
    "Hopper": Variant("Hopper-v5", 1, 5, 1.3),
    "Walker2d": Variant("Walker2d-v5", 1, 8, 1.3),
    "Ant": Variant("Ant-v5", 2, 13, 0.57),
}


def _variant(env_id: str) -> Variant:
    name = env_id.removeprefix(PREFIX)
    if name not in VARIANTS:
        raise ConfigError(f"unknown env id {env_id!r}; MBBL variants: {', '.join(PREFIX + n for n in VARIANTS)}")
    return VARIANTS[name]


def mbbl_reward(variant: Variant, action: Tensor | np.ndarray, next_obs: Tensor | np.ndarray):
    """The variant's reward (module docstring) of ``action [*B, A]`` and ``next_obs [*B, D]``."""
    lib = torch if isinstance(next_obs, Tensor) else np
    reward = next_obs[..., variant.velocity_index] - 0.1 * (action * action).sum(-1)
    if variant.target_height is not None:
        reward = reward - 3.0 * (next_obs[..., 0] - variant.target_height) ** 2 + 1.0
    return reward if lib is torch else float(reward)


class MBBLVariant(gym.Wrapper):
    """The observation, reward and termination of an MBBL variant over a gymnasium v5 MuJoCo env."""

    def __init__(self, env: gym.Env, variant: Variant) -> None:
        super().__init__(env)
        self.variant = variant
        data = env.unwrapped.data
        dim = data.qpos.size - variant.skip_qpos + data.qvel.size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float64)

    def _observation(self) -> np.ndarray:
        data = self.env.unwrapped.data
        return np.concatenate([data.qpos.flat[self.variant.skip_qpos :], data.qvel.flat]).astype(np.float64)

    def reset(self, **kwargs: Any):
        _, info = self.env.reset(**kwargs)
        return self._observation(), info

    def step(self, action):
        _, _, _, truncated, info = self.env.step(action)
        obs = self._observation()
        return obs, mbbl_reward(self.variant, np.asarray(action, dtype=np.float64), obs), False, truncated, info


def build(env_id: str, *, device: str = "cpu", max_episode_steps: int | None = None, **env_kwargs: Any) -> EnvBase:
    variant = _variant(env_id)
    if env_kwargs:
        raise ConfigError(f"{env_id} takes no env_kwargs (its observation and reward are fixed), got {sorted(env_kwargs)}")
    options = {} if variant.gym_id == "HalfCheetah-v5" else {"terminate_when_unhealthy": False}
    env = gym.make(variant.gym_id, max_episode_steps=max_episode_steps, **options)
    return GymWrapper(MBBLVariant(env, variant), device=device)


def reward_factory(env_id: str, env_kwargs: Mapping[str, Any] | None = None):
    variant = _variant(env_id)

    def reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        return mbbl_reward(variant, action, next_obs)

    return reward


register_env(PREFIX, build, reward=reward_factory, termination=lambda env_id, env_kwargs=None: never_terminated)
