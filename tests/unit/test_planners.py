"""Unit tests (T0) for ``lightning_mbrl.planners``: the sequence optimisers, BOOTS and MPC, each
against an oracle (a brute-force loop over all action sequences on a tabular MDP, a quadratic with
a known optimum, hand-computed returns, the same planner run one episode at a time with the same
noise, gymnasium's Pendulum-v1 step).

Noise draws are reproduced from the documented draw order: a planner's ``act`` draws
``standard_normal(n_iters, n_candidates, mean, generator)`` once (``cem``'s ``noise`` argument).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lightning_mbrl.errors import ConfigError
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.world_model import EnsembleDynamics
from lightning_mbrl.planners import (
    BootsPlanner,
    MPCPlanner,
    bootstrapped_return,
    cem,
    enumerate_sequences,
    mppi,
    plan_cem_action,
    plan_cem_noise,
    plan_exhaustive,
    plan_mpc,
    plan_shooting,
    policy_prior,
    random_shooting,
    standard_normal,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small batches: one intra-op thread is as fast and robust to a busy second core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------- tabular MDP
S, N_ACTIONS, TERMINAL = 5, 3, 4  # entering state 4 terminates


def tabular_mdp(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random transitions ``[S, A]`` (long), rewards ``[S, A]`` and a Q table ``[S, A]``."""
    g = torch.Generator().manual_seed(seed)
    transitions = torch.randint(S, (S, N_ACTIONS), generator=g)
    rewards = torch.rand(S, N_ACTIONS, generator=g, dtype=F64)
    q_table = 3.0 * torch.rand(S, N_ACTIONS, generator=g, dtype=F64)
    return transitions, rewards, q_table


def one_hot_dynamics(transitions: Tensor, rewards: Tensor):
    def dynamics(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        assert action.dtype == torch.long and action.shape == obs.shape[:1]
        s = obs.argmax(dim=-1)
        nxt = transitions[s, action]
        return nn.functional.one_hot(nxt, S).to(obs.dtype), rewards[s, action], nxt == TERMINAL

    return dynamics


def q_lookup(q_table: Tensor, obs: Tensor) -> Tensor:
    """``q_all`` of a Q table on one-hot states: ``[N, S] -> [N, n_actions]``."""
    return q_table[obs.argmax(dim=-1)]


def brute_force(s0: int, k: int, transitions, rewards, q_table, discount: float) -> tuple[int, float]:
    """Eq. (5) by an independent loop over all sequences, in Python scalars: (best a_0, value)."""
    best_value, best_action = -math.inf, None
    for seq in itertools.product(range(N_ACTIONS), repeat=k):
        s, value, scale, alive = s0, 0.0, 1.0, True
        for a in seq:
            if alive:
                value += scale * float(rewards[s, a])
            s = int(transitions[s, a])
            alive = alive and s != TERMINAL
            scale *= discount
        tail = [scale * float(q_table[s, a]) if alive else 0.0 for a in range(N_ACTIONS)]
        for a_last in range(N_ACTIONS):
            total = value + tail[a_last]
            if total > best_value:
                best_value, best_action = total, (seq + (a_last,))[0]
    return best_action, best_value


def test_enumerate_sequences_lexicographic() -> None:
    assert enumerate_sequences(2, 3).tolist() == [list(s) for s in itertools.product(range(2), repeat=3)]
    assert enumerate_sequences(3, 0).shape == (1, 0)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("discount", [1.0, 0.8])
def test_exhaustive_boots_is_optimal_k_step_action(k: int, discount: float) -> None:
    for seed in range(3):
        transitions, rewards, q_table = tabular_mdp(seed)
        planner = BootsPlanner(
            one_hot_dynamics(transitions, rewards), functools.partial(q_lookup, q_table), horizon=k,
            optimizer="exhaustive", n_actions=N_ACTIONS, discount=discount,
        )  # fmt: skip
        obs = torch.eye(S, dtype=F64)  # every state as one episode, planned together
        plan = plan_exhaustive(obs, planner.dynamics, planner.q_fn, horizon=k, n_actions=N_ACTIONS, discount=discount)
        action = planner.act(obs)
        assert action.dtype == torch.long and action.shape == (S,)
        assert torch.equal(action, plan.action)
        for s0 in range(S):
            best_action, best_value = brute_force(s0, k, transitions, rewards, q_table, discount)
            assert int(action[s0]) == best_action
            assert float(plan.score[s0]) == pytest.approx(best_value, abs=1e-12)
        if k == 0:
            assert torch.equal(action, q_table.argmax(dim=-1))


# ---------------------------------------------------------------------------------- optimisers
def quadratic(target: Tensor):
    """``-||x - target||^2`` over ``[E, C, H, A]``; the optimum is ``target [E, H, A]``."""
    return lambda x: -(x - target.unsqueeze(1)).square().sum(dim=(-1, -2))


def test_cem_finds_quadratic_optimum_and_beats_random_shooting() -> None:
    g = torch.Generator().manual_seed(0)
    target = 1.6 * torch.rand(3, 4, 2, generator=g, dtype=F64) - 0.8  # E=3 problems, H=4, A=2
    mean, std = torch.zeros_like(target), torch.ones_like(target)
    result = cem(
        quadratic(target), mean, std, n_candidates=300, n_iters=12, n_elites=30, smoothing=0.5, low=-1.0, high=1.0,
        generator=g,
    )  # fmt: skip
    assert result.mean.shape == result.std.shape == result.best.shape == target.shape
    torch.testing.assert_close(result.mean, target, atol=0.05, rtol=0)
    torch.testing.assert_close(result.best, target, atol=0.1, rtol=0)
    shooting = random_shooting(quadratic(target), (mean.unsqueeze(1) + std.unsqueeze(1) * torch.randn(
        3, 300, 4, 2, generator=g, dtype=F64)).clamp(-1, 1))  # fmt: skip
    assert (shooting.best_score <= result.best_score).all()
    assert (result.best_score > -0.02).all() and (shooting.best_score < -0.5).all()


def test_cem_smoothing_weighs_the_old_value() -> None:
    """``new = smoothing * old + (1 - smoothing) * elite statistic`` (BOOTS 0.5, MAAC 0.1)."""
    g = torch.Generator().manual_seed(1)
    mean, std = torch.full((1, 1, 1), 0.3, dtype=F64), torch.full((1, 1, 1), 2.0, dtype=F64)
    noise = standard_normal(1, 20, mean, g)
    result = cem(lambda x: x[..., 0, 0], mean, std, n_candidates=20, n_iters=1, n_elites=5, smoothing=0.1, noise=noise)
    elites = (mean + std * noise[0, 0]).flatten().topk(5).values
    assert float(result.mean) == pytest.approx(0.1 * 0.3 + 0.9 * float(elites.mean()))
    assert float(result.std) == pytest.approx(0.1 * 2.0 + 0.9 * float(elites.std(correction=0)))
    assert float(result.best) == pytest.approx(float(elites[0]))


def test_mppi_moves_towards_quadratic_optimum() -> None:
    g = torch.Generator().manual_seed(2)
    target = torch.tensor([[[0.5, -0.3]]], dtype=F64)
    mean, std = torch.zeros_like(target), torch.full_like(target, 0.5)
    result = mppi(quadratic(target), mean, std, n_candidates=500, n_iters=10, temperature=0.01, generator=g)
    torch.testing.assert_close(result.mean, target, atol=0.05, rtol=0)
    assert torch.equal(result.std, std)


# ---------------------------------------------------------------------------------- BOOTS (continuous)
TARGET = 0.5


def target_reward_dynamics(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Identity dynamics, reward ``-||a - 0.5||^2``: the optimum is ``a_t = 0.5`` at every step."""
    return obs, -(action - TARGET).square().sum(-1), torch.zeros(obs.shape[0], dtype=torch.bool)


def target_q(obs: Tensor, action: Tensor) -> Tensor:
    return -(action - TARGET).square().sum(-1)


def wrong_policy(obs: Tensor) -> tuple[Tensor, Tensor]:
    """Mean action ``tanh(-0.5) = -0.46``, far from the optimum 0.5."""
    return torch.full((obs.shape[0], 2), -0.5, dtype=obs.dtype), torch.zeros(obs.shape[0], 2, dtype=obs.dtype)


@pytest.mark.parametrize(("k", "n_iters"), [(0, 5), (2, 12)])  # 2 dims (the paper's settings) or 6 dims
def test_cem_noise_finds_quadratic_q_optimum_despite_wrong_policy_mean(k: int, n_iters: int) -> None:
    planner = BootsPlanner(
        target_reward_dynamics, target_q, wrong_policy, horizon=k, action_dim=2, n_iters=n_iters,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    action = planner.act(torch.zeros(3, 1, dtype=F64))
    assert action.shape == (3, 2) and action.dtype == F64
    torch.testing.assert_close(action, torch.full_like(action, TARGET), atol=0.05, rtol=0)


def test_cem_action_finds_quadratic_optimum() -> None:
    obs = torch.zeros(2, 1, dtype=F64)
    kw = {"horizon": 2, "action_dim": 2, "generator": torch.Generator().manual_seed(4)}
    action = BootsPlanner(target_reward_dynamics, target_q, optimizer="cem_action", n_iters=12, **kw).act(obs)
    torch.testing.assert_close(action, torch.full_like(action, TARGET), atol=0.05, rtol=0)


@pytest.mark.parametrize("with_policy", [False, True])
def test_shooting_picks_the_best_candidate(with_policy: bool) -> None:
    """Candidates: uniform actions, or policy noise (``a = tanh(-0.5 + xi)``); the value of a
    candidate is ``-sum_t ||a_t - 0.5||^2`` over its k + 1 = 3 rows."""
    g = torch.Generator().manual_seed(5)
    obs = torch.zeros(2, 1, dtype=F64)
    candidates = torch.randn(2, 100, 3, 2, generator=g, dtype=F64)
    actions = torch.tanh(-0.5 + candidates) if with_policy else candidates.clamp(-1, 1)
    best = (actions - TARGET).square().sum(dim=(-1, -2)).argmin(dim=1)
    policy = wrong_policy if with_policy else None
    plan = plan_shooting(obs, target_reward_dynamics, target_q, policy, horizon=2, action_dim=2,
                         candidates=candidates if with_policy else actions)  # fmt: skip
    torch.testing.assert_close(plan.action, actions[torch.arange(2), best, 0])
    # drawn by the planner (k = 0: two dimensions), the best of 1000 is within 0.2 of the optimum
    # (the candidates' density there is >= 0.09, so P(none within 0.2) < exp(-1000 * 0.09 * 0.126))
    planner = BootsPlanner(target_reward_dynamics, target_q, policy, horizon=0, optimizer="shooting",
                           n_candidates=1000, action_dim=2, generator=g)  # fmt: skip
    assert (planner.act(obs) - TARGET).norm(dim=-1).max() < 0.2


def counter_dynamics(terminate_at: int, nan_after: bool = False):
    """State ``[t]``; ``r_t = 1 + t``; the transition from ``s_terminate_at`` terminates."""

    def dynamics(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        t = obs[:, 0]
        reward = 1.0 + t
        if nan_after:
            reward = torch.where(t > terminate_at, torch.nan, reward)
        return obs + 1.0, reward, t == terminate_at

    return dynamics


@pytest.mark.parametrize("nan_after", [False, True])
def test_done_masking_zeroes_later_rewards_and_terminal_q(nan_after: bool) -> None:
    obs = torch.zeros(2, 1, dtype=F64)
    zero_action = lambda t, s: torch.zeros(s.shape[0], 1, dtype=F64)  # noqa: E731
    q100 = lambda s: torch.full((s.shape[0],), 100.0, dtype=F64)  # noqa: E731
    dyn = counter_dynamics(1, nan_after)
    torch.testing.assert_close(bootstrapped_return(dyn, obs, zero_action, 4, q100), torch.full((2,), 3.0, dtype=F64))
    torch.testing.assert_close(
        bootstrapped_return(dyn, obs, zero_action, 4, q100, discount=0.5), torch.full((2,), 1.0 + 0.5 * 2.0, dtype=F64)
    )
    never = counter_dynamics(-1)
    expected = 1 + 2 * 0.5 + 3 * 0.25 + 4 * 0.125 + 100 * 0.0625
    assert bootstrapped_return(never, obs, zero_action, 4, q100, discount=0.5)[0].item() == pytest.approx(expected)
    # the planner's score is the masked return too
    plan = plan_cem_action(
        obs, dyn, lambda s, a: q100(s), horizon=4, mean=torch.zeros(2, 5, 1, dtype=F64),
        std=torch.ones(2, 5, 1, dtype=F64), n_candidates=8, n_iters=1, n_elites=2, generator=torch.Generator(),
    )  # fmt: skip
    torch.testing.assert_close(plan.score, torch.full((2,), 3.0, dtype=F64))


# ---------------------------------------------------------------------------------- batching
D, A = 3, 2


def small_nets(seed: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    torch.manual_seed(seed)
    make = lambda i, o: nn.Sequential(nn.Linear(i, 16), nn.Tanh(), nn.Linear(16, o)).to(F64)  # noqa: E731
    return make(D + A, D + 1), make(D, 2 * A), make(D + A, 1)


def callables(seed: int = 0):
    model, policy, critic = small_nets(seed)

    def dynamics(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = model(torch.cat([obs, action], -1))
        return obs + 0.1 * out[:, :D], out[:, D], out[:, D] > 0.8

    def policy_dist(obs: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_std = policy(obs).chunk(2, -1)
        return mu, log_std.clamp(-2, 1)

    def q_fn(obs: Tensor, action: Tensor) -> Tensor:
        return critic(torch.cat([obs, action], -1)).squeeze(-1)

    return dynamics, q_fn, policy_dist


@pytest.mark.parametrize("optimizer", ["cem_noise", "cem_action"])
def test_boots_batched_equals_looped_with_the_same_noise(optimizer: str) -> None:
    dynamics, q_fn, policy_dist = callables()
    E, k, C, iters = 4, 3, 64, 3
    obs = torch.randn(E, D, dtype=F64, generator=torch.Generator().manual_seed(5))
    planner = BootsPlanner(
        dynamics, q_fn, policy_dist, horizon=k, optimizer=optimizer, n_candidates=C, n_iters=iters, n_elites=8,
        action_dim=A, generator=torch.Generator().manual_seed(6),
    )  # fmt: skip
    batched = planner.act(obs)
    mean0, std0 = torch.zeros(E, k + 1, A, dtype=F64), torch.ones(E, k + 1, A, dtype=F64)
    noise = standard_normal(iters, C, mean0, torch.Generator().manual_seed(6))
    for e in range(E):
        kw = {"horizon": k, "mean": mean0[e : e + 1], "std": std0[e : e + 1], "n_candidates": C, "n_iters": iters}
        kw.update(n_elites=8, noise=noise[:, e : e + 1])
        if optimizer == "cem_noise":
            alone = plan_cem_noise(obs[e : e + 1], dynamics, q_fn, policy_dist, **kw)
        else:
            alone = plan_cem_action(obs[e : e + 1], dynamics, q_fn, **kw)
        torch.testing.assert_close(batched[e : e + 1], alone.action, rtol=0, atol=1e-12)


def test_exhaustive_batched_equals_looped() -> None:
    transitions, rewards, q_table = tabular_mdp(7)
    dynamics, q_all = one_hot_dynamics(transitions, rewards), functools.partial(q_lookup, q_table)
    obs = torch.eye(S, dtype=F64)[[0, 3, 1, 1, 2]]
    batched = plan_exhaustive(obs, dynamics, q_all, horizon=3, n_actions=N_ACTIONS)
    for e in range(obs.shape[0]):
        alone = plan_exhaustive(obs[e : e + 1], dynamics, q_all, horizon=3, n_actions=N_ACTIONS)
        assert torch.equal(batched.action[e : e + 1], alone.action)
        assert torch.equal(batched.sequence[e : e + 1], alone.sequence)


def test_mpc_batched_equals_looped_with_the_same_noise() -> None:
    dynamics, q_fn, policy_dist = callables(1)
    E, tau, C, iters = 3, 4, 64, 3
    obs = torch.randn(E, D, dtype=F64, generator=torch.Generator().manual_seed(8))
    planner = MPCPlanner(
        dynamics, q_fn, policy_dist, horizon=tau, n_candidates=C, n_iters=iters, n_elites=6,
        generator=torch.Generator().manual_seed(9),
    )  # fmt: skip
    batched = planner.act(obs)
    mean, std = policy_prior(obs, dynamics, policy_dist, tau + 1)
    noise = standard_normal(iters, C, mean, torch.Generator().manual_seed(9))
    for e in range(E):
        alone = plan_mpc(
            obs[e : e + 1], dynamics, q_fn, horizon=tau, mean=mean[e : e + 1], std=std[e : e + 1], squash=True,
            n_candidates=C, n_iters=iters, n_elites=6, noise=noise[:, e : e + 1],
        )  # fmt: skip
        torch.testing.assert_close(batched[e : e + 1], alone.action, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- warm start
def test_boots_warm_start_shift_and_reset_done() -> None:
    dynamics, q_fn, policy_dist = callables(2)
    E, k, C, iters, init_std = 2, 2, 32, 2, 0.7
    obs = torch.randn(E, D, dtype=F64, generator=torch.Generator().manual_seed(10))
    planner = BootsPlanner(
        dynamics, q_fn, policy_dist, horizon=k, n_candidates=C, n_iters=iters, n_elites=4, init_std=init_std,
        action_dim=A, generator=torch.Generator().manual_seed(11),
    )  # fmt: skip
    planner.reset(E)
    assert planner.mean is None
    replay = torch.Generator().manual_seed(11)
    mean, std = torch.zeros(E, k + 1, A, dtype=F64), torch.full((E, k + 1, A), init_std, dtype=F64)
    kw = {"horizon": k, "n_candidates": C, "n_iters": iters, "n_elites": 4}
    for _ in range(2):  # the second act starts from the shifted distribution
        plan = plan_cem_noise(obs, dynamics, q_fn, policy_dist, mean=mean, std=std, **kw,
                              noise=standard_normal(iters, C, mean, replay))  # fmt: skip
        torch.testing.assert_close(planner.act(obs), plan.action, rtol=0, atol=0)
        torch.testing.assert_close(planner.mean[:, :-1], plan.mean[:, 1:], rtol=0, atol=0)
        torch.testing.assert_close(planner.std[:, :-1], plan.std[:, 1:], rtol=0, atol=0)
        assert (planner.mean[:, -1] == 0).all() and (planner.std[:, -1] == init_std).all()
        mean, std = planner.mean, planner.std
    kept_mean, kept_std = planner.mean[1].clone(), planner.std[1].clone()
    planner.reset_done(torch.tensor([True, False]))
    assert (planner.mean[0] == 0).all() and (planner.std[0] == init_std).all()
    assert torch.equal(planner.mean[1], kept_mean) and torch.equal(planner.std[1], kept_std)
    with pytest.raises(ValueError, match="rows"):
        planner.act(obs[:1])
    planner.reset()
    assert planner.mean is None and planner.act(obs[:1]).shape == (1, A)


def test_mpc_warm_start_shifts_mean_and_reset_done_uses_fresh_mean() -> None:
    dynamics, _, _ = callables(3)
    E, tau, C, iters = 2, 3, 32, 2
    obs = torch.randn(E, D, dtype=F64, generator=torch.Generator().manual_seed(12))
    planner = MPCPlanner(
        dynamics, horizon=tau, n_candidates=C, n_iters=iters, n_elites=4, action_dim=A,
        generator=torch.Generator().manual_seed(13),
    )  # fmt: skip
    assert planner.warm_start
    replay = torch.Generator().manual_seed(13)
    fresh_mean, std = torch.zeros(E, tau, A, dtype=F64), torch.full((E, tau, A), 0.5, dtype=F64)
    kw = {"horizon": tau, "std": std, "squash": False, "n_candidates": C, "n_iters": iters, "n_elites": 4}
    first = plan_mpc(obs, dynamics, mean=fresh_mean, noise=standard_normal(iters, C, std, replay), **kw)
    torch.testing.assert_close(planner.act(obs), first.action, rtol=0, atol=0)
    planner.reset_done(torch.tensor([True, False]))
    mean = torch.cat([first.mean[:, 1:], torch.zeros(E, 1, A, dtype=F64)], dim=1)
    mean[0] = 0.0  # episode 0 ended: fresh mean
    second = plan_mpc(obs, dynamics, mean=mean, noise=standard_normal(iters, C, std, replay), **kw)
    torch.testing.assert_close(planner.act(obs), second.action, rtol=0, atol=0)


# ---------------------------------------------------------------------------------- MPC
def test_policy_prior_and_mpc_score_use_gamma_to_the_horizon() -> None:
    """s' = s + a, r = s (the state before the step), Q(s, a) = 10 s + a; policy mu(s) = -s/2."""
    dynamics = lambda s, a: (s + a, s[:, 0].clone(), torch.zeros(s.shape[0], dtype=torch.bool))  # noqa: E731
    policy_dist = lambda s: (-0.5 * s, torch.full_like(s, -1.0))  # noqa: E731
    q_fn = lambda s, a: 10 * s[:, 0] + a[:, 0]  # noqa: E731
    obs = torch.tensor([[1.0], [-2.0]], dtype=F64)
    mean, std = policy_prior(obs, dynamics, policy_dist, 3)
    s1 = obs + torch.tanh(-0.5 * obs)
    s2 = s1 + torch.tanh(-0.5 * s1)
    torch.testing.assert_close(mean, torch.stack([-0.5 * obs, -0.5 * s1, -0.5 * s2], dim=1))
    torch.testing.assert_close(std, torch.full_like(std, math.exp(-1.0)))
    # with std 0 every candidate is the mean: the score is J(mean)
    plan = plan_mpc(obs, dynamics, q_fn, horizon=2, mean=mean, std=torch.zeros_like(std), squash=True,
                    n_candidates=4, n_iters=1, n_elites=2, discount=0.9)  # fmt: skip
    expected = obs[:, 0] + 0.9 * s1[:, 0] + 0.81 * (10 * s2[:, 0] + torch.tanh(-0.5 * s2[:, 0]))
    torch.testing.assert_close(plan.score, expected)
    torch.testing.assert_close(plan.action, torch.tanh(-0.5 * obs))


# Pendulum-v1 in torch: state (th, thdot), obs [cos th, sin th, thdot], action in [-1, 1] = torque / 2.
MAX_SPEED, MAX_TORQUE, DT, G, M, L = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0


def angle_normalize(x: Tensor) -> Tensor:
    return ((x + math.pi) % (2 * math.pi)) - math.pi


def pendulum_step(obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    th, thdot = torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    u = (MAX_TORQUE * action[:, 0]).clamp(-MAX_TORQUE, MAX_TORQUE)
    cost = angle_normalize(th).square() + 0.1 * thdot.square() + 0.001 * u.square()
    new_thdot = (thdot + (3 * G / (2 * L) * torch.sin(th) + 3.0 / (M * L**2) * u) * DT).clamp(-MAX_SPEED, MAX_SPEED)
    new_th = th + new_thdot * DT
    next_obs = torch.stack([torch.cos(new_th), torch.sin(new_th), new_thdot], dim=-1)
    return next_obs, -cost, torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)


def test_torch_pendulum_matches_gymnasium() -> None:
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        th, thdot, a = rng.uniform(-np.pi, np.pi), rng.uniform(-8, 8), rng.uniform(-1, 1)
        env.state = np.array([th, thdot])
        gym_obs, gym_reward, *_ = env.step(np.array([2.0 * a]))
        obs = torch.tensor([[math.cos(th), math.sin(th), thdot]], dtype=F64)
        next_obs, reward, _ = pendulum_step(obs, torch.tensor([[a]], dtype=F64))
        np.testing.assert_allclose(next_obs[0].numpy(), gym_obs, atol=1e-5)
        assert float(reward) == pytest.approx(float(gym_reward), abs=1e-5)


def pendulum_return(act, n_steps: int = 200) -> Tensor:
    """Returns of 3 episodes stepped together from fixed starts (down, horizontal, nearly down)."""
    th = torch.tensor([math.pi, math.pi / 2, -2.8])
    obs = torch.stack([torch.cos(th), torch.sin(th), torch.zeros(3)], dim=-1)
    total = torch.zeros(3)
    for _ in range(n_steps):
        obs, reward, _ = pendulum_step(obs, act(obs))
        total += reward
    return total


def test_plain_cem_mpc_with_true_model_beats_random_actions_on_pendulum() -> None:
    planner = MPCPlanner(
        pendulum_step, horizon=15, n_candidates=200, n_iters=4, n_elites=20, discount=1.0, action_dim=1,
        generator=torch.Generator().manual_seed(14),
    )  # fmt: skip
    planner.reset(3)
    mpc = pendulum_return(planner.act)
    g = torch.Generator().manual_seed(15)
    random = pendulum_return(lambda obs: 2 * torch.rand(obs.shape[0], 1, generator=g) - 1)
    # random actions: about -1000 to -1500 from these starts; a swing-up MPC: above -400
    assert mpc.mean() > random.mean() + 500, (mpc, random)
    assert (mpc > -500).all(), mpc


def test_mppi_mpc_runs_without_q_or_policy() -> None:
    planner = MPCPlanner(pendulum_step, optimizer="mppi", horizon=10, n_candidates=100, n_iters=2, action_dim=1,
                         temperature=1.0, generator=torch.Generator().manual_seed(16))  # fmt: skip
    obs = torch.tensor([[1.0, 0.0, 0.0]])  # upright: staying is optimal
    action = planner.act(obs)
    assert action.shape == (1, 1) and action.abs().item() < 0.5


# ---------------------------------------------------------------------------------- library modules
def test_planners_with_library_modules_keep_parameters_and_build_no_graph() -> None:
    """The library's actor, twin critic and ensemble fit the callable contracts; planning changes
    no parameter and returns tensors without a graph (DESIGN principle 8)."""
    torch.manual_seed(0)
    actor, critic = TanhGaussianActor(D, A, hidden=(16, 16)), EnsembleQ(D, A, hidden=(16, 16))
    model = EnsembleDynamics(D, A, n_members=3, n_elites=2, hidden=(16, 16), weight_decays=(0.0, 0.0, 0.0))
    modules = (actor, critic, model)
    before = [p.clone() for m in modules for p in m.parameters()]
    dynamics = functools.partial(model.transition, mode="mean")
    q_fn = lambda s, a: critic(s, a).min(dim=0).values  # noqa: E731
    obs = torch.randn(2, D)
    boots = BootsPlanner(dynamics, q_fn, actor, n_candidates=40, n_elites=5, action_dim=A)
    mpc = MPCPlanner(dynamics, q_fn, actor, n_candidates=40, n_elites=5)
    for planner in (boots, mpc):
        action = planner.act(obs)
        assert action.shape == (2, A) and not action.requires_grad and action.abs().max() <= 1
    after = [p for m in modules for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.grad is None for p in after)


# ---------------------------------------------------------------------------------- validation
def _dyn(obs, action):  # never called
    raise AssertionError


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": -1}, "horizon"),
        ({"horizon": 1.5}, "horizon"),
        ({"n_elites": 600}, "n_elites"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"n_iters": 0}, "n_iters"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"init_std": 0.0}, "init_std"),
        ({"discount": 1.2}, "discount"),
        ({"optimizer": "mcts"}, "optimizer"),
        ({"optimizer": "exhaustive"}, "n_actions"),
        ({"n_actions": 3}, "n_actions"),
        ({"action_dim": None}, "action_dim"),
        ({"policy_dist": None}, "policy_dist"),
    ],
)
def test_boots_argument_errors_name_the_field(kwargs: dict, field: str) -> None:
    args = {"policy_dist": wrong_policy, "action_dim": 2, **kwargs}
    with pytest.raises(ConfigError, match=field):
        BootsPlanner(_dyn, target_q, **args)


def test_boots_unknown_optimizer_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="cem_noise.*cem_action.*shooting.*exhaustive"):
        BootsPlanner(_dyn, target_q, wrong_policy, optimizer="mcts", action_dim=2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"horizon": 0}, "horizon"),
        ({"optimizer": "ilqr"}, "optimizer"),
        ({"action_dim": None}, "action_dim"),
        ({"n_elites": 300}, "n_elites"),
        ({"temperature": 0.0}, "temperature"),
        ({"init_std": -1.0}, "init_std"),
    ],
)
def test_mpc_argument_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        MPCPlanner(_dyn, **{"action_dim": 1, **kwargs})
