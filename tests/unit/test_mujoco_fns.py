"""Unit tests (T0) for lightning_mbrl.envs.mujoco_fns: the known termination and reward functions
agree with the real gymnasium v5 envs on every transition of short random-action rollouts through
``make_env`` (so the action scaling is the library's), for the default, MBPO-truncated and
position-including observation layouts; plus errors, the kinematics behind Humanoid's centre of
mass, and gradients.

The harness (``rollout``) keeps every transition, including the terminal ones: after a done, TorchRL
resets, and ``("next", "observation")`` of the done step is the pre-reset terminal observation
(``test_done_step_keeps_the_terminal_observation``)."""

from __future__ import annotations

import functools
import json
import math
from typing import Any, NamedTuple

import gymnasium as gym
import mujoco
import pytest
import torch
from torch import Tensor

from lightning_mbrl import keys
from lightning_mbrl.envs import make_env
from lightning_mbrl.envs.kinematics import CenterOfMass
from lightning_mbrl.envs.mujoco_fns import (
    V5_DEFAULTS,
    contact_force_slice,
    hopper_is_healthy,
    never_terminated,
    reward_fn,
    termination_fn,
)

STEPS = 300
WITH_X = {"exclude_current_positions_from_observation": False}
#: MBPO's truncated observations (DESIGN.md section 7): qpos[2:] + qvel.
ANT_MBPO = {"include_cfrc_ext_in_observation": False}
HUMANOID_MBPO = {f"include_{part}_in_observation": False for part in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")}
TERMINATING = ("Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "InvertedPendulum-v5", "InvertedDoublePendulum-v5")


# ----------------------------------------------------------------------------- harness
class Transitions(NamedTuple):
    obs: Tensor  # [T, d] float32, as the library stores them
    action: Tensor  # [T, A] in [-1, 1]
    next_obs: Tensor  # [T, d]; the terminal observation on done steps
    reward: Tensor  # [T]
    terminated: Tensor  # [T] bool


@functools.lru_cache(maxsize=None)
def _rollout(env_id: str, kwargs_json: str, steps: int, seed: int) -> Transitions:
    torch.manual_seed(seed)
    env = make_env(env_id, seed=seed, **json.loads(kwargs_json))
    try:
        td = env.rollout(steps, break_when_any_done=False)  # uniform random actions
    finally:
        env.close()
    return Transitions(
        td.get(keys.OBSERVATION), td.get(keys.ACTION), td.get(keys.NEXT_OBSERVATION),
        td.get(keys.REWARD).squeeze(-1), td.get(keys.TERMINATED).squeeze(-1),
    )


def rollout(env_id: str, env_kwargs: dict[str, Any] | None = None, steps: int = STEPS, seed: int = 0) -> Transitions:
    """Every real transition of a random-action rollout of ``make_env(env_id, **env_kwargs)`` (cached)."""
    return _rollout(env_id, json.dumps(env_kwargs or {}, sort_keys=True), steps, seed)


def reward_error(env_id: str, env_kwargs: dict[str, Any], **options: Any) -> Tensor:
    """``|reward_fn(s, a, s') - env reward|`` on every transition of :func:`rollout`."""
    t = rollout(env_id, env_kwargs)
    predicted = reward_fn(env_id, env_kwargs, **options)(t.obs, t.action, t.next_obs)
    assert predicted.shape == t.reward.shape and predicted.dtype == t.obs.dtype
    return (predicted - t.reward).abs()


# ----------------------------------------------------------------------------- the harness's premise
def test_done_step_keeps_the_terminal_observation() -> None:
    t = rollout("Hopper-v5")
    continues = (t.obs[1:] == t.next_obs[:-1]).all(dim=-1)
    assert t.terminated.any()
    # The next step starts from the next observation unless the env was reset in between ...
    assert torch.equal(~continues, t.terminated[:-1])
    # ... and the done step's next observation is the fallen state, not the reset one.
    assert not hopper_is_healthy(t.next_obs[t.terminated]).any()
    assert hopper_is_healthy(t.obs[1:][t.terminated[:-1]]).all()


# ----------------------------------------------------------------------------- terminations
TERMINATION_CASES = [
    ("Hopper-v5", {}),
    ("Hopper-v5", WITH_X),
    ("Walker2d-v5", {}),
    ("Walker2d-v5", {**WITH_X, "healthy_angle_range": [-0.5, 0.5]}),  # kwargs reach the rule
    ("Ant-v5", {}),
    ("Ant-v5", ANT_MBPO),
    ("Ant-v5", WITH_X),
    ("Humanoid-v5", {}),
    ("Humanoid-v5", HUMANOID_MBPO),
    ("Humanoid-v5", WITH_X),
    ("InvertedPendulum-v5", {}),
    ("InvertedDoublePendulum-v5", {}),
    ("HalfCheetah-v5", {}),
    ("Swimmer-v5", WITH_X),
    ("Reacher-v5", {}),
    ("Hopper-v5", {**WITH_X, "terminate_when_unhealthy": False}),
]


@pytest.mark.parametrize("env_id, env_kwargs", TERMINATION_CASES)
def test_termination_matches_env_on_every_transition(env_id: str, env_kwargs: dict) -> None:
    t = rollout(env_id, env_kwargs)
    predicted = termination_fn(env_id, env_kwargs)(t.obs, t.action, t.next_obs)
    assert predicted.dtype == torch.bool and predicted.shape == t.terminated.shape
    assert torch.equal(predicted, t.terminated)
    if env_id in TERMINATING and env_kwargs.get("terminate_when_unhealthy", True):
        assert t.terminated.any(), "no terminal transition: the test would not test the rule"
    else:
        assert termination_fn(env_id, env_kwargs) is never_terminated


def test_mbpo_truncated_layouts_have_mbpo_sizes() -> None:
    assert rollout("Ant-v5", ANT_MBPO).obs.shape[-1] == 27
    assert rollout("Humanoid-v5", HUMANOID_MBPO).obs.shape[-1] == 45


@pytest.mark.parametrize(
    "env_id, index",
    [("Hopper-v5", -1), ("Walker2d-v5", 0), ("Ant-v5", 26), ("Humanoid-v5", 0), ("InvertedPendulum-v5", 3)],
)
def test_nan_in_a_checked_entry_terminates(env_id: str, index: int) -> None:
    """v5 checks finiteness explicitly only in Ant and InvertedPendulum, but a NaN fails every range
    comparison: a NaN in an entry the rule reads terminates (Walker2d and Humanoid read z only)."""
    t = rollout(env_id)
    state = t.next_obs[~t.terminated][:1].clone()
    fn = termination_fn(env_id)
    assert not fn(state, t.action[:1], state).item()
    state[0, index] = math.nan
    assert fn(state, t.action[:1], state).item()


def test_termination_keeps_leading_batch_dims() -> None:
    t = rollout("Humanoid-v5")
    next_obs = t.next_obs[:240].reshape(4, 60, -1)
    out = termination_fn("Humanoid-v5")(next_obs, None, next_obs)
    assert out.shape == (4, 60) and torch.equal(out.reshape(-1), t.terminated[:240])


# ----------------------------------------------------------------------------- rewards
EXACT_REWARD_CASES = [
    ("HalfCheetah-v5", WITH_X),
    ("Hopper-v5", WITH_X),
    ("Hopper-v5", {**WITH_X, "terminate_when_unhealthy": False}),  # unhealthy steps pay no healthy reward
    ("Walker2d-v5", {**WITH_X, "healthy_angle_range": [-0.5, 0.5]}),
    ("Swimmer-v5", WITH_X),
    ("Reacher-v5", {}),
    ("InvertedPendulum-v5", {}),
    # Ant and Humanoid: every term but the forward one is exact (healthy, env-unit control, contact).
    ("Ant-v5", {**WITH_X, "forward_reward_weight": 0.0}),
    ("Humanoid-v5", {**WITH_X, "forward_reward_weight": 0.0}),
    # Without the contact forces in the observation, contact_cost_weight=0 keeps the reward exact.
    ("Ant-v5", {**WITH_X, **ANT_MBPO, "forward_reward_weight": 0.0, "contact_cost_weight": 0.0}),
    ("Humanoid-v5", {**WITH_X, "include_cfrc_ext_in_observation": False, "forward_reward_weight": 0.0,
                     "contact_cost_weight": 0.0}),
]


@pytest.mark.parametrize("env_id, env_kwargs", EXACT_REWARD_CASES)
def test_exact_reward_matches_env_on_every_transition(env_id: str, env_kwargs: dict) -> None:
    # float32 observations round x to ~1e-7 relative; (x' - x) / dt turns that into ~1e-6 absolute.
    error = reward_error(env_id, env_kwargs)
    reward = rollout(env_id, env_kwargs).reward
    assert (error <= 1e-5 + 1e-5 * reward.abs()).all(), error.max()


@pytest.mark.parametrize("env_id, max_error, mean_error", [("Ant-v5", 0.1, 0.01), ("Humanoid-v5", 5e-3, 5e-4)])
def test_forward_reward_is_close_where_not_exact(env_id: str, max_error: float, mean_error: float) -> None:
    """The env's forward term reads body positions MuJoCo last computed at the final RK4 stage of the
    step, which the observation cannot reproduce; measured bounds are in docs/mujoco_fns.md."""
    error = reward_error(env_id, WITH_X)
    assert error.max() < max_error and error.mean() < mean_error, (error.max(), error.mean())


def test_humanoid_forward_reward_needs_the_centre_of_mass() -> None:
    """Rewarding the root's x velocity instead of the centre of mass's is far worse: the kinematics matter."""
    t = rollout("Humanoid-v5", WITH_X)
    with_com = reward_fn("Humanoid-v5", WITH_X)(t.obs, t.action, t.next_obs)
    without_forward = reward_fn("Humanoid-v5", {**WITH_X, "forward_reward_weight": 0.0})(t.obs, t.action, t.next_obs)
    with_root = without_forward + 1.25 * (t.next_obs[:, 0] - t.obs[:, 0]) / 0.015
    assert (with_root - t.reward).abs().mean() > 20 * (with_com - t.reward).abs().mean()


def test_missing_contact_forces_raise_unless_allowed() -> None:
    for env_id, truncation in (("Ant-v5", ANT_MBPO), ("Humanoid-v5", HUMANOID_MBPO)):
        with pytest.raises(ValueError, match="include_cfrc_ext_in_observation"):
            reward_fn(env_id, {**WITH_X, **truncation})
    # Ant's clipped contact cost is at most 5e-4 * 78: leaving it out stays within the forward-term error.
    error = reward_error("Ant-v5", {**WITH_X, **ANT_MBPO}, allow_missing_contact_cost=True)
    assert error.max() < 0.1


def test_contact_force_slice_is_where_the_env_puts_cfrc_ext() -> None:
    env = gym.make("Humanoid-v5", **WITH_X).unwrapped
    data = env.data
    env.reset(seed=0)
    env.action_space.seed(0)  # the space's own generator: unseeded, nothing touched the floor in 1 run of 5
    for step in range(200):  # at least 40 steps, then until two bodies bear contact forces (step 40 with seed 0)
        obs, *_ = env.step(env.action_space.sample())
        in_contact = int(data.cfrc_ext[1:].any(axis=-1).sum())
        if step >= 39 and in_contact >= 2:
            break
    assert in_contact >= 2, "no contact: the comparison below would compare zeros"
    forces = contact_force_slice("Humanoid-v5", WITH_X)
    expected = data.cfrc_ext[1:].flatten()
    assert forces == slice(272, 350)
    assert (obs[forces] == expected).all()
    # the comparison can tell a wrong slice: one body (6 entries) earlier or later does not match
    assert not (obs[forces.start - 6 : forces.stop - 6] == expected).all()
    assert not (obs[forces.start + 6 : forces.stop] == expected[:-6]).all()
    empty = contact_force_slice("Humanoid-v5", {**WITH_X, "include_cfrc_ext_in_observation": False})
    assert empty.stop == empty.start
    env.close()


def test_reward_keeps_leading_batch_dims() -> None:
    t = rollout("Hopper-v5", WITH_X)
    fn = reward_fn("Hopper-v5", WITH_X)
    flat = fn(t.obs, t.action, t.next_obs)
    batched = fn(t.obs.reshape(3, 100, -1), t.action.reshape(3, 100, -1), t.next_obs.reshape(3, 100, -1))
    assert batched.shape == (3, 100) and torch.allclose(batched.reshape(-1), flat)


# ----------------------------------------------------------------------------- gradients
def test_humanoid_reward_gradient_matches_finite_differences() -> None:
    """float64 gradcheck of the Humanoid reward (centre-of-mass kinematics, rescaled control cost,
    clipped contact cost) w.r.t. next_obs and action, on healthy transitions away from any kink."""
    t = rollout("Humanoid-v5", WITH_X)
    fn = reward_fn("Humanoid-v5", WITH_X)
    rows = (~t.terminated).nonzero().squeeze(-1)[:3]
    obs = t.obs[rows].double()
    action = t.action[rows].double().requires_grad_()
    next_obs = t.next_obs[rows].double().requires_grad_()
    assert torch.autograd.gradcheck(lambda n, a: fn(obs, a, n), (next_obs, action), eps=1e-6, atol=1e-5,
                                    fast_mode=True)


@pytest.mark.parametrize(
    "env_id", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5", "Reacher-v5"]
)
def test_reward_gradients_reach_next_obs_and_action(env_id: str) -> None:
    env_kwargs = {} if env_id == "Reacher-v5" else WITH_X
    t = rollout(env_id, env_kwargs)
    action = t.action[:8].clone().requires_grad_()
    next_obs = t.next_obs[:8].clone().requires_grad_()
    reward_fn(env_id, env_kwargs)(t.obs[:8], action, next_obs).sum().backward()
    assert action.grad.abs().sum() > 0
    assert next_obs.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- pieces and errors
@pytest.mark.parametrize("env_id", ["Humanoid-v5", "Ant-v5", "Hopper-v5", "HalfCheetah-v5"])  # free, slide, hinge
def test_center_of_mass_matches_mujoco_kinematics(env_id: str) -> None:
    model = gym.make(env_id).unwrapped.model
    data = mujoco.MjData(model)
    com = CenterOfMass(model)
    generator = torch.Generator().manual_seed(0)
    qpos = torch.tensor(model.qpos0.tolist(), dtype=torch.float64) + 0.5 * torch.randn(
        16, model.nq, generator=generator, dtype=torch.float64)
    ours = com(qpos)
    for row in range(qpos.shape[0]):
        data.qpos[:] = qpos[row].tolist()
        mujoco.mj_kinematics(model, data)
        mass = torch.tensor(model.body_mass.tolist(), dtype=torch.float64)
        expected = (mass[:, None] * torch.tensor(data.xipos.tolist(), dtype=torch.float64)).sum(0) / mass.sum()
        torch.testing.assert_close(ours[row], expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("env_id", sorted(V5_DEFAULTS))
def test_v5_defaults_table_matches_gymnasium(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    for name, value in V5_DEFAULTS[env_id].items():
        actual = getattr(env, "_" + name)
        assert (tuple(actual) if isinstance(actual, (tuple, list)) else actual) == value, (env_id, name)
    env.close()


def test_unsupported_ids_and_options_raise() -> None:
    for make in (termination_fn, reward_fn):
        with pytest.raises(ValueError, match="Pendulum-v1"):
            make("Pendulum-v1")
        with pytest.raises(ValueError, match="Hopper-v4"):
            make("Hopper-v4")
        with pytest.raises(ValueError, match="xml_file"):
            make("Hopper-v5", {"xml_file": "my_hopper.xml"})
    with pytest.raises(ValueError, match="InvertedDoublePendulum-v5"):
        reward_fn("InvertedDoublePendulum-v5")
    with pytest.raises(ValueError, match="exclude_current_positions_from_observation=False"):
        reward_fn("Hopper-v5")
    with pytest.raises(ValueError, match="main_body"):
        reward_fn("Ant-v5", {**WITH_X, "main_body": "front_left_leg"})
