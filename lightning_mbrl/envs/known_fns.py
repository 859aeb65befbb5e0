"""The known reward and termination functions of every task that has them, looked up by env id.

One entry point for the algorithms and planners that use them (MBSAC's imagined rewards, BOOTS's and
MPC's own models). Each task registers its function factories with its env id in the ``factory``
registry: the MuJoCo v5 tasks (``mujoco_fns``) and Pendulum-v1 here, the discrete 1-D MDPs
(``pwl/...``, which never terminate by state: their episodes end by step count) with their builder in
``pwl_env``, a custom env with ``register_env(..., reward=..., termination=...)``. Signatures as in
``mujoco_fns``: ``fn(obs [*B, d], action [*B, A], next_obs [*B, d]) -> [*B]``, actions in the
library's ``[-1, 1]`` (integer ``[*B]`` for the discrete MDPs). Ids without one raise ``ConfigError``
naming the id.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from lightning_mbrl.envs import mujoco_fns
from lightning_mbrl.envs.factory import KnownFnFactory, known_fn_factory, register_known_fns
from lightning_mbrl.envs.mujoco_fns import TransitionFn, never_terminated
from lightning_mbrl.precision import full_precision

PENDULUM_MAX_TORQUE = 2.0


def pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Pendulum-v1: ``-(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)`` on the state *before* the
    step, ``obs = [cos th, sin th, thdot]``, torque ``u = 2 a`` (``make_env`` rescales [-2, 2] to
    [-1, 1]); ``atan2`` already returns the normalised angle in ``[-pi, pi]``."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])
    torque = PENDULUM_MAX_TORQUE * action[..., 0].clamp(-1.0, 1.0)
    return -(theta.square() + 0.1 * obs[..., 2].square() + 0.001 * torque.square())


def reward_fn(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> TransitionFn:
    """The known reward ``r(s, a, s')`` of ``make_env(env_id, **env_kwargs)``, computed in full precision
    under autocast (``precision.full_precision``)."""
    return full_precision(known_fn_factory(env_id, "reward")(env_id, env_kwargs))


def termination_fn(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> TransitionFn:
    """The known ``terminated(s, a, s')`` of ``make_env(env_id, **env_kwargs)``, computed in full
    precision under autocast (``precision.full_precision``)."""
    return full_precision(known_fn_factory(env_id, "termination")(env_id, env_kwargs))


def _regardless_of_kwargs(fn: TransitionFn) -> KnownFnFactory:
    """The factory of a task whose function depends on neither its id nor its env kwargs."""
    return lambda env_id, env_kwargs: fn


for _mujoco_id in mujoco_fns.V5_DEFAULTS:
    register_known_fns(_mujoco_id, reward=mujoco_fns.reward_fn, termination=mujoco_fns.termination_fn)
register_known_fns("Pendulum-v1", reward=_regardless_of_kwargs(pendulum_reward),
                   termination=_regardless_of_kwargs(never_terminated))

__all__ = ["pendulum_reward", "reward_fn", "termination_fn"]
