"""T0: the MBBL task variants of MAAC (paper 004, REFERENCE.md 5.4): observation layout, no termination,
the 1000-step limit, and the simulator's reward equal to the registered known reward on the same
transition (the function models are scored with)."""

import pytest
import torch

from lightning_mbrl import keys
from lightning_mbrl.envs import env_spec, make_env, reward_fn, termination_fn
from lightning_mbrl.envs.mbbl import VARIANTS
from lightning_mbrl.errors import ConfigError

DIMS = {"HalfCheetah": (17, 6), "Hopper": (11, 3), "Walker2d": (17, 6), "Ant": (27, 8)}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_observation_reward_and_termination(name):
    env_id = f"mbbl/{name}"
    spec = env_spec(env_id)
    assert (spec.observation_dim, spec.action_dim) == DIMS[name] and spec.max_episode_steps == 1000
    env = make_env(env_id, seed=0)
    td = env.rollout(60, break_when_any_done=False)  # uniform random actions in [-1, 1]
    data = env.base_env._env.unwrapped.data
    variant = VARIANTS[name]
    last = torch.tensor([*data.qpos.flat[variant.skip_qpos :], *data.qvel.flat], dtype=torch.float32)
    torch.testing.assert_close(td[keys.NEXT_OBSERVATION][-1], last)  # qpos without x (Ant: x, y), then qvel
    assert not td[keys.TERMINATED].any()  # no termination, even after falling
    known = reward_fn(env_id)(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION])
    torch.testing.assert_close(known, td[keys.REWARD].squeeze(-1), rtol=1e-5, atol=1e-5)
    assert td[keys.REWARD].std() > 0.01
    assert not termination_fn(env_id)(td[keys.OBSERVATION], td[keys.ACTION], td[keys.NEXT_OBSERVATION]).any()


def test_bad_variant_and_kwargs_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown env id 'mbbl/Humanoid'"):
        make_env("mbbl/Humanoid")
    with pytest.raises(ConfigError, match="takes no env_kwargs"):
        make_env("mbbl/Hopper", exclude_current_positions_from_observation=False)
