"""Environments: the ``make_env`` factory and (later) torch-native custom MDPs."""

from lightning_mbrl.envs import pwl_env  # noqa: F401  registers the "pwl/" ids (paper 000's 1-D MDPs)
from lightning_mbrl.envs.factory import (
    GYM_IDS,
    EnvSpec,
    check_env_id,
    env_spec,
    known_env_ids,
    make_env,
    register_env,
)
from lightning_mbrl.envs.mujoco_fns import reward_fn, termination_fn

__all__ = ["GYM_IDS", "EnvSpec", "check_env_id", "env_spec", "known_env_ids", "make_env", "register_env",
           "reward_fn", "termination_fn"]
