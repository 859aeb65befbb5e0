"""The known reward and termination functions of every task that has them, by env id.

One entry point for the algorithms and planners that use them (MBSAC's imagined rewards, BOOTS's and
MPC's own models): the MuJoCo v5 tasks (``mujoco_fns``) and Pendulum-v1 (here). Signatures as in
``mujoco_fns``: ``fn(obs [*B, d], action [*B, A], next_obs [*B, d]) -> [*B]``, actions in the
library's ``[-1, 1]`` (integer ``[*B]`` for the discrete 1-D MDPs, ``pwl/...``, which never terminate
by state: their episodes end by step count). Unsupported ids raise ``ConfigError`` naming the id.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from lightning_mbrl.envs import mujoco_fns, pwl_env
from lightning_mbrl.envs.mujoco_fns import TransitionFn, never_terminated

PENDULUM_MAX_TORQUE = 2.0


def pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Pendulum-v1: ``-(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)`` on the state *before* the
    step, ``obs = [cos th, sin th, thdot]``, torque ``u = 2 a`` (``make_env`` rescales [-2, 2] to
    [-1, 1]); ``atan2`` already returns the normalised angle in ``[-pi, pi]``."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = PENDULUM_MAX_TORQUE * action[..., 0].clamp(-1.0, 1.0)
    return -(theta.square() + 0.1 * obs[..., 2].square() + 0.001 * torque.square())


def reward_fn(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> TransitionFn:
    """The known reward ``r(s, a, s')`` of ``make_env(env_id, **env_kwargs)``."""
    if env_id == "Pendulum-v1":
        return pendulum_reward
    if env_id.startswith(pwl_env.PREFIX):
        return pwl_env.reward_fn(env_id, dict(env_kwargs or {}))
    return mujoco_fns.reward_fn(env_id, env_kwargs)


def termination_fn(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> TransitionFn:
    """The known ``terminated(s, a, s')`` of ``make_env(env_id, **env_kwargs)``."""
    if env_id == "Pendulum-v1" or env_id.startswith(pwl_env.PREFIX):
        return never_terminated
    return mujoco_fns.termination_fn(env_id, env_kwargs)


__all__ = ["pendulum_reward", "reward_fn", "termination_fn"]
