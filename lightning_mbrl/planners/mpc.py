"""Test-time model-predictive control: MAAC's policy-seeded CEM (Clavera et al. 2020, Section 5.4)
and plain CEM / MPPI MPC with only a model (and reward). Pure tensor code, evaluation only.

Each ``act`` maximises over the first ``tau = horizon`` actions (and ``a_tau`` when a Q-function
is given) the model return

    J = sum_{t<tau} gamma^t m_t r(s_t, a_t) + gamma^tau m_tau Q(s_tau, a_tau)

(``boots.bootstrapped_return``; ``m_t`` the done mask; without ``q_fn`` the terminal value is 0
and there is no ``a_tau`` row) and executes the first action of the final mean.

Two search spaces:

- with ``policy_dist`` (MAAC, REFERENCE 5.2): CEM over pre-tanh actions ``u``, ``a = tanh(u)``;
  initial mean = the policy's pre-tanh means ``mu_pi(s_t)`` along a rollout of the mean action
  ``tanh(mu_pi)`` through ``init_dynamics`` (default ``dynamics``; pass a deterministic mode, as the
  code does); defaults K = 256 candidates, tau = 5, 5 iterations, 25 elites (10%), smoothing 0.1
  (``0.1 old + 0.9 elite``), gamma = 0.99; executed action ``tanh(mean[0])``;
- without a policy: CEM or MPPI over the actions themselves in ``[-1, 1]`` (candidates clamped),
  initial mean 0 and std ``init_std`` (default 0.5); executed action ``mean[0]``.

Choices where the official code is odd (REFERENCE 5.2):

- initial std: the code feeds the policy's LOG-std as the std (so, the sampling being symmetric,
  effectively ``|log sigma_pi|``, typically much wider than ``sigma_pi``). Here it is the policy's
  std ``sigma_pi(s_t)`` along the same rollout, or the constant ``init_std`` when one is given;
- terminal discount: the code weighs Q by ``gamma^(tau + 1)``; here ``gamma^tau``, as the MAAC
  objective (paper Eq. for J_pi, Section 4) and the issue ("terminal value gamma^H Q"): Q(s_tau,
  a_tau) already discounts from step tau on;
- warm start (``warm_start``, default on without a policy, off with one as the paper re-seeds
  from the policy at every step): the previous final mean shifted one step earlier, its new last
  row taken from the fresh initial mean; the std is always the fresh one (PETS-style: a collapsed
  std is not carried over).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from lightning_mbrl.errors import ConfigError, require_in_range, require_positive
from lightning_mbrl.planners.boots import DynamicsFn, PolicyDistFn, QFn, bootstrapped_return, tile
from lightning_mbrl.planners.cem import ScoreFn, check_search_args, cem, mppi

OPTIMIZERS = ("cem", "mppi")
DEFAULT_ACTION_STD = 0.5


class MPCPlan(NamedTuple):
    """``action [E, A]`` to execute, ``mean``/``std`` ``[E, R, A]`` the final search distribution
    (pre-tanh with a policy), ``best [E, R, A]`` the best candidate of the last iteration and
    ``score [E]`` its return; ``R = horizon + (q_fn is not None)``."""

    action: Tensor
    mean: Tensor
    std: Tensor
    best: Tensor
    score: Tensor


@torch.no_grad()
def policy_prior(obs: Tensor, dynamics: DynamicsFn, policy_dist: PolicyDistFn, n_rows: int) -> tuple[Tensor, Tensor]:
    """MAAC's CEM initialisation: ``mu_pi(s_t)`` and ``sigma_pi(s_t)`` for ``t < n_rows`` along
    ``s_{t+1} = dynamics(s_t, tanh(mu_pi(s_t)))`` from ``s_0 = obs [E, D]`` (``n_rows - 1`` model
    steps on ``E`` rows). Returns ``mean, std [E, n_rows, A]``."""
    means, stds = [], []
    for t in range(n_rows):
        mu, log_std = policy_dist(obs)
        means.append(mu)
        stds.append(log_std.exp())
        if t < n_rows - 1:
            obs = dynamics(obs, torch.tanh(mu))[0]
    return torch.stack(means, dim=1), torch.stack(stds, dim=1)


def _mpc_objective(
    obs: Tensor, dynamics: DynamicsFn, q_fn: QFn | None, horizon: int, discount: float, squash: bool, n_candidates: int
) -> ScoreFn:
    n_episodes = obs.shape[0]
    start = tile(obs, n_candidates)

    def score(candidates: Tensor) -> Tensor:  # [E, C, R, A]
        actions = torch.tanh(candidates) if squash else candidates
        flat = actions.reshape(n_episodes * n_candidates, candidates.shape[2], -1)
        terminal = None if q_fn is None else (lambda s: q_fn(s, flat[:, horizon]))
        return bootstrapped_return(dynamics, start, lambda t, _: flat[:, t], horizon, terminal, discount).view(
            n_episodes, n_candidates
        )

    return score


@torch.no_grad()
def plan_mpc(
    obs: Tensor,
    dynamics: DynamicsFn,
    q_fn: QFn | None = None,
    *,
    horizon: int,
    mean: Tensor,
    std: Tensor,
    squash: bool,
    optimizer: str = "cem",
    n_candidates: int = 256,
    n_iters: int = 5,
    n_elites: int = 25,
    smoothing: float = 0.1,
    temperature: float = 1.0,
    discount: float = 0.99,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> MPCPlan:
    """One MPC step from ``N(mean, std^2)``, ``[E, R, A]``: CEM (``n_elites``, ``smoothing``) or
    MPPI (``temperature``, ``smoothing``) over pre-tanh actions (``squash=True``) or actions in
    ``[-1, 1]`` (``squash=False``); ``noise`` as in ``cem.cem``. Each model step is one
    ``dynamics`` call on ``E * n_candidates`` rows."""
    if obs.dim() != 2:
        raise ValueError(f"obs must be [E, obs_dim], got {tuple(obs.shape)}")
    rows = horizon + (q_fn is not None)
    if mean.shape[:2] != (obs.shape[0], rows) or std.shape != mean.shape:
        raise ValueError(
            f"mean and std must be [{obs.shape[0]}, {rows}, A], got {tuple(mean.shape)}, {tuple(std.shape)}"
        )
    score = _mpc_objective(obs, dynamics, q_fn, horizon, discount, squash, n_candidates)
    low, high = (None, None) if squash else (-1.0, 1.0)
    search = {"n_candidates": n_candidates, "n_iters": n_iters, "smoothing": smoothing, "low": low, "high": high}
    if optimizer == "cem":
        result = cem(score, mean, std, n_elites=n_elites, generator=generator, noise=noise, **search)
    elif optimizer == "mppi":
        result = mppi(score, mean, std, temperature=temperature, generator=generator, noise=noise, **search)
    else:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    first = result.mean[:, 0]
    action = torch.tanh(first) if squash else first.clamp(-1.0, 1.0)
    return MPCPlan(action, result.mean, result.std, result.best, result.best_score)


class MPCPlanner:
    """Stateful MPC over ``E`` episodes stepped together: ``reset``, ``act``, ``reset_done``.

    ``MPCPlanner(dynamics, q_fn, policy_dist)`` is MAAC's test-time MPC with its defaults;
    ``MPCPlanner(dynamics, action_dim=A, optimizer="cem" | "mppi")`` is plain MPC with only a model
    and its reward (zero terminal value). ``init_std=None`` means the policy's std (with a policy)
    or 0.5 (without); ``warm_start=None`` means on without a policy, off with one (see the module
    docstring). ``previous_mean [E, R, A]`` (the last final mean) and ``warm [E]`` (whether an
    episode may use it) hold the warm start; ``reset_done(done)`` clears ``warm`` where ``done``.
    """

    def __init__(
        self,
        dynamics: DynamicsFn,
        q_fn: QFn | None = None,
        policy_dist: PolicyDistFn | None = None,
        *,
        horizon: int = 5,
        optimizer: str = "cem",
        n_candidates: int = 256,
        n_iters: int = 5,
        n_elites: int = 25,
        smoothing: float = 0.1,
        discount: float = 0.99,
        init_std: float | None = None,
        temperature: float = 1.0,
        warm_start: bool | None = None,
        init_dynamics: DynamicsFn | None = None,
        action_dim: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ConfigError(f"horizon must be an int >= 1, got {horizon!r}")
        check_search_args(n_candidates, n_iters, n_elites, smoothing)
        require_in_range("discount", discount, 0.0, 1.0)
        require_positive("temperature", temperature)
        if init_std is not None:
            require_positive("init_std", init_std)
        if policy_dist is None:
            if action_dim is None:
                raise ConfigError("action_dim must be given when there is no policy_dist")
            if not isinstance(action_dim, int) or isinstance(action_dim, bool) or action_dim < 1:
                raise ConfigError(f"action_dim must be an int >= 1, got {action_dim!r}")
        self.dynamics, self.q_fn, self.policy_dist = dynamics, q_fn, policy_dist
        self.init_dynamics = dynamics if init_dynamics is None else init_dynamics
        self.horizon, self.optimizer = horizon, optimizer
        self.n_candidates, self.n_iters, self.n_elites, self.smoothing = n_candidates, n_iters, n_elites, smoothing
        self.discount, self.init_std, self.temperature = float(discount), init_std, float(temperature)
        self.warm_start = policy_dist is None if warm_start is None else bool(warm_start)
        self.action_dim, self.generator = action_dim, generator
        self.rows = horizon + (q_fn is not None)
        self.n_episodes: int | None = None
        self.previous_mean: Tensor | None = None
        self.warm: Tensor | None = None

    def reset(self, n_episodes: int | None = None) -> None:
        """Forget the warm start; ``act`` then expects ``n_episodes`` rows (any number if ``None``)."""
        self.n_episodes, self.previous_mean, self.warm = n_episodes, None, None

    def reset_done(self, done: Tensor) -> None:
        """The episodes where ``done [E]`` (bool) is set start the next ``act`` from the fresh initial mean."""
        if self.warm is not None:
            self.warm = self.warm & ~done.to(device=self.warm.device, dtype=torch.bool)

    def initial_distribution(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """The fresh (not warm-started) initial ``mean, std [E, R, A]`` for ``obs [E, D]``."""
        if self.policy_dist is not None:
            mean, std = policy_prior(obs, self.init_dynamics, self.policy_dist, self.rows)
            if self.init_std is not None:
                std = torch.full_like(std, self.init_std)
            return mean, std
        shape = (obs.shape[0], self.rows, self.action_dim)
        init_std = DEFAULT_ACTION_STD if self.init_std is None else self.init_std
        return obs.new_zeros(shape), obs.new_full(shape, init_std)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """``obs [E, D] -> action [E, A]`` in ``[-1, 1]``."""
        if obs.dim() != 2:
            raise ValueError(f"obs must be [E, obs_dim], got {tuple(obs.shape)}")
        if self.n_episodes is not None and obs.shape[0] != self.n_episodes:
            raise ValueError(f"obs must have {self.n_episodes} rows (reset(n_episodes)), got {obs.shape[0]}")
        self.n_episodes = obs.shape[0]
        mean, std = self.initial_distribution(obs)
        if self.warm_start and self.previous_mean is not None:
            shifted = torch.cat([self.previous_mean[:, 1:], mean[:, -1:]], dim=1)
            mean = torch.where(self.warm.view(-1, 1, 1), shifted, mean)
        plan = plan_mpc(
            obs, self.dynamics, self.q_fn, horizon=self.horizon, mean=mean, std=std,
            squash=self.policy_dist is not None, optimizer=self.optimizer, n_candidates=self.n_candidates,
            n_iters=self.n_iters, n_elites=self.n_elites, smoothing=self.smoothing, temperature=self.temperature,
            discount=self.discount, generator=self.generator,
        )  # fmt: skip
        self.previous_mean = plan.mean
        self.warm = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device)
        return plan.action
