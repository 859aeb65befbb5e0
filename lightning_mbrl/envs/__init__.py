"""Environments: the ``make_env`` factory, torch-native custom MDPs and the tasks' known functions."""

from lightning_mbrl.envs import pwl_env  # noqa: F401  registers the "pwl/" ids (paper 000's 1-D MDPs)
from lightning_mbrl.envs import mbbl  # noqa: F401  registers the "mbbl/" ids (paper 004's MuJoCo variants)
from lightning_mbrl.envs import gridworlds  # noqa: F401  registers the "gridworld/" ids (paper 001's envs)
from lightning_mbrl.envs.factory import (
    GYM_IDS,
    EnvSpec,
    check_env_id,
    env_spec,
    known_env_ids,
    make_env,
    register_env,
    register_known_fns,
)
from lightning_mbrl.envs.known_fns import reward_fn, termination_fn  # registers the gymnasium tasks' functions

__all__ = ["GYM_IDS", "EnvSpec", "check_env_id", "env_spec", "known_env_ids", "make_env", "register_env",
           "register_known_fns", "reward_fn", "termination_fn"]
