"""Known termination and reward functions of the gymnasium v5 MuJoCo tasks, batched in torch.

Every function here has the signature ``fn(obs [*B, d], action [*B, A], next_obs [*B, d]) -> [*B]``
(bool for terminations, the observation's float dtype for rewards). ``action`` is the library's
action, in ``[-1, 1]`` (``make_env`` rescales every Box action space); a reward maps it back to env
units before its control cost. Nothing here touches numpy or Lightning, and rewards are
differentiable in ``next_obs`` and ``action`` (the healthy indicator is piecewise constant).

- :func:`termination_fn` reproduces the v5 env's ``terminated`` flag from ``next_obs`` (MBPO's
  hand-coded termination). It honours the observation options (``exclude_current_positions_...``,
  the Ant/Humanoid ``include_*_in_observation`` truncations of MBPO) and the rule's kwargs
  (``healthy_*_range``, ``terminate_when_unhealthy``). Envs that never terminate get
  :func:`never_terminated`, a function returning all ``False`` (never ``None``).
- :func:`reward_fn` is the known reward of MBSAC (BOOTS): ``r(s, a, s')``. The forward term needs the
  x position, so it requires ``exclude_current_positions_from_observation=False``.

Where the env's value cannot be recomputed exactly from observations, the function is the exact formula
on the observed state and the measured error is in ``docs/mujoco_fns.md``: Ant's and Humanoid's forward
terms and InvertedDoublePendulum's tip height read body positions (``xpos``, ``xipos``, ``site_xpos``)
that ``mj_step`` computed inside its last RK4 substep and did not refresh after integrating, so they
differ from the returned ``qpos`` by ``O(h^2 * acceleration)``. Humanoid's centre of mass comes from
the forward kinematics in ``kinematics``.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from lightning_mbrl.envs.kinematics import CenterOfMass
from lightning_mbrl.errors import ConfigError

#: ``fn(obs, action, next_obs) -> [*B]``: a termination (bool) or reward (float) of one transition.
TransitionFn = Callable[[Tensor, Tensor, Tensor], Tensor]

# The v5 defaults of the kwargs the rules read (gymnasium 1.x ``*_v5.py`` constructors). A test checks
# them against the env's own attributes, so a gymnasium change cannot drift past unnoticed.
V5_DEFAULTS: dict[str, dict[str, Any]] = {
    "HalfCheetah-v5": {"forward_reward_weight": 1.0, "ctrl_cost_weight": 0.1},
    "Hopper-v5": {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 1e-3,
        "healthy_reward": 1.0,
        "terminate_when_unhealthy": True,
        "healthy_state_range": (-100.0, 100.0),
        "healthy_z_range": (0.7, math.inf),
        "healthy_angle_range": (-0.2, 0.2),
    },
    "Walker2d-v5": {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 1e-3,
        "healthy_reward": 1.0,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (0.8, 2.0),
        "healthy_angle_range": (-1.0, 1.0),
    },
    "Ant-v5": {
        "forward_reward_weight": 1.0,
        "ctrl_cost_weight": 0.5,
        "contact_cost_weight": 5e-4,
        "healthy_reward": 1.0,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (0.2, 1.0),
        "contact_force_range": (-1.0, 1.0),
        "main_body": 1,
        "include_cfrc_ext_in_observation": True,
    },
    "Humanoid-v5": {
        "forward_reward_weight": 1.25,
        "ctrl_cost_weight": 0.1,
        "contact_cost_weight": 5e-7,
        "contact_cost_range": (-math.inf, 10.0),
        "healthy_reward": 5.0,
        "terminate_when_unhealthy": True,
        "healthy_z_range": (1.0, 2.0),
        "include_cfrc_ext_in_observation": True,
    },
    "Swimmer-v5": {"forward_reward_weight": 1.0, "ctrl_cost_weight": 1e-4},
    "Reacher-v5": {"reward_dist_weight": 1.0, "reward_control_weight": 1.0},
    "InvertedPendulum-v5": {},
    "InvertedDoublePendulum-v5": {},
}

#: Position coordinates the v5 env drops from the observation by default (x, or x and y).
_SKIPPED_POSITIONS = {"HalfCheetah-v5": 1, "Hopper-v5": 1, "Walker2d-v5": 1, "Ant-v5": 2, "Humanoid-v5": 2,
                      "Swimmer-v5": 2}

#: Ant: qpos[2:] (13) + qvel (14), the part of the observation that ``state_vector()`` covers.
_ANT_STATE_DIM = 27

#: InvertedDoublePendulum: both poles are 0.6 long and the tip site sits at the end of the second
#: (``inverted_double_pendulum.xml``); the hinge of the first is at height 0.
_IDP_POLE_LENGTH = 0.6


# ============================================================================ terminations
def never_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """HalfCheetah, Swimmer, Reacher (and any env with ``terminate_when_unhealthy=False``)."""
    return torch.zeros(next_obs.shape[:-1], dtype=torch.bool, device=next_obs.device)


def _open(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    """``low < x < high``; False for NaN, as the env's Python comparisons."""
    return (x > bounds[0]) & (x < bounds[1])


def hopper_is_healthy(
    obs: Tensor,
    *,
    offset: int = 0,
    z_range: tuple[float, float] = (0.7, math.inf),
    angle_range: tuple[float, float] = (-0.2, 0.2),
    state_range: tuple[float, float] = (-100.0, 100.0),
) -> Tensor:
    """Hopper-v5 ``is_healthy`` from an observation ``[*B, d]`` -> bool ``[*B]``.

    ``obs[offset]`` is z, ``obs[offset + 1]`` the torso angle and ``obs[offset + 1:]`` is
    ``state_vector()[2:]`` (qpos[2:] and qvel); ``offset`` is 1 when x leads the observation. The
    env checks the unclipped qvel while the observation clips it to [-10, 10]: a |qvel| >= 100 the
    observation cannot show (a numerical blow-up) is the one case this misses.
    """
    z, angle = obs[..., offset], obs[..., offset + 1]
    state_ok = _open(obs[..., offset + 1:], state_range).all(dim=-1)
    return state_ok & _open(z, z_range) & _open(angle, angle_range)


def walker2d_is_healthy(
    obs: Tensor,
    *,
    offset: int = 0,
    z_range: tuple[float, float] = (0.8, 2.0),
    angle_range: tuple[float, float] = (-1.0, 1.0),
) -> Tensor:
    """Walker2d-v5 ``is_healthy``: z = ``obs[offset]``, angle = ``obs[offset + 1]``, open ranges."""
    return _open(obs[..., offset], z_range) & _open(obs[..., offset + 1], angle_range)


def ant_is_healthy(obs: Tensor, *, offset: int = 0, z_range: tuple[float, float] = (0.2, 1.0)) -> Tensor:
    """Ant-v5 ``is_healthy``: qpos and qvel finite and ``low <= z <= high`` (closed), z = ``obs[offset]``.

    The finiteness check covers the qpos/qvel part of the observation (its first ``offset + 27``
    entries), not the contact forces; with x, y excluded their finiteness is not observable.
    """
    z = obs[..., offset]
    finite = torch.isfinite(obs[..., : offset + _ANT_STATE_DIM]).all(dim=-1)
    return finite & (z >= z_range[0]) & (z <= z_range[1])


def humanoid_is_healthy(obs: Tensor, *, offset: int = 0, z_range: tuple[float, float] = (1.0, 2.0)) -> Tensor:
    """Humanoid-v5 ``is_healthy``: ``low < z < high`` (open), z = ``obs[offset]``."""
    return _open(obs[..., offset], z_range)


def inverted_pendulum_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5: any non-finite entry or ``|pole angle| > 0.2`` (obs = [x, angle, vx, w])."""
    return ~torch.isfinite(next_obs).all(dim=-1) | (next_obs[..., 1].abs() > 0.2)


def inverted_double_pendulum_tip_height(obs: Tensor) -> Tensor:
    """Height of the tip site from obs ``[x, sin a1, sin a2, cos a1, cos a2, ...]``:
    ``y = l (cos a1 + cos(a1 + a2))`` with ``l = 0.6``."""
    s1, s2, c1, c2 = obs[..., 1], obs[..., 2], obs[..., 3], obs[..., 4]
    return _IDP_POLE_LENGTH * (c1 + c1 * c2 - s1 * s2)


def inverted_double_pendulum_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedDoublePendulum-v5: ``tip height <= 1``.

    The env reads ``site_xpos``, which ``mj_step`` computed inside its last substep, not at the
    returned state the observation shows: a step whose tip ends within ``O(h^2)`` of 1 could
    disagree (none did in 5,000 random-action steps, ``docs/mujoco_fns.md``).
    """
    return inverted_double_pendulum_tip_height(next_obs) <= 1.0


def _unhealthy(obs: Tensor, action: Tensor, next_obs: Tensor, *, is_healthy: Callable[[Tensor], Tensor]) -> Tensor:
    return ~is_healthy(next_obs)


def termination_fn(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> TransitionFn:
    """The v5 env's ``terminated`` as a function of ``next_obs``, for ``make_env(env_id, **env_kwargs)``.

    Returns :func:`never_terminated` for envs that never terminate (HalfCheetah, Swimmer, Reacher) and
    for ``terminate_when_unhealthy=False``. Raises ``ConfigError`` (a ``ValueError``) naming the id
    for any other env id, and for ``xml_file`` (the rules assume the stock models).
    """
    kwargs = _check_kwargs(env_id, env_kwargs)
    if env_id in ("HalfCheetah-v5", "Swimmer-v5", "Reacher-v5"):
        return never_terminated
    if env_id == "InvertedPendulum-v5":
        return inverted_pendulum_terminated
    if env_id == "InvertedDoublePendulum-v5":
        return inverted_double_pendulum_terminated
    if not kwargs["terminate_when_unhealthy"]:
        return never_terminated
    return functools.partial(_unhealthy, is_healthy=_healthy_fn(env_id, kwargs))


def _healthy_fn(env_id: str, kwargs: dict[str, Any]) -> Callable[[Tensor], Tensor]:
    """``is_healthy(obs) -> bool [*B]`` of a locomotion env, bound to its kwargs and layout."""
    offset = _position_offset(env_id, kwargs)
    z_range = tuple(kwargs["healthy_z_range"])
    if env_id == "Hopper-v5":
        return functools.partial(hopper_is_healthy, offset=offset, z_range=z_range,
                                 angle_range=tuple(kwargs["healthy_angle_range"]),
                                 state_range=tuple(kwargs["healthy_state_range"]))
    if env_id == "Walker2d-v5":
        return functools.partial(walker2d_is_healthy, offset=offset, z_range=z_range,
                                 angle_range=tuple(kwargs["healthy_angle_range"]))
    if env_id == "Ant-v5":
        return functools.partial(ant_is_healthy, offset=offset, z_range=z_range)
    return functools.partial(humanoid_is_healthy, offset=offset, z_range=z_range)


# ============================================================================ rewards
def _forward_velocity_from_x(obs: Tensor, next_obs: Tensor, *, dt: float) -> Tensor:
    """``(x' - x) / dt`` with x the first observation entry (x included in the observation)."""
    return (next_obs[..., 0] - obs[..., 0]) / dt


def _forward_velocity_of_com(obs: Tensor, next_obs: Tensor, *, dt: float, com: CenterOfMass, nq: int) -> Tensor:
    """Centre-of-mass x velocity ``(c_x(q') - c_x(q)) / dt``; q = ``obs[:nq]`` (full qpos). Both
    states go through one ``com`` call (its cost is per call, not per row)."""
    qpos, next_qpos = torch.broadcast_tensors(obs[..., :nq], next_obs[..., :nq])
    x, next_x = com(torch.stack((qpos, next_qpos)))[..., 0]
    return (next_x - x) / dt


def _ctrl_cost(action: Tensor, *, weight: float, low: Tensor, high: Tensor) -> Tensor:
    """``weight * |a_env|^2`` with ``a_env = low + (a + 1) (high - low) / 2`` (undoing RescaleAction)."""
    low, high = low.to(action), high.to(action)
    env_action = low + (action + 1.0) * (high - low) / 2.0
    return weight * env_action.square().sum(dim=-1)


def _ant_contact_cost(next_obs: Tensor, *, weight: float, start: int, size: int,
                      force_range: tuple[float, float]) -> Tensor:
    """``weight * |clip(cfrc_ext)|^2``; the observation holds the clipped forces of bodies 1.. (body 0,
    the world, has none). Clipping again is a no-op on real data and keeps model predictions honest."""
    forces = next_obs[..., start:start + size].clamp(*force_range)
    return weight * forces.square().sum(dim=-1)


def _humanoid_contact_cost(next_obs: Tensor, *, weight: float, start: int, size: int,
                           cost_range: tuple[float, float]) -> Tensor:
    """``clip(weight * |cfrc_ext|^2, *cost_range)`` over the observed bodies 1.. (the world's is 0)."""
    cost = weight * next_obs[..., start:start + size].square().sum(dim=-1)
    return cost.clamp(*cost_range)


def _no_cost(next_obs: Tensor) -> Tensor:
    return next_obs.new_zeros(next_obs.shape[:-1])


def _locomotion_reward(
    obs: Tensor,
    action: Tensor,
    next_obs: Tensor,
    *,
    forward_velocity: Callable[[Tensor, Tensor], Tensor],
    forward_weight: float,
    ctrl_cost: Callable[[Tensor], Tensor],
    healthy_reward: float = 0.0,
    is_healthy: Callable[[Tensor], Tensor] | None = None,
    contact_cost: Callable[[Tensor], Tensor] = _no_cost,
) -> Tensor:
    """v5 locomotion reward: ``w_f v_x + r_h 1[healthy(s')] - c_ctrl(a) - c_contact(s')``.

    v5 pays the healthy reward only when the next state is healthy, whether or not the env then
    terminates (``terminate_when_unhealthy``); v2 (MBPO's era) paid it on the terminal step too.
    """
    reward = forward_weight * forward_velocity(obs, next_obs) - ctrl_cost(action) - contact_cost(next_obs)
    if is_healthy is not None:
        reward = reward + healthy_reward * is_healthy(next_obs).to(reward.dtype)
    return reward


def _inverted_pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5: 1 while not terminated, 0 on the terminal step."""
    return (~inverted_pendulum_terminated(obs, action, next_obs)).to(next_obs.dtype)


def _reacher_reward(obs: Tensor, action: Tensor, next_obs: Tensor, *, dist_weight: float, ctrl_weight: float) -> Tensor:
    """Reacher-v5: ``-w_d |fingertip - target| - w_c |a|^2``. ``next_obs[8:10]`` is the xy part of
    fingertip - target; their z are both 0.01 in the stock model, so the norm is exact."""
    distance = next_obs[..., 8:10].square().sum(dim=-1).sqrt()
    return -dist_weight * distance - ctrl_weight * action.square().sum(dim=-1)


def reward_fn(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None, *, allow_missing_contact_cost: bool = False
) -> TransitionFn:
    """The v5 reward ``r(s, a, s')`` of ``make_env(env_id, **env_kwargs)`` (MBSAC's known reward).

    Supported: HalfCheetah, Hopper, Walker2d, Ant, Humanoid, Swimmer (all with
    ``exclude_current_positions_from_observation=False``: the forward term is a position difference),
    Reacher and InvertedPendulum (any layout). Reads dt, the action bounds and (Humanoid) the body
    tree from one env instance built here. Ant and Humanoid need their contact forces in the
    observation (``include_cfrc_ext_in_observation=True``, the default) unless
    ``contact_cost_weight=0`` (then the reward is exact without them); with
    ``allow_missing_contact_cost=True`` they accept observations without them and leave the contact
    cost out (error in ``docs/mujoco_fns.md``). Raises ``ConfigError`` (a ``ValueError``) otherwise.
    """
    kwargs = _check_kwargs(env_id, env_kwargs)
    if env_id == "InvertedPendulum-v5":
        return _inverted_pendulum_reward
    if env_id == "Reacher-v5":
        return functools.partial(_reacher_reward, dist_weight=float(kwargs["reward_dist_weight"]),
                                 ctrl_weight=float(kwargs["reward_control_weight"]))
    if env_id not in _SKIPPED_POSITIONS:
        raise ConfigError(
            f"reward_fn: no known reward for {env_id!r}: its v5 reward reads the unclipped joint velocities and "
            f"the tip site position, which the observation does not carry exactly; supported: "
            f"{', '.join(sorted([*_SKIPPED_POSITIONS, 'InvertedPendulum-v5', 'Reacher-v5']))}"
        )
    if _position_offset(env_id, kwargs) == 0:
        raise ConfigError(
            f"reward_fn({env_id!r}) needs exclude_current_positions_from_observation=False: the v5 reward is a "
            f"forward velocity, (x' - x) / dt, and x is only in the observation with that option"
        )
    if env_id == "Ant-v5" and kwargs["main_body"] not in (1, "torso"):
        raise ConfigError(f"reward_fn('Ant-v5') supports main_body=1 ('torso') only, got {kwargs['main_body']!r}")
    facts = _model_facts(env_id, json.dumps(dict(env_kwargs or {}), sort_keys=True))

    if env_id == "Humanoid-v5":  # v5 rewards the centre of mass, a function of the whole qpos
        forward_velocity = functools.partial(_forward_velocity_of_com, dt=facts["dt"], com=facts["com"],
                                             nq=facts["nq"])
    else:
        forward_velocity = functools.partial(_forward_velocity_from_x, dt=facts["dt"])
    ctrl_cost = functools.partial(_ctrl_cost, weight=float(kwargs["ctrl_cost_weight"]),
                                  low=facts["action_low"], high=facts["action_high"])
    terms: dict[str, Any] = {}
    if env_id in ("Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"):
        terms["healthy_reward"] = float(kwargs["healthy_reward"])
        terms["is_healthy"] = _healthy_fn(env_id, kwargs)
    if env_id in ("Ant-v5", "Humanoid-v5"):
        start, size = facts["cfrc_ext"]  # where the contact forces sit in the observation; size 0: absent
        weight = float(kwargs["contact_cost_weight"])
        if size == 0 and weight != 0 and not allow_missing_contact_cost:
            raise ConfigError(
                f"reward_fn({env_id!r}): the contact cost needs include_cfrc_ext_in_observation=True "
                f"(or contact_cost_weight=0, or allow_missing_contact_cost=True to leave that term out)"
            )
        if size > 0 and weight != 0:
            if env_id == "Ant-v5":
                terms["contact_cost"] = functools.partial(
                    _ant_contact_cost, weight=weight, start=start, size=size,
                    force_range=tuple(kwargs["contact_force_range"]))
            else:
                terms["contact_cost"] = functools.partial(
                    _humanoid_contact_cost, weight=weight, start=start, size=size,
                    cost_range=tuple(kwargs["contact_cost_range"]))
    return functools.partial(_locomotion_reward, forward_velocity=forward_velocity,
                             forward_weight=float(kwargs["forward_reward_weight"]), ctrl_cost=ctrl_cost, **terms)


def contact_force_slice(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> slice:
    """Where ``cfrc_ext`` sits in the observation of ``make_env(env_id, **env_kwargs)`` (Ant, Humanoid);
    an empty slice when the observation has none."""
    start, size = _model_facts(env_id, json.dumps(dict(env_kwargs or {}), sort_keys=True))["cfrc_ext"]
    return slice(start, start + size)


# ============================================================================ plumbing
def _check_kwargs(env_id: str, env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """v5 defaults overlaid with ``env_kwargs``; unsupported ids and ``xml_file`` raise."""
    if env_id not in V5_DEFAULTS:
        raise ConfigError(
            f"no known termination/reward functions for env id {env_id!r}; supported: {', '.join(sorted(V5_DEFAULTS))}"
        )
    kwargs = dict(env_kwargs or {})
    if "xml_file" in kwargs:
        raise ConfigError(
            f"{env_id!r}: the known functions assume the stock model, not xml_file={kwargs['xml_file']!r}"
        )
    return {**V5_DEFAULTS[env_id], **kwargs}


def _position_offset(env_id: str, kwargs: Mapping[str, Any]) -> int:
    """How many position coordinates (x, or x and y) lead the observation: 0 by default."""
    if kwargs.get("exclude_current_positions_from_observation", True):
        return 0
    return _SKIPPED_POSITIONS[env_id]


@functools.lru_cache(maxsize=None)
def _model_facts(env_id: str, kwargs_json: str) -> dict[str, Any]:
    """dt, action bounds, nq, the observation slice of ``cfrc_ext`` and (Humanoid) a
    :class:`CenterOfMass`, read from one instance of the gymnasium env."""
    import gymnasium as gym  # factory time only: the functions themselves are pure torch

    env = gym.make(env_id, **json.loads(kwargs_json))
    try:
        inner = env.unwrapped
        structure = getattr(inner, "observation_structure", {})
        cfrc_size = int(structure.get("cfrc_ext", 0))
        cfrc_start = sum(int(size) for name, size in structure.items()
                         if name in ("qpos", "qvel", "cinert", "cvel", "qfrc_actuator"))
        return {
            "dt": float(inner.dt),
            "action_low": torch.tensor(inner.action_space.low.tolist(), dtype=torch.float64),
            "action_high": torch.tensor(inner.action_space.high.tolist(), dtype=torch.float64),
            "nq": int(inner.model.nq),
            "cfrc_ext": (cfrc_start, cfrc_size),
            "com": CenterOfMass(inner.model) if env_id == "Humanoid-v5" else None,
        }
    finally:
        env.close()
