"""The known-function registry: Pendulum-v1's reward against the real env, and dispatch by id."""

import pytest
import torch

from lightning_mbrl import keys
from lightning_mbrl.envs import make_env
from lightning_mbrl.envs.known_fns import reward_fn, termination_fn
from lightning_mbrl.errors import ConfigError


def test_pendulum_reward_matches_the_env_on_random_transitions():
    env = make_env("Pendulum-v1", seed=0)
    torch.manual_seed(0)
    td = env.rollout(300)  # random actions in [-1, 1], one and a half episodes of 200 steps
    reward = reward_fn("Pendulum-v1")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION])
    torch.testing.assert_close(reward, td[keys.REWARD].squeeze(-1), atol=1e-5, rtol=1e-5)
    assert not termination_fn("Pendulum-v1")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]).any()


def test_mujoco_ids_dispatch_and_unknown_ids_raise():
    assert termination_fn("HalfCheetah-v5") is not None
    with pytest.raises(ConfigError, match="CartPole-v1"):
        reward_fn("CartPole-v1")


def test_pwl_reward_matches_the_env_and_never_terminates():
    env = make_env("pwl/semi-rand-3", seed=1)
    td = env.rollout(10)
    fn = reward_fn("pwl/semi-rand-3")
    torch.testing.assert_close(fn(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]),
                               td[keys.REWARD].squeeze(-1), atol=1e-6, rtol=1e-6)
    assert not termination_fn("pwl/def41-H4")(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]).any()


def test_custom_env_time_limit_reaches_the_spec():
    from lightning_mbrl.envs import env_spec

    assert env_spec("pwl/rand-0").max_episode_steps == 10
    assert env_spec("pwl/def41-H4").max_episode_steps == 8
