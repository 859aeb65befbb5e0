"""Exact solutions of the 1-D piecewise-linear MDPs: :func:`solve` (finite-horizon Q*, V*, pi* by
Bellman backups on piecewise-linear functions) and the closed forms of Theorem 4.2 for
Definition 4.1 (Eq. 2 and 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_mbrl.envs.piecewise_linear.algebra import PiecewiseLinear, upper_envelope
from lightning_mbrl.envs.piecewise_linear.mdps import PiecewiseLinearMDP


@dataclass(frozen=True)
class Solution:
    """Exact optimal values of a horizon-``T`` problem (``Q_0 = V_0 = 0``):

        Q_h(s, a) = r(s, a) + gamma * V_{h-1}(f(s, a)),   V_h = max_a Q_h,   h = 1..T

    ``values[h]`` is ``V_h`` (h = 0..T), ``policies[h - 1]`` is ``argmax_a Q_h`` (the action to take
    with h steps to go), ``q[a]`` is ``Q_T(., a)``. The optimal policy of the finite-horizon
    problem is non-stationary: at step t (0-based) act by ``policies[T - 1 - t]``.
    """

    mdp: PiecewiseLinearMDP
    horizon: int
    gamma: float
    q: tuple[PiecewiseLinear, ...]
    values: tuple[PiecewiseLinear, ...]
    policies: tuple[PiecewiseLinear, ...]

    @property
    def value(self) -> PiecewiseLinear:
        """``V_T``."""
        return self.values[-1]

    @property
    def policy(self) -> PiecewiseLinear:
        """``argmax_a Q_T(., a)``: the first action of an optimal T-step plan."""
        return self.policies[-1]

    @property
    def q_pieces(self) -> list[int]:
        """Pieces of ``Q_T(., a)`` for each action a."""
        return [q.num_pieces for q in self.q]

    @property
    def policy_pieces(self) -> int:
        """Maximal intervals of constant ``argmax_a Q_T``."""
        return self.policy.num_pieces

    @property
    def optimal_return(self) -> float:
        """``E_{s ~ U[0, 1)} V_T(s)``: exact integral of the piecewise-linear ``V_T``."""
        return self.value.integral()


def def41_horizon(H: int) -> int:
    """Default truncation of Definition 4.1's infinite-horizon problem: T = 2H backups, as in
    Figure 2c.

    Policy: the greedy policy of Q_T is exactly Eq. (2) from T = 6, 8, 9, 11, 13, 14, 15 on for
    H = 4..10 (measured), so 2H suffices there. A proof for any H: |Q_T - Q*| <= gamma^T max|V*|
    (Bellman contraction from V_0 = 0) and the action gap of Q* is gamma^(H-1) / H, so every T
    with 2 gamma^T H < gamma^(H-1) / H gives Eq. (2) (T >= 15 for H = 4, 44 for H = 8).
    Value: |V_T - V*| <= gamma^T max|V*| <= gamma^T H. See docs/piecewise_linear.md."""
    return 2 * H


def solve(mdp: PiecewiseLinearMDP, horizon: int | None = None, *, gamma: float | None = None) -> Solution:
    """Exact ``Q_T``, ``V_h`` and greedy policies by T Bellman backups on piecewise-linear functions.

    ``horizon`` defaults to the MDP's own (10 for RAND/SEMI-RAND) or, for Definition 4.1,
    :func:`def41_horizon`; ``gamma`` defaults to the MDP's. ``gamma V_{h-1}`` is formed before
    composing (fewer pieces to scale)."""
    if horizon is None:
        horizon = mdp.horizon if mdp.horizon is not None else def41_horizon(round(1 / (1 - mdp.gamma)))
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    gamma = mdp.gamma if gamma is None else gamma
    values, policies = [PiecewiseLinear.constant(0.0)], []
    for _ in range(horizon):
        future = values[-1] * gamma
        q = tuple(r + future.compose(f) for f, r in zip(mdp.dynamics, mdp.rewards))
        v, pi = upper_envelope(q)
        values.append(v)
        policies.append(pi)
    return Solution(mdp, horizon, gamma, q, tuple(values), tuple(policies))


# ================================================================================= Theorem 4.2
def binary_digit(s: np.ndarray | float, k: int) -> np.ndarray:
    """``s^(k) = floor(2^k s) mod 2``, the k-th binary digit of s in [0, 1) (footnote 3); exact."""
    return np.mod(np.floor(np.ldexp(np.asarray(s, dtype=np.float64), k)), 2.0)


def def41_policy(s: np.ndarray | float, H: int) -> np.ndarray:
    """Eq. (2): ``pi*(s) = 1[s^(H+1) = 0]``."""
    return (binary_digit(s, H + 1) == 0).astype(np.int64)


def def41_value(s: np.ndarray | float, H: int) -> np.ndarray:
    """Eq. (3), the infinite sum evaluated exactly for float64 ``s`` (a float has finitely many
    binary digits; past the last one every term is ``gamma^(h-1)``, summed in closed form):

        V*(s) = sum_{h=1}^{H} g^(h-1) s^(h) + g^(H-1) (2 s^(H+1) - 2)
                + sum_{h=H+1}^{inf} g^(h-1) (1 + 2 (s^(h+1) - s^(h)))
    """
    s = np.asarray(s, dtype=np.float64)
    g = 1.0 - 1.0 / H
    # Last nonzero digit: 2^K s is an integer for every s.
    K = H + 1
    while not np.all(np.ldexp(s, K) == np.floor(np.ldexp(s, K))):
        K += 1
    bit = [None] + [binary_digit(s, h) for h in range(1, K + 2)]  # bit[h], h = 1..K+1
    total = sum(g ** (h - 1) * bit[h] for h in range(1, H + 1))
    total = total + g ** (H - 1) * (2 * bit[H + 1] - 2)
    total = total + sum(g ** (h - 1) * (1 + 2 * (bit[h + 1] - bit[h])) for h in range(H + 1, K + 1))
    return total + g**K / (1 - g)  # terms h >= K+1: digits h and h+1 are 0


def def41_optimal_return(H: int) -> float:
    """``E_{s ~ U[0,1)} V*(s)`` from Eq. (3): each digit has mean 1/2, so
    ``(1 - g^H) / (2 (1 - g)) - g^(H-1) + g^H / (1 - g)``."""
    g = 1.0 - 1.0 / H
    return (1 - g**H) / (2 * (1 - g)) - g ** (H - 1) + g**H / (1 - g)
