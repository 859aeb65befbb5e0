"""Unit tests (T0) for the 1-D piecewise-linear MDPs of paper 000 (BOOTS): the exact function type,
the Bellman solver against brute force, Theorem 4.2 (Eq. 2 and 3), the RAND/SEMI-RAND generators,
the ``pwl/...`` TorchRL envs, the CLI and the figure script.

Oracles: closed forms (2^k s mod 1, crossings of lines), dynamic programming on a dyadic grid that
Definition 4.1's dynamics map onto itself (so it is exact at the grid points), and exhaustive search
over all 2^T action sequences (exact for deterministic dynamics).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torchrl.envs.utils import check_env_specs

import lightning_mbrl  # noqa: F401  the ids must be known after importing the package
from lightning_mbrl import keys
from lightning_mbrl.envs import env_spec, make_env
from lightning_mbrl.envs.piecewise_linear.algebra import PiecewiseLinear as PL
from lightning_mbrl.envs.piecewise_linear.algebra import upper_envelope
from lightning_mbrl.envs.piecewise_linear.cli import main
from lightning_mbrl.envs.piecewise_linear.mdps import (
    PiecewiseLinearMDP,
    definition_4_1,
    make_mdp,
    rand_mdp,
    semi_rand_mdp,
)
from lightning_mbrl.envs.piecewise_linear.solver import (
    binary_digit,
    def41_optimal_return,
    def41_policy,
    def41_value,
    solve,
)
from lightning_mbrl.envs.pwl_env import PiecewiseLinearEnv, optimal_return
from lightning_mbrl.errors import ConfigError

RNG_POINTS = np.random.default_rng(12345).uniform(0.0, 1.0, size=2000)


# ============================================================================ oracles
def def41_grid_dp(H: int, T: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T-step DP of Definition 4.1 on s = k / 2^bits (bits >= H): both maps send the grid onto
    itself exactly, so V_T and Q_T are exact at these points. Returns (s, V_T, Q_T [2, N])."""
    n = 2**bits
    k = np.arange(n)
    s = k / n
    gamma = 1 - 1 / H
    drift = 2 * (gamma ** (H - 1) - gamma**H)
    successor = [(2 * k) % n, (2 * k + 2 ** (bits - H)) % n]
    reward = [(s >= 0.5).astype(float), (s >= 0.5) - drift]
    v = np.zeros(n)
    q = np.zeros((2, n))
    for _ in range(T):
        q = np.stack([reward[a] + gamma * v[successor[a]] for a in range(2)])
        v = q.max(0)
    return s, v, q


def exhaustive_q(mdp: PiecewiseLinearMDP, T: int, s: np.ndarray) -> np.ndarray:
    """Q_T(s, a) [A, N] by trying all A^T action sequences from every s."""
    seqs = np.array(list(itertools.product(range(mdp.num_actions), repeat=T)))  # [K, T]
    state = np.repeat(s[:, None], len(seqs), axis=1)  # [N, K]
    ret = np.zeros_like(state)
    for t in range(T):
        a = np.broadcast_to(seqs[:, t], state.shape)
        ret += mdp.gamma**t * np.choose(a, [r(state) for r in mdp.rewards])
        state = np.choose(a, [f(state) for f in mdp.dynamics])
    return np.stack([ret[:, seqs[:, 0] == a].max(axis=1) for a in range(mdp.num_actions)])


# ============================================================================ the function type
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_doubling_map_composed_k_times_has_2_to_the_k_pieces(k: int) -> None:
    doubling = PL.linear_mod1(2.0, 0.0)
    g = PL.linear(1.0, 0.0)
    for _ in range(k):
        g = g.compose(doubling)
    assert g.num_pieces == 2**k
    np.testing.assert_array_equal(g.x, np.arange(2**k + 1) / 2**k)
    np.testing.assert_allclose(g(RNG_POINTS), np.mod(np.ldexp(RNG_POINTS, k), 1.0), atol=1e-12)


def test_linear_mod1_pieces_and_values() -> None:
    kappa = 2.0**-4
    f = PL.linear_mod1(2.0, kappa)
    assert f.num_pieces == 3  # Definition 4.1: 2s + kappa mod 1 has three pieces
    np.testing.assert_array_equal(f.x, [0.0, (1 - kappa) / 2, (2 - kappa) / 2, 1.0])
    for slope, intercept in [(2.0, kappa), (-2.5, 0.3), (3.0, -0.2), (0.5, 0.7)]:
        g = PL.linear_mod1(slope, intercept)
        np.testing.assert_allclose(g(RNG_POINTS), np.mod(slope * RNG_POINTS + intercept, 1.0), atol=1e-12)
        lo, hi = g.image_bounds()
        assert 0.0 <= lo and hi <= 1.0 + 1e-15  # limits reach 1 up to round-off
        assert np.all(g.v[g.m > 0] < 1.0)  # a rising piece attains its start value
    # A falling piece starts just below 1: right-continuous, so it differs from the map (0) only
    # at the crossing point itself.
    falling = PL.linear_mod1(-2.5, 0.3)
    assert falling.num_pieces == 4 and falling.v[1] == 1.0 and falling(0.12 + 1e-9) > 0.99


def test_max_of_two_crossing_lines_has_two_pieces() -> None:
    up, down = PL.linear(1.0, 0.0), PL.linear(-1.0, 1.0)
    top, argmax = upper_envelope([up, down])
    assert top.num_pieces == 2 and argmax.num_pieces == 2
    np.testing.assert_array_equal(top.x, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(argmax.v, [1.0, 0.0])  # 1 - s wins left of 1/2
    # Crossing inside a piece of a piecewise function: max(2s, 0.5) kinks at 1/4.
    kink = PL.linear(2.0, 0.0).maximum(PL.constant(0.5))
    np.testing.assert_allclose(kink.x, [0.0, 0.25, 1.0])
    np.testing.assert_allclose(kink(RNG_POINTS), np.maximum(2 * RNG_POINTS, 0.5), atol=1e-15)
    # Lines that do not cross inside [0, 1): one piece, one action.
    top, argmax = upper_envelope([PL.linear(1.0, 0.0), PL.linear(1.0, 0.25)])
    assert top.num_pieces == 1 and argmax.num_pieces == 1 and argmax.v[0] == 1.0


def test_ties_go_to_the_lower_action_and_do_not_add_pieces() -> None:
    f = PL.interpolate([0.0, 0.3, 1.0], [0.2, 0.9, 0.1])
    top, argmax = upper_envelope([f, f * 1.0, f - 1.0])
    assert argmax.num_pieces == 1 and argmax.v[0] == 0.0
    assert top.num_pieces == 2


def test_collinear_continuous_pieces_merge_and_jumps_do_not() -> None:
    assert PL.interpolate([0.0, 0.25, 0.5, 1.0], [0.0, 0.25, 0.5, 1.0]).num_pieces == 1
    f = PL.interpolate([0.0, 0.4, 1.0], [0.1, 0.8, 0.3])
    assert (f - f).num_pieces == 1 and np.all((f - f).v == 0)
    step = PL.step([0.0, 0.5, 1.0], [0.0, 1.0])
    assert step.num_pieces == 2 and not step.continuous_at[0]
    # Same slope, jump at 1/2: still two pieces; the jump removed by adding a step: one piece.
    jumpy = PL.linear(1.0, 0.0) + step
    assert jumpy.num_pieces == 2
    assert (jumpy - step).num_pieces == 1


def test_random_compositions_sums_and_integrals_match_pointwise_evaluation() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        knots = np.concatenate(([0.0], np.sort(rng.uniform(size=4)), [1.0]))
        outputs = rng.uniform(0.0, 1.0, size=6)
        f = PL.interpolate(knots, outputs)  # maps into [0, 1), rises and falls
        g_breaks = np.concatenate(([0.0], np.sort(rng.uniform(size=6)), [1.0]))
        g = PL(g_breaks, rng.normal(size=7), rng.normal(size=7))  # jumps everywhere
        s = RNG_POINTS
        np.testing.assert_allclose(g.compose(f)(s), g(f(s)), atol=1e-12)
        np.testing.assert_allclose((g + f)(s), g(s) + f(s), atol=1e-12)
        np.testing.assert_allclose((2.5 * g)(s), 2.5 * g(s), atol=1e-12)
        np.testing.assert_allclose(g.maximum(f)(s), np.maximum(g(s), f(s)), atol=1e-12)
        # Exact integral of a continuous interpolant: the trapezoid rule on its knots.
        assert f.integral() == pytest.approx(np.trapezoid(outputs, knots), abs=1e-14)
    assert PL.linear_mod1(2.0, 0.0).integral() == 0.5


def test_evaluate_torch_matches_numpy() -> None:
    f = semi_rand_mdp(3).dynamics[1]
    s = torch.from_numpy(RNG_POINTS)
    out = f(s)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), f(RNG_POINTS))
    assert f(s.float()).dtype == torch.float32


def test_constructor_rejects_bad_breakpoints() -> None:
    with pytest.raises(ValueError, match="breakpoints"):
        PL([0.0, 0.6, 0.5, 1.0], [0, 0, 0], [0, 0, 0])
    with pytest.raises(ValueError, match="breakpoints"):
        PL([0.1, 1.0], [0], [0])


# ============================================================================ solver vs brute force
@pytest.mark.parametrize("H", [2, 3, 4, 5])
def test_def41_solver_equals_grid_dp_exactly(H: int) -> None:
    T = 2 * H
    s, v, q = def41_grid_dp(H, T, bits=H + 8)
    sol = solve(definition_4_1(H), T)
    np.testing.assert_allclose(sol.value(s), v, rtol=0, atol=1e-12)
    for a in range(2):
        np.testing.assert_allclose(sol.q[a](s), q[a], rtol=0, atol=1e-12)
    # V_T is piecewise constant with dyadic breakpoints: on a grid holding them all, its exact
    # integral is the grid mean.
    bits = T + H + 2
    assert np.all(np.ldexp(sol.value.x, bits) % 1 == 0) and np.all(sol.value.m == 0)
    _, v_fine, _ = def41_grid_dp(H, T, bits=bits)
    assert sol.optimal_return == pytest.approx(v_fine.mean(), abs=1e-12)


@pytest.mark.parametrize("method", ["rand", "semi-rand"])
@pytest.mark.parametrize("reward", ["state", "next_state"])
def test_random_mdp_solver_equals_exhaustive_search(method: str, reward: str) -> None:
    s = RNG_POINTS[:150]
    for seed in range(4):
        mdp = make_mdp(method, seed=seed, horizon=6, reward=reward)
        sol = solve(mdp)
        brute = exhaustive_q(mdp, 6, s)
        for a in range(2):
            np.testing.assert_allclose(sol.q[a](s), brute[a], rtol=0, atol=1e-9)
        np.testing.assert_allclose(sol.value(s), brute.max(0), rtol=0, atol=1e-9)
        gap = brute[1] - brute[0]
        clear = np.abs(gap) > 1e-9
        np.testing.assert_array_equal(sol.policy(s)[clear], (gap > 0)[clear])


def test_horizon_10_values_equal_exhaustive_search() -> None:
    """The paper's horizon on one SEMI-RAND MDP (1024 sequences per state)."""
    mdp = semi_rand_mdp(0)
    sol = solve(mdp)
    s = RNG_POINTS[:60]
    brute = exhaustive_q(mdp, 10, s)
    np.testing.assert_allclose(np.stack([q(s) for q in sol.q]), brute, rtol=0, atol=1e-9)
    assert sol.horizon == 10 and sol.policy_pieces > 100


def test_nonstationary_policies_and_values_are_consistent() -> None:
    """V_h(s) = r(s, pi_h(s)) + gamma V_{h-1}(f(s, pi_h(s))) at every h (Bellman with the argmax)."""
    mdp = rand_mdp(5)
    sol = solve(mdp)
    s = RNG_POINTS
    for h in range(1, sol.horizon + 1):
        a = sol.policies[h - 1](s).astype(int)
        r = np.choose(a, [r(s) for r in mdp.rewards])
        s_next = np.choose(a, [f(s) for f in mdp.dynamics])
        np.testing.assert_allclose(sol.values[h](s), r + mdp.gamma * sol.values[h - 1](s_next), atol=1e-9)


# ============================================================================ Theorem 4.2
@pytest.mark.parametrize("H", [4, 5, 6, 7, 8])
def test_theorem_4_2_policy_has_2_to_the_H_plus_1_pieces_and_is_eq_2(H: int) -> None:
    sol = solve(definition_4_1(H))  # T = 2H, Figure 2c's truncation
    assert sol.horizon == 2 * H
    assert sol.policy_pieces == 2 ** (H + 1)
    np.testing.assert_array_equal(sol.policy.x, np.arange(2 ** (H + 1) + 1) / 2 ** (H + 1))
    midpoints = (sol.policy.x[:-1] + sol.policy.x[1:]) / 2
    np.testing.assert_array_equal(sol.policy.v, def41_policy(midpoints, H))
    assert sol.policy.v[0] == 1 and sol.policy.v[1] == 0  # bit H+1 is 0 on the first interval: act 1


#: Smallest truncation T whose greedy policy is Eq. (2), measured (docs/piecewise_linear.md has H <= 10).
DEF41_MIN_EXACT_T = {4: 6, 5: 8, 6: 9}


@pytest.mark.parametrize("H", sorted(DEF41_MIN_EXACT_T))
def test_def41_truncation_horizon_for_an_exact_policy(H: int) -> None:
    """The greedy policy of Q_T is Eq. (2) from T = DEF41_MIN_EXACT_T[H] on (checked up to 3H,
    which includes the default 2H), and not at the T just below."""
    s = (np.arange(2 ** (H + 4)) + 0.5) / 2 ** (H + 4)
    t_min = DEF41_MIN_EXACT_T[H]
    for T in (t_min, 2 * H, 3 * H):
        np.testing.assert_array_equal(solve(definition_4_1(H), T).policy(s), def41_policy(s, H))
    assert not np.array_equal(solve(definition_4_1(H), t_min - 1).policy(s), def41_policy(s, H))


@pytest.mark.parametrize("H", [4, 5, 6])
def test_eq_3_is_the_infinite_horizon_value(H: int) -> None:
    # 400 backups: gamma^400 * H < 1e-20, so the grid DP is V* at the grid points to round-off.
    s, v_star, q_star = def41_grid_dp(H, 400, bits=H + 7)
    np.testing.assert_allclose(def41_value(s, H), v_star, rtol=0, atol=1e-12)
    np.testing.assert_array_equal((q_star[1] > q_star[0]).astype(int), def41_policy(s, H))
    gamma = 1 - 1 / H
    # The action gap of Q* is gamma^(H-1) / H (half the drift): with |Q_T - Q*| <= gamma^T max|V*|,
    # any T with 2 gamma^T max|V*| below it gives Eq. (2) (the docs' provable truncation).
    assert np.abs(q_star[1] - q_star[0]).min() == pytest.approx(gamma ** (H - 1) / H, abs=1e-12)
    # The 2H-term exact solution is within gamma^T max|V*| of Eq. (3) (Bellman contraction).
    sol = solve(definition_4_1(H))
    err = np.abs(sol.value(s) - v_star).max()
    assert 0 < err <= gamma**sol.horizon * np.abs(v_star).max()
    # Closed-form optimal return: each digit has mean 1/2. On the grid of 2^-bits the digits past
    # `bits` are 0, which changes only the term h = bits (2 g^(bits-1) s^(bits+1)) by g^(bits-1).
    bits = 16
    grid_mean = def41_value(np.arange(2**bits) / 2**bits, H).mean()
    assert def41_optimal_return(H) == pytest.approx(grid_mean + gamma ** (bits - 1), abs=1e-12)


def test_def41_value_reads_binary_digits() -> None:
    assert binary_digit(0.75, 1) == 1 and binary_digit(0.75, 2) == 1 and binary_digit(0.75, 3) == 0
    np.testing.assert_array_equal(def41_policy([0.0, 2.0**-5, 2.0**-6], 4), [1, 0, 1])


# ============================================================================ generators
def test_rand_generator_constraints() -> None:
    kink_counts = set()
    for seed in range(200):
        mdp = rand_mdp(seed)
        assert mdp.horizon == 10 and mdp.gamma == 1.0 and mdp.num_actions == 2
        for f, r in zip(mdp.dynamics, mdp.rewards):
            assert 2 <= f.num_pieces <= 4  # at most four pieces
            assert f.continuous_at.all()  # kinks joined by straight lines
            lo, hi = f.image_bounds()
            assert 0.0 <= lo and hi < 1.0
            np.testing.assert_array_equal(r(RNG_POINTS), RNG_POINTS)  # r(s, a) = s
            kink_counts.add(f.num_pieces - 1)
        # f(., 0) and f(., 1) are drawn independently: different kinks.
        assert not np.array_equal(mdp.dynamics[0].x, mdp.dynamics[1].x)
    assert kink_counts == {1, 2, 3}
    np.testing.assert_array_equal(rand_mdp(7).dynamics[1].v, rand_mdp(7).dynamics[1].v)
    assert not np.array_equal(rand_mdp(7).dynamics[1].v, rand_mdp(8).dynamics[1].v)


def test_semi_rand_generator_constraints() -> None:
    knots = np.array([0.0, 1 / 3, 2 / 3, 1.0])
    for seed in range(200):
        mdp = semi_rand_mdp(seed, reward="next_state")
        for f, r in zip(mdp.dynamics, mdp.rewards):
            assert f.num_pieces == 3 and f.continuous_at.all()
            np.testing.assert_array_equal(f.x, knots)  # the same kinks for both actions
            outputs = np.append(f.v, f.end_values[-1])  # values at 0, 1/3, 2/3 and the limit at 1
            assert outputs[0] >= 0.7 and outputs[2] >= 0.7 and outputs[1] < 0.3 and outputs[3] < 0.3
            assert np.all(np.abs(f.m) >= 1.2 - 1e-12)
            np.testing.assert_array_equal(r(RNG_POINTS), f(RNG_POINTS))  # reward = next state here


def test_mdp_rejects_dynamics_leaving_the_unit_interval() -> None:
    bad = PL.linear(1.0, 0.5)  # reaches 1.5
    with pytest.raises(ValueError, match="leaves"):
        PiecewiseLinearMDP("bad", (bad,), (PL.constant(0.0),), 1.0, 3)


# ============================================================================ TorchRL env
ENV_IDS = ["pwl/def41-H4", "pwl/rand-3", "pwl/semi-rand-5"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_specs(env_id: str) -> None:
    torch.manual_seed(0)
    env = make_env(env_id, seed=0)
    check_env_specs(env)
    check_env_specs(env.base_env)
    assert env.observation_spec[keys.OBSERVATION].shape == (1,)
    assert env.observation_spec[keys.OBSERVATION].dtype == torch.float32
    cartpole = make_env("CartPole-v1").base_env.action_spec
    ours = env.base_env.action_spec
    assert (type(ours), ours.shape, ours.dtype, ours.space.n) == (type(cartpole), cartpole.shape, cartpole.dtype, 2)
    spec = env_spec(env_id)
    assert (spec.observation_dim, spec.action_dim, spec.num_actions) == (1, 1, 2)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_steps_are_f_and_r(env_id: str) -> None:
    torch.manual_seed(0)
    env = make_env(env_id, seed=1)
    base: PiecewiseLinearEnv = env.base_env
    mdp = base.mdp
    td = env.reset()
    gen = torch.Generator().manual_seed(0)
    for _ in range(25):
        s = base.state.numpy()
        a = int(torch.randint(0, 2, (), generator=gen))
        assert td.get(keys.OBSERVATION).item() == np.float32(s[0])
        out = env.step(td.set(keys.ACTION, torch.tensor(a)))
        np.testing.assert_allclose(base.state.numpy(), mdp.dynamics[a](s), rtol=0, atol=1e-15)
        assert out.get(keys.REWARD).item() == np.float32(mdp.rewards[a](s)[0])
        td = env.step_mdp(out)
        if out.get(keys.DONE).item():
            td = env.reset()


def test_env_horizon_terminates_random_mdps_and_truncates_def41() -> None:
    rand = make_env("pwl/rand-3", seed=0).rollout(25, break_when_any_done=False)
    terminated = rand.get(keys.TERMINATED).squeeze(-1)
    assert terminated.nonzero().squeeze(-1).tolist() == [9, 19]  # after steps 10 and 20
    assert not rand.get(keys.TRUNCATED).any()
    assert rand.get((keys.NEXT, keys.STEP_COUNT)).squeeze(-1).tolist()[8:12] == [9, 10, 1, 2]
    early = make_env("pwl/semi-rand-3", seed=0, max_episode_steps=4).rollout(9, break_when_any_done=False)
    assert early.get(keys.TRUNCATED).squeeze(-1).nonzero().squeeze(-1).tolist() == [3, 7]
    assert not early.get(keys.TERMINATED).any()
    def41 = make_env("pwl/def41-H3", seed=0).rollout(13, break_when_any_done=False)
    assert def41.get(keys.TRUNCATED).squeeze(-1).nonzero().squeeze(-1).tolist() == [5, 11]  # time limit 2H
    assert not def41.get(keys.TERMINATED).any()


@pytest.mark.parametrize("env_id", ["pwl/semi-rand-2", "pwl/rand-132", "pwl/def41-H4"])
def test_optimal_nonstationary_policy_earns_v_t_in_the_env(env_id: str) -> None:
    """Acting by pi_{T-t} on the exact state earns V_T(s0) (undiscounted) in every episode, and the
    best expected return is its integral."""
    env = make_env(env_id, seed=4)
    base: PiecewiseLinearEnv = env.base_env
    T = base.episode_steps
    sol = solve(base.mdp, T, gamma=1.0)

    def act(td):
        t = int(td.get(keys.STEP_COUNT))
        return td.set(keys.ACTION, torch.tensor(int(sol.policies[T - 1 - t](base.state.numpy())[0])))

    for _ in range(8):
        td = env.reset()
        s0 = base.state.numpy()
        rollout = env.rollout(T, act, auto_reset=False, tensordict=td)
        assert rollout.get(keys.DONE)[-1].item() and rollout.shape == (T,)
        episode_return = rollout.get(keys.NEXT_EPISODE_RETURN)[-1].item()
        assert episode_return == pytest.approx(sol.value(s0)[0], abs=1e-5)
    assert optimal_return(env_id) == pytest.approx(sol.optimal_return, abs=1e-12)


def test_optimal_return_follows_time_limit_and_kwargs() -> None:
    full = optimal_return("pwl/rand-3")
    assert optimal_return("pwl/rand-3", max_episode_steps=4) == pytest.approx(
        solve(rand_mdp(3), 4).optimal_return)
    assert optimal_return("pwl/rand-3", max_episode_steps=50) == full
    assert optimal_return("pwl/rand-3", reward="next_state") == pytest.approx(
        solve(rand_mdp(3, reward="next_state")).optimal_return)
    # Each fixed action, evaluated exactly (V^a_h = r_a + V^a_{h-1} o f_a), earns less on average.
    mdp = rand_mdp(3)
    for f, r in zip(mdp.dynamics, mdp.rewards):
        v = PL.constant(0.0)
        for _ in range(10):
            v = r + v.compose(f)
        assert v.integral() < full - 1e-3
    with pytest.raises(ConfigError, match="pwl ids"):
        optimal_return("pwl/nope")


def test_make_env_batched() -> None:
    env = make_env("pwl/semi-rand-1", num_envs=2, seed=3)
    try:
        assert env.batch_size == torch.Size([2])
        rollout = env.rollout(12, break_when_any_done=False)
        assert rollout.batch_size == torch.Size([2, 12])
        obs = rollout.get(keys.OBSERVATION)
        assert obs.dtype == torch.float32 and obs.shape == (2, 12, 1)
        assert not torch.equal(obs[0], obs[1])
        assert rollout.get(keys.TERMINATED).squeeze(-1)[:, 9].all()
    finally:
        env.close()


@pytest.mark.parametrize(
    "env_id, kwargs, match",
    [
        ("pwl/nope", {}, "pwl ids"),
        ("pwl/def41-H0", {}, "H"),
        ("pwl/rand-x", {}, "pwl ids"),
        ("pwl/semi-rand-", {}, "pwl ids"),
        ("pwl/def41-H4", {"horizon": 3}, "env_kwargs"),
        ("pwl/rand-1", {"horizon": 0}, "horizon"),
        ("pwl/rand-1", {"reward": "action"}, "reward"),
        ("pwl/rand-1", {"colour": 1}, "colour"),
    ],
)
def test_bad_pwl_ids_raise_config_error(env_id: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_env(env_id, **kwargs)
    with pytest.raises(ConfigError, match=match):
        env_spec(env_id, **kwargs)


# ============================================================================ CLI and figures
def test_cli_solve_def41(capsys: pytest.CaptureFixture) -> None:
    assert main(["solve", "--method", "def41", "--H", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    sol = solve(definition_4_1(4))
    assert out["policy_pieces"] == 32 == out["theorem_4_2_policy_pieces"]
    assert out["horizon"] == 8 and out["q_pieces"] == sol.q_pieces
    assert out["optimal_return"] == pytest.approx(sol.optimal_return)
    assert out["optimal_return_infinite_horizon"] == pytest.approx(def41_optimal_return(4))
    assert abs(out["optimal_return"] - out["optimal_return_infinite_horizon"]) <= out["value_truncation_error_bound"]


def test_cli_solve_and_stats_random(capsys: pytest.CaptureFixture) -> None:
    assert main(["solve", "--method", "semi-rand", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    sol = solve(semi_rand_mdp(3))
    assert out["policy_pieces"] == sol.policy_pieces and out["q_pieces"] == sol.q_pieces
    assert main(["stats", "--method", "rand", "--n", "12", "--seed", "5", "--horizon", "6"]) == 0
    stats = json.loads(capsys.readouterr().out)
    pieces = np.array([solve(rand_mdp(s, horizon=6)).policy_pieces for s in range(5, 17)])
    assert stats["fraction_policy_pieces_gt_100"] == pytest.approx((pieces > 100).mean())
    assert sum(stats["policy_pieces_histogram"].values()) == 12
    assert stats["policy_pieces_max"] == pieces.max()


@pytest.mark.parametrize(
    "argv, field",
    [
        (["solve", "--method", "unknown"], "--method"),
        (["solve", "--method", "def41", "--H", "0"], "H must be an integer >= 1"),
        (["stats", "--method", "rand", "--n", "-3"], "n must be an integer >= 0"),
        (["stats", "--method", "def41"], "--method"),
        (["solve", "--method", "rand", "--reward", "x"], "--reward"),
    ],
)
def test_cli_bad_arguments_exit_2(argv: list[str], field: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and field in error_lines[0]


def test_cli_module_entry_point() -> None:
    command = [sys.executable, "-m", "lightning_mbrl.envs.piecewise_linear", "solve", "--method", "def41", "--H", "5"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr
    assert json.loads(proc.stdout)["policy_pieces"] == 64


def test_figure_script_writes_pngs(tmp_path) -> None:
    from benchmarks import pwl_figures  # needs matplotlib

    paths = pwl_figures.main(["--out", str(tmp_path), "--H", "4"])
    assert [p.name for p in paths] == ["figure1.png", "figure2.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
