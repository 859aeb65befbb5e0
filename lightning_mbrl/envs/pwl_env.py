"""The 1-D piecewise-linear MDPs of paper 000 as TorchRL envs, registered as ``pwl/...`` ids.

    make_env("pwl/def41-H4")        # Definition 4.1, H = 4: discounted, time limit 2H (truncation)
    make_env("pwl/rand-7")          # RAND MDP with seed 7: horizon 10 (termination)
    make_env("pwl/semi-rand-7")     # SEMI-RAND MDP with seed 7: horizon 10 (termination)
    optimal_return("pwl/semi-rand-7")   # exact best expected episode return, for logging

Contract (the same as ``make_env("CartPole-v1")`` for the parts the library reads):

- ``"observation"``: float32 ``[1]``, the state s in [0, 1). The env keeps s in float64 (the
  doubling map of Definition 4.1 shifts out one binary digit per step, so float32 would run out
  after 24 steps); :attr:`PiecewiseLinearEnv.state` reads it.
- ``"action"``: int64 scalar, ``Categorical(2)`` (what ``GymWrapper(categorical_action_encoding=True)``
  gives CartPole).
- ``("next", "reward")`` float32 ``[1]``: r(s, a) with s the state before the step.
- ``done``/``terminated``/``truncated`` bool ``[1]``. RAND and SEMI-RAND are finite-horizon MDPs:
  ``terminated`` after ``horizon`` steps (10). Definition 4.1 is an infinite-horizon discounted
  task (gamma = 1 - 1/H): it never terminates and is ``truncated`` by a time limit, 2H steps
  unless ``max_episode_steps`` says otherwise, so a bootstrap mask ``1 - terminated`` keeps going
  as the paper's infinite sum does. ``max_episode_steps`` also truncates RAND/SEMI-RAND early.

f and r are evaluated with ``torch.searchsorted`` over each action's breakpoints (no Python loop
over pieces). Env kwargs for ``rand``/``semi-rand``: ``horizon`` (int, default 10) and ``reward``
(``"state"``, the paper's r(s, a) = s, or ``"next_state"``); ``def41`` takes none.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from lightning_mbrl import keys
from lightning_mbrl.envs.factory import register_env
from lightning_mbrl.envs.mujoco_fns import TransitionFn, never_terminated
from lightning_mbrl.envs.piecewise_linear.algebra import PiecewiseLinear
from lightning_mbrl.envs.piecewise_linear.mdps import (
    RANDOM_MDP_HORIZON,
    REWARD_CHOICES,
    PiecewiseLinearMDP,
    definition_4_1,
    make_mdp,
)
from lightning_mbrl.envs.piecewise_linear.solver import def41_horizon, solve
from lightning_mbrl.errors import ConfigError

PREFIX = "pwl/"
_ID = re.compile(r"pwl/(?:def41-H(?P<H>\d+)|(?P<method>rand|semi-rand)-(?P<seed>\d+))")
ID_FORMS = "pwl/def41-H<H>, pwl/rand-<seed>, pwl/semi-rand-<seed>"


class PiecewiseLinearEnv(EnvBase):
    """Batch-less TorchRL env stepping a :class:`~lightning_mbrl.envs.piecewise_linear.mdps.PiecewiseLinearMDP`.

    ``horizon`` steps end the episode as ``terminated`` if ``terminate_at_horizon`` else as
    ``truncated`` (a time limit); ``max_episode_steps`` truncates earlier. The initial state is
    uniform on [0, 1) (53 random bits, float64) from the env's own generator (:meth:`set_seed`).
    """

    def __init__(self, mdp: PiecewiseLinearMDP, *, horizon: int, terminate_at_horizon: bool,
                 max_episode_steps: int | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(device=device, batch_size=torch.Size([]))
        self.mdp = mdp
        self.horizon = int(horizon)
        self.terminate_at_horizon = terminate_at_horizon
        self.max_episode_steps = max_episode_steps
        #: Steps in one episode: the horizon, or an earlier time limit.
        self.episode_steps = min(self.horizon, max_episode_steps or self.horizon)
        self._dynamics = _tables(mdp.dynamics, self.device)
        self._rewards = _tables(mdp.rewards, self.device)
        self.observation_spec = Composite({keys.OBSERVATION: Bounded(0.0, 1.0, shape=(1,), dtype=torch.float32,
                                                                     device=self.device)})
        self.action_spec = Categorical(mdp.num_actions, shape=(), dtype=torch.int64, device=self.device)
        self.reward_spec = Unbounded(shape=(1,), dtype=torch.float32, device=self.device)
        self.done_spec = Composite(**{k: Categorical(2, shape=(1,), dtype=torch.bool, device=self.device)
                                      for k in ("done", "terminated", "truncated")})
        self._rng = torch.Generator(device=self.device)
        self._rng.manual_seed(int(torch.randint(0, 2**62, ())))
        self._state = torch.zeros(1, dtype=torch.float64, device=self.device)
        self._t = 0

    @property
    def state(self) -> torch.Tensor:
        """The exact state s, float64 ``[1]`` (the observation is its float32 rounding)."""
        return self._state.clone()

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDict:
        self._state = torch.rand(1, generator=self._rng, dtype=torch.float64, device=self.device)
        self._t = 0
        return TensorDict({keys.OBSERVATION: self._state.float(), **self._flags(False, False)}, [],
                          device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        action = tensordict.get(keys.ACTION).reshape(()).long()
        s = self._state
        reward = _evaluate(self._rewards, action, s)
        self._state = _evaluate(self._dynamics, action, s)
        self._t += 1
        terminated = self.terminate_at_horizon and self._t >= self.horizon
        truncated = not terminated and self._t >= self.episode_steps  # episode_steps <= horizon
        return TensorDict({keys.OBSERVATION: self._state.float(), "reward": reward.float(),
                           **self._flags(terminated, truncated)}, [], device=self.device)

    def _flags(self, terminated: bool, truncated: bool) -> dict[str, torch.Tensor]:
        def flag(b: bool) -> torch.Tensor:
            return torch.tensor([b], device=self.device)

        return {"terminated": flag(terminated), "truncated": flag(truncated), "done": flag(terminated or truncated)}

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng.manual_seed(int(seed))

    def get_env_state(self) -> dict[str, torch.Tensor | int]:
        """The mid-episode state for checkpoints (``envs.state``): state, step and generator."""
        return {"state": self._state.clone(), "t": self._t, "rng": self._rng.get_state()}

    def set_env_state(self, state: dict[str, torch.Tensor | int]) -> None:
        self._state = state["state"].to(device=self.device, dtype=torch.float64).clone()
        self._t = int(state["t"])
        self._rng.set_state(state["rng"])


def _tables(fns: tuple[PiecewiseLinear, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """Stack per-action pieces, padded: breakpoints ``[A, P + 1]`` (padding +inf), start values and
    slopes ``[A, P]``, piece counts ``[A]``; float64."""
    width = max(f.num_pieces for f in fns)
    x = torch.full((len(fns), width + 1), float("inf"), dtype=torch.float64)
    v = torch.zeros(len(fns), width, dtype=torch.float64)
    m = torch.zeros(len(fns), width, dtype=torch.float64)
    for a, f in enumerate(fns):
        x[a, : f.num_pieces + 1] = torch.from_numpy(f.x)
        v[a, : f.num_pieces] = torch.from_numpy(f.v)
        m[a, : f.num_pieces] = torch.from_numpy(f.m)
    n = torch.tensor([f.num_pieces for f in fns])
    return x.to(device), v.to(device), m.to(device), n.to(device)


def _evaluate(tables: tuple[torch.Tensor, ...], action: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``fn[action](s)`` for ``action`` int ``[*B]`` and ``s`` float64 ``[*B, 1]``; returns ``[*B, 1]``."""
    x, v, m = (t[action] for t in tables[:3])  # [*B, P + 1], [*B, P]
    i = torch.searchsorted(x, s, right=True) - 1
    i = torch.minimum(i.clamp_min(0), (tables[3][action] - 1).unsqueeze(-1))
    return v.gather(-1, i) + m.gather(-1, i) * (s - x.gather(-1, i))


# ----------------------------------------------------------------------------- ids
def _parse(env_id: str, env_kwargs: dict[str, Any]) -> tuple[PiecewiseLinearMDP, int, bool]:
    """``(mdp, horizon, terminate_at_horizon)`` for a ``pwl/...`` id; ConfigError for a bad id or kwarg."""
    match = _ID.fullmatch(env_id)
    if match is None:
        raise ConfigError(f"unknown env id {env_id!r}; pwl ids are {ID_FORMS}")
    kwargs = dict(env_kwargs)
    if match["H"] is not None:
        if kwargs:
            raise ConfigError(f"env {env_id!r} takes no env_kwargs, got {sorted(kwargs)}")
        H = int(match["H"])
        if H < 1:
            raise ConfigError(f"H in {env_id!r} must be >= 1, got {H}")
        return definition_4_1(H), def41_horizon(H), False
    horizon = kwargs.pop("horizon", RANDOM_MDP_HORIZON)
    reward = kwargs.pop("reward", "state")
    if kwargs:
        raise ConfigError(f"env {env_id!r} takes env_kwargs horizon and reward only, got {sorted(kwargs)}")
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ConfigError(f"horizon for {env_id!r} must be an integer >= 1, got {horizon!r}")
    if reward not in REWARD_CHOICES:
        raise ConfigError(f"reward for {env_id!r} must be one of {', '.join(REWARD_CHOICES)}, got {reward!r}")
    mdp = make_mdp(match["method"], seed=int(match["seed"]), horizon=horizon, reward=reward)
    return mdp, horizon, True


def build_pwl_env(env_id: str, *, device: str = "cpu", max_episode_steps: int | None = None,
                  **env_kwargs: Any) -> PiecewiseLinearEnv:
    """The ``register_env`` builder for ids starting with ``pwl/``."""
    mdp, horizon, terminate = _parse(env_id, env_kwargs)
    return PiecewiseLinearEnv(mdp, horizon=horizon if terminate else (max_episode_steps or horizon),
                              terminate_at_horizon=terminate, max_episode_steps=max_episode_steps, device=device)


def optimal_return(env_id: str, *, max_episode_steps: int | None = None, **env_kwargs: Any) -> float:
    """The largest expected episode return any policy gets in ``make_env(env_id, ...)``, exactly.

    The episode return is the undiscounted sum of rewards over one episode (what ``RewardSum`` and
    ``eval/return`` measure), from s0 ~ U[0, 1). An episode has L = min(horizon, time limit)
    steps, and the rewards after a truncation never count, so this is ``E V_L(s0)`` with gamma = 1
    and L Bellman backups (the best non-stationary policy; the observation has no clock).

    For Definition 4.1 this is the undiscounted optimum over its 2H-step time limit, not the
    paper's discounted eta(pi*), which is ``piecewise_linear.solver.def41_optimal_return(H)``.
    """
    _, horizon, terminate = _parse(env_id, env_kwargs)  # checks the id and kwargs
    if not terminate:  # Definition 4.1: the time limit is the horizon
        steps = max_episode_steps or horizon
    else:
        steps = horizon if max_episode_steps is None else min(horizon, max_episode_steps)
    return _optimal_return(env_id, steps, env_kwargs.get("reward", "state"))


@functools.lru_cache(maxsize=64)
def _optimal_return(env_id: str, steps: int, reward: str) -> float:
    mdp, _, _ = _parse(env_id, {} if env_id.startswith("pwl/def41") else {"reward": reward})
    return solve(mdp, steps, gamma=1.0).optimal_return


def reward_fn(env_id: str, env_kwargs: dict[str, Any] | None = None) -> TransitionFn:
    """The known reward of a ``pwl/...`` env as ``r(obs [*B, 1], action long [*B], next_obs) -> [*B]``
    (``r(s, a)`` of the MDP, evaluated in float64 like the env), for planners' own models."""
    mdp, _, _ = _parse(env_id, dict(env_kwargs or {}))
    tables = _tables(mdp.rewards, torch.device("cpu"))

    def reward(obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        on_device = tuple(t.to(obs.device) for t in tables)
        r = _evaluate(on_device, action.long().reshape(obs.shape[:-1]), obs.to(torch.float64))
        return r.squeeze(-1).to(obs.dtype)

    return reward


def termination_fn(env_id: str, env_kwargs: dict[str, Any] | None = None) -> TransitionFn:
    """The known termination of a ``pwl/...`` env: never by state (episodes end by step count)."""
    return never_terminated


register_env(PREFIX, build_pwl_env, reward=reward_fn, termination=termination_fn)
