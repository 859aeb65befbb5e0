"""Unit tests (T0) for lightning_mbrl.envs: the make_env factory's contract (dtypes, shapes, action
rescaling, terminated vs truncated, step counting), its errors, and the custom-env registry."""

from __future__ import annotations

from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lightning_mbrl import keys
from lightning_mbrl.envs import factory
from lightning_mbrl.envs import check_env_id, env_spec, known_env_ids, make_env, register_env
from lightning_mbrl.envs.known_fns import reward_fn, termination_fn
from lightning_mbrl.errors import ConfigError


# ----------------------------------------------------------------------------- specs and shapes
def test_pendulum_observation_and_action_specs() -> None:
    torch.manual_seed(0)
    env = make_env("Pendulum-v1", seed=0)
    td = env.reset()
    obs = td.get(keys.OBSERVATION)
    assert obs.dtype == torch.float32 and obs.shape == (3,)
    assert env.observation_spec[keys.OBSERVATION].dtype == torch.float32
    action_spec = env.action_spec
    assert action_spec.shape == (1,) and action_spec.dtype == torch.float32
    assert torch.equal(action_spec.space.low, -torch.ones(1)) and torch.equal(action_spec.space.high, torch.ones(1))
    # The standard transforms are present after a step.
    out = env.rand_step(td)
    for key in (keys.REWARD, keys.TERMINATED, keys.TRUNCATED, keys.DONE, (keys.NEXT, keys.STEP_COUNT),
                keys.NEXT_EPISODE_RETURN, (keys.NEXT, "is_init")):
        assert key in out.keys(True), key
    env.close()


def test_hopper_batched_envs() -> None:
    torch.manual_seed(0)
    env = make_env("Hopper-v5", num_envs=3, seed=0)
    try:
        assert env.batch_size == torch.Size([3])
        td = env.reset()
        # MuJoCo observations are float64 natively: the factory casts them to float32.
        assert td.get(keys.OBSERVATION).shape == (3, 11) and td.get(keys.OBSERVATION).dtype == torch.float32
        assert env.action_spec.shape == (3, 3)
        rollout = env.rollout(2)
        assert rollout.batch_size == torch.Size([3, 2])
        assert rollout.get(keys.REWARD).dtype == torch.float32
    finally:
        env.close()


def test_env_spec_sizes() -> None:
    cartpole = env_spec("CartPole-v1")
    assert cartpole.discrete and cartpole.num_actions == 2 and cartpole.action_dim == 1
    assert cartpole.observation_dim == 4 and cartpole.max_episode_steps == 500
    pendulum = env_spec("Pendulum-v1")
    assert not pendulum.discrete and pendulum.num_actions is None
    assert (pendulum.observation_dim, pendulum.action_dim, pendulum.max_episode_steps) == (3, 1, 200)
    assert env_spec("Hopper-v5").action_dim == 3
    assert env_spec("Pendulum-v1", max_episode_steps=7).max_episode_steps == 7


def test_cartpole_actions_are_integer_categorical() -> None:
    torch.manual_seed(0)
    env = make_env("CartPole-v1", seed=0)
    rollout = env.rollout(3)
    action = rollout.get(keys.ACTION)
    assert not action.dtype.is_floating_point
    assert set(action.flatten().tolist()) <= {0, 1}
    env.close()


def test_same_seed_same_reset() -> None:
    obs = [make_env("Pendulum-v1", seed=s).reset().get(keys.OBSERVATION) for s in (3, 3, 4)]
    assert torch.equal(obs[0], obs[1])
    assert not torch.equal(obs[0], obs[2])


# ----------------------------------------------------------------------------- action rescaling
@pytest.mark.parametrize("action, torque", [(1.0, 2.0), (-0.5, -1.0), (0.25, 0.5)])
def test_pendulum_action_rescaled_to_native_torque(action: float, torque: float) -> None:
    """Ours with action a must equal raw gymnasium Pendulum with torque 2a from the same state."""
    torch.manual_seed(0)
    env = make_env("Pendulum-v1", seed=0)
    td = env.reset()
    ours_inner = env.base_env._env.unwrapped  # the gymnasium PendulumEnv under the wrappers
    state = np.array(ours_inner.state, copy=True)

    def raw_step(u: float) -> tuple[np.ndarray, float]:
        raw = gym.make("Pendulum-v1")
        raw.reset(seed=0)
        raw.unwrapped.state = state.copy()
        obs, reward, *_ = raw.step(np.array([u], dtype=np.float32))
        raw.close()
        return obs, float(reward)

    td.set(keys.ACTION, torch.tensor([action]))
    out = env.step(td)
    expected_obs, expected_reward = raw_step(torque)
    np.testing.assert_allclose(out.get(keys.NEXT_OBSERVATION).numpy(), expected_obs, rtol=1e-6, atol=1e-6)
    assert out.get(keys.REWARD).item() == pytest.approx(expected_reward, rel=1e-6, abs=1e-6)
    # Not rescaled would be a different step: the test can tell the two apart.
    unscaled_obs, _ = raw_step(action)
    assert not np.allclose(unscaled_obs, expected_obs, rtol=1e-6, atol=1e-6)
    env.close()


# ----------------------------------------------------------------------------- time limits and termination
def test_time_limit_truncates_and_step_count_restarts() -> None:
    torch.manual_seed(0)
    env = make_env("Pendulum-v1", seed=0, max_episode_steps=5)
    rollout = env.rollout(7, break_when_any_done=False)
    truncated = rollout.get(keys.TRUNCATED).squeeze(-1)
    terminated = rollout.get(keys.TERMINATED).squeeze(-1)
    done = rollout.get(keys.DONE).squeeze(-1)
    assert truncated.tolist() == [False, False, False, False, True, False, False]
    assert not terminated.any()
    assert torch.equal(done, truncated)
    assert rollout.get((keys.NEXT, keys.STEP_COUNT)).squeeze(-1).tolist() == [1, 2, 3, 4, 5, 1, 2]
    assert rollout.get(keys.STEP_COUNT).squeeze(-1).tolist() == [0, 1, 2, 3, 4, 0, 1]
    # The episode return accumulates within an episode and restarts after the reset.
    reward = rollout.get(keys.REWARD).squeeze(-1)
    ret = rollout.get(keys.NEXT_EPISODE_RETURN).squeeze(-1)
    torch.testing.assert_close(ret[4], reward[:5].sum())
    torch.testing.assert_close(ret[6], reward[5:].sum())
    env.close()


def test_hopper_falls_with_terminated_not_truncated() -> None:
    torch.manual_seed(0)
    env = make_env("Hopper-v5", seed=0)
    rollout = env.rollout(1000)  # random actions; stops at the first done
    n = rollout.shape[0]
    terminated = rollout.get(keys.TERMINATED).squeeze(-1)
    truncated = rollout.get(keys.TRUNCATED).squeeze(-1)
    assert n < 1000  # it fell well before the 1000-step time limit
    assert terminated[-1] and not truncated[-1]
    assert not terminated[:-1].any() and not truncated.any()
    assert rollout.get((keys.NEXT, keys.STEP_COUNT))[-1].item() == n
    env.close()


# ----------------------------------------------------------------------------- errors
def test_unknown_id_lists_known_ids() -> None:
    with pytest.raises(ConfigError) as err:
        make_env("NoSuchEnv-v0")
    message = str(err.value)
    assert "NoSuchEnv-v0" in message and "HalfCheetah-v5" in message and "Pendulum-v1" in message
    with pytest.raises(ConfigError, match="NoSuchEnv-v0"):
        env_spec("NoSuchEnv-v0")
    with pytest.raises(ConfigError):
        check_env_id(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_bad_env_kwarg_names_env(env_id: str) -> None:
    with pytest.raises(ConfigError, match=env_id) as err:
        make_env(env_id, no_such_option=1)
    assert "no_such_option" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"num_envs": 0}, "num_envs"), ({"num_envs": -2}, "num_envs"), ({"max_episode_steps": 0}, "max_episode_steps")],
)
def test_bad_sizes_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        make_env("Pendulum-v1", **kwargs)


def test_known_ids_include_gym_ids() -> None:
    ids = known_env_ids()
    assert "HalfCheetah-v5" in ids and "CartPole-v1" in ids and ids == sorted(factory.GYM_IDS) + ids[len(factory.GYM_IDS):]


# ----------------------------------------------------------------------------- custom registry
class LineEnv(EnvBase):
    """A 1-D walk: ``x <- x + a``, reward ``-|x|``, terminated when ``|x| >= 2.5``; float64 obs
    ``[x, 2x]`` (so the factory must cast it) and an optional time limit."""

    def __init__(self, device: str = "cpu", max_episode_steps: int | None = None) -> None:
        super().__init__(device=device, batch_size=torch.Size([]))
        self.max_episode_steps = max_episode_steps
        self.observation_spec = Composite(observation=Unbounded(shape=(2,), dtype=torch.float64))
        self.action_spec = Bounded(-1.0, 1.0, shape=(1,), dtype=torch.float32)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32)
        self.done_spec = Composite(
            done=Categorical(2, shape=(1,), dtype=torch.bool),
            terminated=Categorical(2, shape=(1,), dtype=torch.bool),
            truncated=Categorical(2, shape=(1,), dtype=torch.bool),
        )

    def _flags(self, terminated: bool, truncated: bool) -> dict:
        return {
            "terminated": torch.tensor([terminated]),
            "truncated": torch.tensor([truncated]),
            "done": torch.tensor([terminated or truncated]),
        }

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        self.x, self.t = torch.zeros((), dtype=torch.float64), 0
        return TensorDict({"observation": torch.zeros(2, dtype=torch.float64), **self._flags(False, False)}, [])

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.x = self.x + tensordict.get("action").double()[0]
        self.t += 1
        terminated = bool(self.x.abs() >= 2.5)
        truncated = self.max_episode_steps is not None and self.t >= self.max_episode_steps and not terminated
        return TensorDict(
            {
                "observation": torch.stack([self.x, 2 * self.x]),
                "reward": (-self.x.abs()).float().reshape(1),
                **self._flags(terminated, truncated),
            },
            [],
        )

    def _set_seed(self, seed: int | None) -> int | None:
        return seed


def line_reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """LineEnv's known reward ``-|x'|``."""
    return -next_obs[..., 0].abs()


def line_terminated(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """LineEnv's known termination ``|x'| >= 2.5``."""
    return next_obs[..., 0].abs() >= 2.5


@pytest.fixture
def toy_registry() -> Iterator[list[tuple]]:
    """``"toy/"`` (a prefix, with LineEnv's known functions) and ``"line"`` (an id, without); the
    list records the builder's calls ``(env_id, device, max_episode_steps, kwargs)`` and the known
    functions' factories' ``(name, env_id, env_kwargs)``."""
    calls: list[tuple] = []

    def builder(env_id: str, *, device: str, max_episode_steps: int | None, **kwargs) -> EnvBase:
        calls.append((env_id, device, max_episode_steps, kwargs))
        return LineEnv(device, max_episode_steps)

    def known(fn: Callable) -> Callable:
        def fn_factory(env_id: str, env_kwargs: dict | None) -> Callable:
            calls.append((fn.__name__, env_id, env_kwargs))
            return fn

        return fn_factory

    register_env("toy/", builder, reward=known(line_reward), termination=known(line_terminated))
    register_env("line", builder)
    try:
        yield calls
    finally:
        factory._CUSTOM_PREFIXES.pop("toy/", None)
        factory._CUSTOM_IDS.pop("line", None)
        factory._KNOWN_FN_PREFIXES.pop("toy/", None)
        factory._KNOWN_FN_IDS.pop("line", None)
        factory._spec_cached.cache_clear()


def test_register_prefix_and_id_make_ids_known(toy_registry: list[tuple]) -> None:
    check_env_id("toy/abc")
    check_env_id("toy/anything/else")
    check_env_id("line")
    ids = known_env_ids()
    assert "toy/..." in ids and "line" in ids
    with pytest.raises(ConfigError, match="toy/"):  # the error message lists the prefix too
        check_env_id("toyabc")
    with pytest.raises(ConfigError):
        check_env_id("line/2")


def test_registered_known_functions_serve_the_id(toy_registry: list[tuple]) -> None:
    env = make_env("toy/abc")
    rollout = env.rollout(8, policy=lambda td: td.set(keys.ACTION, torch.ones(1)), break_when_any_done=False)
    terminated = rollout.get(keys.TERMINATED).squeeze(-1)
    assert terminated.tolist() == [False, False, True] * 2 + [False, False]  # x = 1, 2, 3, reset, ...
    reward, done = reward_fn("toy/abc", {"scale": 3}), termination_fn("toy/abc", {"scale": 3})
    assert toy_registry[1:] == [("line_reward", "toy/abc", {"scale": 3}), ("line_terminated", "toy/abc", {"scale": 3})]
    transition = rollout.get(keys.OBSERVATION), rollout.get(keys.ACTION), rollout.get(keys.NEXT_OBSERVATION)
    torch.testing.assert_close(reward(*transition), rollout.get(keys.REWARD).squeeze(-1))
    assert torch.equal(done(*transition), terminated)


@pytest.mark.parametrize("kind", ["reward", "termination"])
def test_id_registered_without_known_functions_raises_one_line(toy_registry: list[tuple], kind: str) -> None:
    fn = {"reward": reward_fn, "termination": termination_fn}[kind]
    message = rf"^no known {kind} function for env id 'line'; supported: .*toy/\.\.\."
    with pytest.raises(ConfigError, match=message) as err:
        fn("line")
    assert "\n" not in str(err.value) and "line," not in str(err.value)


def test_registry_cleanup_leaves_ids_unknown() -> None:
    with pytest.raises(ConfigError):
        check_env_id("toy/abc")
    assert "toy/..." not in known_env_ids()
    with pytest.raises(ConfigError, match="toy/abc"):
        reward_fn("toy/abc")


def test_custom_env_gets_standard_transforms(toy_registry: list[tuple]) -> None:
    torch.manual_seed(0)
    env = make_env("toy/abc", max_episode_steps=10, scale=3)
    assert toy_registry == [("toy/abc", "cpu", 10, {"scale": 3})]
    rollout = env.rollout(5, policy=lambda td: td.set(keys.ACTION, torch.ones(1)), break_when_any_done=True)
    assert rollout.shape == (3,)  # x = 1, 2, 3: terminated at the third step
    obs = rollout.get(keys.NEXT_OBSERVATION)
    assert obs.dtype == torch.float32
    torch.testing.assert_close(obs, torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
    assert rollout.get(keys.TERMINATED).squeeze(-1).tolist() == [False, False, True]
    assert rollout.get((keys.NEXT, keys.STEP_COUNT)).squeeze(-1).tolist() == [1, 2, 3]
    torch.testing.assert_close(rollout.get(keys.NEXT_EPISODE_RETURN).squeeze(-1), torch.tensor([-1.0, -3.0, -6.0]))

    spec = env_spec("toy/abc")
    assert (spec.observation_dim, spec.action_dim, spec.num_actions, spec.env_id) == (2, 1, None, "toy/abc")
    env.close()


def test_custom_env_batched(toy_registry: list[tuple]) -> None:
    env = make_env("line", num_envs=2, max_episode_steps=2)
    try:
        assert env.batch_size == torch.Size([2])
        rollout = env.rollout(3, policy=lambda td: td.set(keys.ACTION, torch.zeros(2, 1)), break_when_any_done=False)
        assert rollout.batch_size == torch.Size([2, 3])
        assert rollout.get(keys.TRUNCATED).squeeze(-1).tolist() == [[False, True, False]] * 2
    finally:
        env.close()


def test_env_spec_accepts_list_valued_env_kwargs() -> None:
    make_env("Hopper-v5", healthy_z_range=[0.7, 2.0]).close()  # the env accepts the list
    assert env_spec("Hopper-v5", healthy_z_range=[0.7, 2.0]).observation_dim == 11
