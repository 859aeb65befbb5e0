"""BOOTS, the k-step model-based bootstrapped greedy policy (Dong et al. 2020, Algorithm 1, Eq. 5).

    pi_boots(s) = argmax_{a_0} max_{a_1..a_k}  sum_{t<k} gamma^t r(s_t, a_t) + gamma^k Q(s_k, a_k),
    s_0 = s,  s_{t+1} = f_hat(s_t, a_t)                                                       (Eq. 5)

with ``gamma = 1`` in the paper (``discount=1.0``, the default). After a predicted termination the
later rewards and the terminal Q are zeroed (the terminating step's own reward counts). ``k = 0``
is the greedy policy w.r.t. Q. Pure tensor code (no Lightning), evaluation only (``no_grad``).

The maximisation (Algorithm 1 leaves it to "a zeroth-order optimisation algorithm") is one of:

- ``plan_cem_noise`` (the official code's choice, REFERENCE 2.2): CEM over the policy's
  reparameterisation noise, ``a_t = tanh(mu_pi(s_t) + sigma_pi(s_t) * xi_t)``; 500 candidates,
  5 iterations, 50 elites, smoothing 0.5, initial ``N(0, 1)``; executed action
  ``tanh(mu_pi(s) + sigma_pi(s) * xi_0*)`` with ``xi*`` the best candidate of the last iteration;
- ``plan_cem_action``: CEM over the raw actions in ``[-1, 1]`` (candidates clamped);
- ``plan_shooting``: the best of ``n_candidates`` policy samples (or uniform actions without a
  policy);
- ``plan_exhaustive``: discrete actions, all ``|A|^k`` sequences ``a_0..a_{k-1}`` with the terminal
  ``max_a Q(s_k, a)`` in closed form (``k = 0``: ``argmax_a Q(s, a)``).

Horizon convention (a choice; REFERENCE 2.2 quirk): ``horizon = k`` is the number of model steps
and of rewards, and a continuous candidate has ``k + 1`` rows ``a_0..a_k`` (Eq. 5), ``a_k`` being
the action inside the terminal ``Q(s_k, a_k)``; with CEM-over-noise ``a_k`` is drawn from the policy
with searched noise ``xi_k``. The official code (``h_plan = 4``) searches 4 noise rows, makes the
same 4 model steps, but adds only ``r_0..r_2`` and evaluates ``Q(s_4, a_3)`` (the state after the
4th step with the 4th action). ``horizon=4`` here is the paper's ``k = 4``: the same 4 model steps,
plus the 4th reward and one more policy call for ``a_4``.

Callable contracts (``N = E * C`` rows: E episodes times C candidates, one call per model step):

- ``dynamics(obs [N, D], action [N, A] float | [N] long) -> (next_obs [N, D], reward [N],
  terminated bool [N])``, e.g. ``functools.partial(EnsembleDynamics.step, mode="mean")``;
- ``q_fn(obs [N, D], action [N, A]) -> [N]`` (the caller takes the min over twin critics), or for
  discrete actions ``q_all(obs [N, D]) -> [N, n_actions]``;
- ``policy_dist(obs [N, D]) -> (mu [N, A], log_std [N, A])``, pre-tanh (``TanhGaussianActor``).

Random draws come from ``generator`` (on the observations' device). Per ``act``, the CEM
optimizers draw exactly ``cem.standard_normal(n_iters, n_candidates, mean, generator)`` and
shooting one ``randn`` (policy noise) or ``rand`` (uniform actions) of shape ``[E, C, k + 1, A]``;
exhaustive search draws nothing. The policy at ``s_0`` and the tiled start states are computed
once per ``act``, not per CEM iteration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from lightning_mbrl.errors import ConfigError, require_in_range, require_positive
from lightning_mbrl.objectives.returns import discounted_return
from lightning_mbrl.planners.cem import ScoreFn, check_search_args, cem, exhaustive_search, random_shooting

#: ``(obs [N, D], action [N, A] | long [N]) -> (next_obs [N, D], reward [N], terminated bool [N])``.
DynamicsFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
#: ``(obs [N, D], action [N, A]) -> [N]``.
QFn = Callable[[Tensor, Tensor], Tensor]
#: ``obs [N, D] -> [N, n_actions]``.
QAllFn = Callable[[Tensor], Tensor]
#: ``obs [N, D] -> (mu [N, A], log_std [N, A])``: ``a = tanh(mu + exp(log_std) * xi)``.
PolicyDistFn = Callable[[Tensor], tuple[Tensor, Tensor]]

OPTIMIZERS = ("cem_noise", "cem_action", "shooting", "exhaustive")


class BootsPlan(NamedTuple):
    """``action`` ``[E, A]`` (long ``[E]`` if discrete) to execute; ``sequence`` the best candidate
    in the search space (noise or actions ``[E, k + 1, A]``; long ``[E, k]``); ``score [E]`` its
    value (Eq. 5); ``mean``, ``std`` ``[E, k + 1, A]`` the final CEM distribution (``None`` for
    shooting and exhaustive search)."""

    action: Tensor
    sequence: Tensor
    score: Tensor
    mean: Tensor | None
    std: Tensor | None


def bootstrapped_return(
    dynamics: DynamicsFn,
    obs: Tensor,
    action_at: Callable[[int, Tensor], Tensor],
    horizon: int,
    terminal_value: Callable[[Tensor], Tensor] | None = None,
    discount: float = 1.0,
) -> Tensor:
    """``sum_{t<k} gamma^t m_t r(s_t, a_t) + gamma^k m_k V(s_k)`` for ``obs = s_0 [N, D]`` (Eq. 5).

    ``a_t = action_at(t, s_t)``, ``s_{t+1}, r_t, d_t = dynamics(s_t, a_t)``, ``k = horizon``;
    ``m_0 = 1``, ``m_{t+1} = m_t and not d_t`` (done masking: the terminating step's reward
    counts, nothing after it). ``terminal_value(s_k) -> [N]`` (e.g. ``Q(s_k, a_k)``); ``None``
    means 0. The sum is ``objectives.returns.discounted_return``, the return every planner, rollout
    and batch uses. Returns ``[N]``.
    """
    rewards, terminals = [], []
    for t in range(horizon):
        obs, reward, terminated = dynamics(obs, action_at(t, obs))
        rewards.append(reward)
        terminals.append(terminated)
    bootstrap = terminal_value(obs) if terminal_value is not None else None
    if not rewards:
        return bootstrap if bootstrap is not None else obs.new_zeros(obs.shape[0])
    return discounted_return(torch.stack(rewards), torch.stack(terminals), discount=discount, bootstrap=bootstrap)


def tile(x: Tensor, n: int) -> Tensor:
    """``[E, *R] -> [E * n, *R]``, each row repeated ``n`` times (episode-major, like ``[E, C]``)."""
    return x.unsqueeze(1).expand(x.shape[0], n, *x.shape[1:]).reshape(-1, *x.shape[1:])


def _noise_objective(
    obs: Tensor,
    dynamics: DynamicsFn,
    q_fn: QFn,
    policy_dist: PolicyDistFn,
    horizon: int,
    discount: float,
    n_candidates: int,
) -> tuple[ScoreFn, Callable[[Tensor], Tensor]]:
    """Eq. (5) as a function of the policy noise ``xi [E, C, k + 1, A]``, and ``xi_0 [E, A] ->
    a_0``. The policy at ``s_0`` and the tiled start states are computed once for all iterations."""
    n_episodes = obs.shape[0]
    n = n_episodes * n_candidates
    mu0, log_std0 = policy_dist(obs)  # [E, A]: the same for every candidate and iteration
    std0 = log_std0.exp()
    start = tile(obs, n_candidates)

    def score(xi: Tensor) -> Tensor:
        first = torch.tanh(mu0.unsqueeze(1) + std0.unsqueeze(1) * xi[:, :, 0]).reshape(n, -1)
        xi = xi.reshape(n, horizon + 1, -1)

        def action_at(t: int, state: Tensor) -> Tensor:
            if t == 0:
                return first
            mu, log_std = policy_dist(state)
            return torch.tanh(mu + log_std.exp() * xi[:, t])

        def terminal(state: Tensor) -> Tensor:
            return q_fn(state, action_at(horizon, state))

        return bootstrapped_return(dynamics, start, action_at, horizon, terminal, discount).view(n_episodes, -1)

    def execute(xi0: Tensor) -> Tensor:
        return torch.tanh(mu0 + std0 * xi0)

    return score, execute


def _action_objective(
    obs: Tensor, dynamics: DynamicsFn, q_fn: QFn, horizon: int, discount: float, n_candidates: int
) -> ScoreFn:
    """Eq. (5) as a function of the actions ``[E, C, k + 1, A]`` (``a_k`` inside the terminal Q)."""
    n_episodes = obs.shape[0]
    start = tile(obs, n_candidates)

    def score(actions: Tensor) -> Tensor:
        flat = actions.reshape(n_episodes * n_candidates, horizon + 1, -1)
        return bootstrapped_return(
            dynamics, start, lambda t, _: flat[:, t], horizon, lambda s: q_fn(s, flat[:, horizon]), discount
        ).view(n_episodes, -1)

    return score


def _check_obs(obs: Tensor) -> None:
    if obs.dim() != 2:
        raise ValueError(f"obs must be [E, obs_dim], got {tuple(obs.shape)}")


@torch.no_grad()
def plan_cem_noise(
    obs: Tensor,
    dynamics: DynamicsFn,
    q_fn: QFn,
    policy_dist: PolicyDistFn,
    *,
    horizon: int,
    mean: Tensor,
    std: Tensor,
    n_candidates: int = 500,
    n_iters: int = 5,
    n_elites: int = 50,
    smoothing: float = 0.5,
    discount: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> BootsPlan:
    """BOOTS by CEM over the policy noise (REFERENCE 2.2) from ``N(mean, std^2)``, ``[E, k + 1, A]``.

    Per model step one call of ``dynamics`` and (for ``t >= 1``) of ``policy_dist`` on all
    ``E * n_candidates`` rows; ``noise`` as in ``cem``. Executes ``tanh(mu_pi(s) + sigma_pi(s) *
    xi_0*)`` with ``xi*`` the best candidate of the last iteration."""
    _check_obs(obs)
    score, execute = _noise_objective(obs, dynamics, q_fn, policy_dist, horizon, discount, n_candidates)
    result = cem(
        score, mean, std, n_candidates=n_candidates, n_iters=n_iters, n_elites=n_elites, smoothing=smoothing,
        generator=generator, noise=noise,
    )  # fmt: skip
    return BootsPlan(execute(result.best[:, 0]), result.best, result.best_score, result.mean, result.std)


@torch.no_grad()
def plan_cem_action(
    obs: Tensor,
    dynamics: DynamicsFn,
    q_fn: QFn,
    *,
    horizon: int,
    mean: Tensor,
    std: Tensor,
    n_candidates: int = 500,
    n_iters: int = 5,
    n_elites: int = 50,
    smoothing: float = 0.5,
    discount: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> BootsPlan:
    """BOOTS by CEM over the actions ``[E, k + 1, A]`` in ``[-1, 1]`` (candidates clamped);
    executes the first row of the best candidate of the last iteration."""
    _check_obs(obs)
    score = _action_objective(obs, dynamics, q_fn, horizon, discount, n_candidates)
    result = cem(
        score, mean, std, n_candidates=n_candidates, n_iters=n_iters, n_elites=n_elites, smoothing=smoothing,
        low=-1.0, high=1.0, generator=generator, noise=noise,
    )  # fmt: skip
    return BootsPlan(result.best[:, 0], result.best, result.best_score, result.mean, result.std)


@torch.no_grad()
def plan_shooting(
    obs: Tensor,
    dynamics: DynamicsFn,
    q_fn: QFn,
    policy_dist: PolicyDistFn | None = None,
    *,
    horizon: int,
    action_dim: int,
    n_candidates: int = 500,
    discount: float = 1.0,
    generator: torch.Generator | None = None,
    candidates: Tensor | None = None,
) -> BootsPlan:
    """BOOTS by random shooting: the best of ``n_candidates`` sequences ``[E, C, k + 1, A]``.

    With a policy the candidates are policy samples (noise ``xi ~ N(0, I)``, drawn as ``randn``),
    without one uniform actions in ``[-1, 1]`` (drawn as ``2 * rand - 1``); ``candidates`` (noise
    or actions accordingly) replaces the draw."""
    _check_obs(obs)
    if candidates is not None:
        n_candidates = candidates.shape[1]
    shape = (obs.shape[0], n_candidates, horizon + 1, action_dim)
    kw = {"generator": generator, "device": obs.device, "dtype": obs.dtype}
    if policy_dist is not None:
        xi = torch.randn(shape, **kw) if candidates is None else candidates
        score, execute = _noise_objective(obs, dynamics, q_fn, policy_dist, horizon, discount, n_candidates)
        result = random_shooting(score, xi)
        action = execute(result.best[:, 0])
    else:
        actions = 2.0 * torch.rand(shape, **kw) - 1.0 if candidates is None else candidates
        result = random_shooting(_action_objective(obs, dynamics, q_fn, horizon, discount, n_candidates), actions)
        action = result.best[:, 0]
    return BootsPlan(action, result.best, result.best_score, None, None)


@torch.no_grad()
def plan_exhaustive(
    obs: Tensor, dynamics: DynamicsFn, q_all: QAllFn, *, horizon: int, n_actions: int, discount: float = 1.0
) -> BootsPlan:
    """BOOTS for discrete actions by enumerating all ``n_actions ** k`` sequences ``a_0..a_{k-1}``
    (``long``, passed to ``dynamics`` as ``[N]``) with the terminal ``max_a Q(s_k, a)``: the exact
    maximiser of Eq. (5). ``k = 0`` executes ``argmax_a Q(s, a)``. Each model step is one call on
    ``E * n_actions ** k`` rows."""
    _check_obs(obs)
    n_episodes, n_sequences = obs.shape[0], n_actions**horizon
    start = tile(obs, n_sequences)

    def score(sequences: Tensor) -> Tensor:  # long [E, C, k]
        flat = sequences.reshape(n_episodes * n_sequences, horizon)
        return bootstrapped_return(
            dynamics, start, lambda t, _: flat[:, t], horizon, lambda s: q_all(s).amax(dim=-1), discount
        ).view(n_episodes, n_sequences)

    result = exhaustive_search(score, n_actions, horizon, n_episodes, obs.device)
    action = result.best[:, 0] if horizon > 0 else q_all(obs).argmax(dim=-1)
    return BootsPlan(action, result.best, result.best_score, None, None)


def _require_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


class BootsPlanner:
    """Stateful BOOTS over ``E`` episodes stepped together: ``reset``, ``act``, ``reset_done``.

    ``optimizer``: ``"cem_noise"`` (needs ``policy_dist``; the paper's), ``"cem_action"``,
    ``"shooting"`` (policy samples if ``policy_dist`` is given, else uniform actions) or
    ``"exhaustive"`` (discrete actions: ``n_actions`` given, ``q_fn`` is ``q_all``). Continuous
    optimizers need ``action_dim``. Defaults are the official code's (REFERENCE 2.2) with the
    paper's ``k = 4`` (see the module docstring for the horizon convention).

    Warm start (CEM optimizers): ``mean``, ``std`` ``[E, k + 1, A]`` hold the next call's initial
    distribution. After each ``act`` they are the final CEM ``mean``/``std`` shifted one step
    earlier with a new last row ``0`` / ``init_std``; ``reset_done(done)`` sets finished episodes'
    rows to ``0`` / ``init_std``; ``reset`` forgets them (they are re-created at the next ``act`` on
    the observations' device and dtype as ``0`` / ``init_std``).
    """

    def __init__(
        self,
        dynamics: DynamicsFn,
        q_fn: QFn | QAllFn,
        policy_dist: PolicyDistFn | None = None,
        *,
        horizon: int = 4,
        optimizer: str = "cem_noise",
        n_candidates: int = 500,
        n_iters: int = 5,
        n_elites: int = 50,
        smoothing: float = 0.5,
        init_std: float = 1.0,
        discount: float = 1.0,
        action_dim: int | None = None,
        n_actions: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        _require_int("horizon", horizon, 0)
        check_search_args(n_candidates, n_iters, n_elites, smoothing)
        require_positive("init_std", init_std)
        require_in_range("discount", discount, 0.0, 1.0)
        if optimizer == "exhaustive":
            if n_actions is None:
                raise ConfigError("optimizer='exhaustive' is for discrete actions: n_actions must be given")
            _require_int("n_actions", n_actions, 1)
        else:
            if n_actions is not None:
                raise ConfigError(f"n_actions (discrete actions) needs optimizer='exhaustive', got {optimizer!r}")
            if action_dim is None:
                raise ConfigError(f"action_dim must be given for optimizer={optimizer!r}")
            _require_int("action_dim", action_dim, 1)
        if optimizer == "cem_noise" and policy_dist is None:
            raise ConfigError("optimizer='cem_noise' searches the policy's noise: policy_dist must be given")
        self.dynamics, self.q_fn, self.policy_dist = dynamics, q_fn, policy_dist
        self.horizon, self.optimizer = horizon, optimizer
        self.n_candidates, self.n_iters, self.n_elites, self.smoothing = n_candidates, n_iters, n_elites, smoothing
        self.init_std, self.discount = float(init_std), float(discount)
        self.action_dim, self.n_actions, self.generator = action_dim, n_actions, generator
        self.n_episodes: int | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    def reset(self, n_episodes: int | None = None) -> None:
        """Forget the warm start; ``act`` then expects ``n_episodes`` rows (any number if ``None``)."""
        self.n_episodes, self.mean, self.std = n_episodes, None, None

    def reset_done(self, done: Tensor) -> None:
        """Reset the warm start of the episodes where ``done [E]`` (bool) is set to ``0`` / ``init_std``."""
        if self.mean is None:
            return
        done = done.to(device=self.mean.device, dtype=torch.bool).view(-1, 1, 1)
        self.mean = self.mean.masked_fill(done, 0.0)
        self.std = self.std.masked_fill(done, self.init_std)

    def _shift(self, x: Tensor, fill: float) -> Tensor:
        return torch.cat([x[:, 1:], x.new_full((x.shape[0], 1, x.shape[2]), fill)], dim=1)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """``obs [E, D] -> action [E, A]`` in ``(-1, 1)`` (long ``[E]`` for discrete actions)."""
        _check_obs(obs)
        if self.n_episodes is not None and obs.shape[0] != self.n_episodes:
            raise ValueError(f"obs must have {self.n_episodes} rows (reset(n_episodes)), got {obs.shape[0]}")
        self.n_episodes = obs.shape[0]
        common = {"horizon": self.horizon, "discount": self.discount}
        if self.optimizer == "exhaustive":
            return plan_exhaustive(obs, self.dynamics, self.q_fn, n_actions=self.n_actions, **common).action
        if self.optimizer == "shooting":
            return plan_shooting(
                obs, self.dynamics, self.q_fn, self.policy_dist, action_dim=self.action_dim,
                n_candidates=self.n_candidates, generator=self.generator, **common,
            ).action  # fmt: skip
        if self.mean is None:
            shape = (obs.shape[0], self.horizon + 1, self.action_dim)
            self.mean = obs.new_zeros(shape)
            self.std = obs.new_full(shape, self.init_std)
        search = {
            "mean": self.mean, "std": self.std, "n_candidates": self.n_candidates, "n_iters": self.n_iters,
            "n_elites": self.n_elites, "smoothing": self.smoothing, "generator": self.generator, **common,
        }  # fmt: skip
        if self.optimizer == "cem_noise":
            plan = plan_cem_noise(obs, self.dynamics, self.q_fn, self.policy_dist, **search)
        else:
            plan = plan_cem_action(obs, self.dynamics, self.q_fn, **search)
        self.mean, self.std = self._shift(plan.mean, 0.0), self._shift(plan.std, self.init_std)
        return plan.action
