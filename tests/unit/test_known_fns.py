"""The known-function registry: Pendulum-v1's reward against the real env, and dispatch by id."""

import inspect

import pytest
import torch
from tensordict import TensorDictBase

from lightning_mbrl import keys
from lightning_mbrl.envs import make_env
from lightning_mbrl.envs.known_fns import reward_fn, termination_fn
from lightning_mbrl.envs.mujoco_fns import never_terminated
from lightning_mbrl.errors import ConfigError


def test_pendulum_reward_matches_the_env_on_random_transitions():
    env = make_env("Pendulum-v1", seed=0)
    torch.manual_seed(0)
    td = env.rollout(300)  # random actions in [-1, 1], one and a half episodes of 200 steps
    reward = reward_fn("Pendulum-v1")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION])
    torch.testing.assert_close(reward, td[keys.REWARD].squeeze(-1), atol=1e-5, rtol=1e-5)
    assert not termination_fn("Pendulum-v1")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]).any()


def seeded_rollout(env_id: str, steps: int, **env_kwargs) -> TensorDictBase:
    """``steps`` transitions of ``env_id`` (seed 0) under uniform random actions drawn after
    ``torch.manual_seed(0)``, resets included (the done step keeps its terminal observation)."""
    torch.manual_seed(0)
    env = make_env(env_id, seed=0, **env_kwargs)
    try:
        return env.rollout(steps, break_when_any_done=False)
    finally:
        env.close()


def transition(td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]


def test_mujoco_ids_dispatch_and_unknown_ids_raise():
    # Hopper falls under random actions: the dispatched rule agrees with the simulator on every
    # transition, terminal ones included (so it is the Hopper rule, not "never")
    hopper = seeded_rollout("Hopper-v5", 200)
    terminated = hopper[keys.TERMINATED].squeeze(-1)
    assert terminated.any() and not terminated.all()
    assert torch.equal(termination_fn("Hopper-v5")(*transition(hopper)), terminated)
    # HalfCheetah never terminates, and its dispatched reward is the env's on every transition
    kwargs = {"exclude_current_positions_from_observation": False}
    cheetah = seeded_rollout("HalfCheetah-v5", 50, **kwargs)
    assert inspect.unwrap(termination_fn("HalfCheetah-v5", kwargs)) is never_terminated  # (under precision.full_precision)
    assert not termination_fn("HalfCheetah-v5", kwargs)(*transition(cheetah)).any()
    reward = cheetah[keys.REWARD].squeeze(-1)
    torch.testing.assert_close(reward_fn("HalfCheetah-v5", kwargs)(*transition(cheetah)), reward,
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="CartPole-v1"):
        reward_fn("CartPole-v1")


def test_pwl_reward_matches_the_env_and_never_terminates():
    env = make_env("pwl/semi-rand-3", seed=1)
    torch.manual_seed(0)  # the random actions
    td = env.rollout(10)
    fn = reward_fn("pwl/semi-rand-3")
    torch.testing.assert_close(fn(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]),
                               td[keys.REWARD].squeeze(-1), atol=1e-6, rtol=1e-6)
    assert not termination_fn("pwl/def41-H4")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]).any()


def test_custom_env_time_limit_reaches_the_spec():
    from lightning_mbrl.envs import env_spec

    assert env_spec("pwl/rand-0").max_episode_steps == 10
    assert env_spec("pwl/def41-H4").max_episode_steps == 8
