"""Snapshot and restore the mid-episode state of a training env, so a resumed run continues the
episode it was in (DESIGN.md section 5). No Lightning.

``env_state(env)`` returns plain tensors, numbers and strings (what a ``weights_only`` checkpoint
load accepts) or ``None`` when the env does not support it; ``load_env_state(env, state)`` puts
it back into an env built the same way (same id and options). What is saved:

- gymnasium envs: the time-limit wrapper's step count and order-enforcing flag; the env's numpy
  generator (resets draw from it); for MuJoCo envs every fixed-size array of ``MjData`` plus its
  time (the integration state with the solver warm start, and the derived quantities such as
  body positions that some rewards read *before* stepping, so the next step is bit-identical);
  for other gymnasium envs (classic control) their public array and number attributes;
- a custom TorchRL env: whatever its ``get_env_state()`` / ``set_env_state(state)`` methods
  return and take (``PiecewiseLinearEnv`` has them);
- batched envs (``SerialEnv``): each member's state.

The TorchRL side of an episode (observation, step count, episode return in the collector's
carrier) is saved by the collector's snapshot, not here.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torchrl.envs import EnvBase, SerialEnv, TransformedEnv

_WRAPPER_FIELDS = ("_elapsed_steps", "_has_reset")
_PLAIN = (bool, int, float, str, type(None))


def env_state(env: EnvBase) -> dict[str, Any] | None:
    """The env's mid-episode state, or ``None`` if it cannot be captured."""
    if isinstance(env, TransformedEnv):
        return env_state(env.base_env)
    if isinstance(env, SerialEnv):
        members = [env_state(e) for e in env._envs]
        return None if any(m is None for m in members) else {"members": members}
    if hasattr(env, "get_env_state"):
        return {"custom": env.get_env_state()}
    gym_env = getattr(env, "_env", None)
    if isinstance(gym_env, gym.Env):
        return _gym_state(gym_env)
    return None


def load_env_state(env: EnvBase, state: dict[str, Any]) -> None:
    """Restore a state from :func:`env_state` into an env built the same way."""
    if isinstance(env, TransformedEnv):
        return load_env_state(env.base_env, state)
    if isinstance(env, SerialEnv):
        if len(state["members"]) != len(env._envs):
            raise ValueError(f"state has {len(state['members'])} envs, the env has {len(env._envs)}")
        for member, member_state in zip(env._envs, state["members"]):
            load_env_state(member, member_state)
        return
    if "custom" in state:
        env.set_env_state(state["custom"])
        return
    _load_gym_state(env._env, state)


# --------------------------------------------------------------------------------------- gymnasium
def _wrappers(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _gym_state(env: gym.Env) -> dict[str, Any]:
    wrappers = [{k: getattr(w, k) for k in _WRAPPER_FIELDS if hasattr(w, k)} for w in _wrappers(env)]
    inner = env.unwrapped
    state: dict[str, Any] = {
        "wrappers": json.dumps(wrappers),
        "np_random": json.dumps(inner.np_random.bit_generator.state),
    }
    data = getattr(inner, "data", None)
    if data is not None and type(data).__name__ == "MjData":
        state["mujoco_time"] = float(data.time)
        state["mujoco"] = {name: torch.from_numpy(_torch_friendly(value)) for name, value in _mj_arrays(data).items()}
    else:
        attrs = {}
        for name, value in vars(inner).items():
            if name.startswith("_"):
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                attrs[name] = {"array": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
            elif isinstance(value, _PLAIN):
                attrs[name] = {"value": value}
        state["attrs"] = json.dumps(attrs)
    return state


def _load_gym_state(env: gym.Env, state: dict[str, Any]) -> None:
    chain = _wrappers(env)
    saved_wrappers = json.loads(state["wrappers"])
    if len(saved_wrappers) != len(chain):
        raise ValueError(f"env state has {len(saved_wrappers)} wrappers, the env has {len(chain)}")
    for wrapper, fields in zip(chain, saved_wrappers):
        for name, value in fields.items():
            setattr(wrapper, name, value)
    inner = env.unwrapped
    inner.np_random.bit_generator.state = json.loads(state["np_random"])
    if "mujoco" in state:
        arrays = _mj_arrays(inner.data)
        for name, value in state["mujoco"].items():
            target = arrays.get(name)
            if target is not None and tuple(target.shape) == tuple(value.shape):
                target[...] = value.numpy().view(target.dtype)
        inner.data.time = state["mujoco_time"]
        return
    for name, item in json.loads(state["attrs"]).items():
        if "array" in item:
            value = np.array(item["array"], dtype=item["dtype"]).reshape(item["shape"])
        else:
            value = item["value"]
        setattr(inner, name, value)


def _torch_friendly(array: np.ndarray) -> np.ndarray:
    """A copy; unsigned 64-bit integers reinterpreted as signed (torch cannot pickle uint64 tensors)."""
    array = np.array(array)
    return array.view(np.int64) if array.dtype == np.uint64 else array


def _mj_arrays(data: Any) -> dict[str, np.ndarray]:
    """Every numeric array field of an ``MjData`` (views: writing them writes the simulation)."""
    out = {}
    for name in dir(data):
        if name.startswith("_"):
            continue
        try:
            value = getattr(data, name)
        except Exception:  # noqa: BLE001 -- some accessors need arguments or a plugin
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.flags.writeable:
            out[name] = value
    return out
