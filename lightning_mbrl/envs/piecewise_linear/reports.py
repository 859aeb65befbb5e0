"""The JSON reports of the piecewise-linear CLI: :func:`solve_report` (one MDP solved exactly)
and :func:`piece_statistics` (piece counts over many random MDPs).
"""

from __future__ import annotations

import math
import time

import numpy as np

from lightning_mbrl.envs.piecewise_linear.mdps import RANDOM_MDP_HORIZON, make_mdp
from lightning_mbrl.envs.piecewise_linear.solver import def41_optimal_return, solve


def solve_report(method: str, H: int, seed: int, horizon: int | None, reward: str) -> dict:
    """Solve one MDP (``make_mdp``'s arguments) and report its piece counts and optimal return.
    ``horizon`` is def41's truncation (``None``: 2H) or the random MDPs' episode length (``None``: 10)."""
    mdp = make_mdp(method, H=H, seed=seed, horizon=horizon or RANDOM_MDP_HORIZON, reward=reward)
    sol = solve(mdp, horizon if method == "def41" else None)
    report = {
        "mdp": mdp.name,
        "gamma": mdp.gamma,
        "horizon": sol.horizon,
        "q_pieces": sol.q_pieces,
        "q_pieces_total": sum(sol.q_pieces),
        "policy_pieces": sol.policy_pieces,
        "value_pieces": sol.value.num_pieces,
        "dynamics_pieces": [f.num_pieces for f in mdp.dynamics],
        "optimal_return": sol.optimal_return,
    }
    if method == "def41":
        report["theorem_4_2_policy_pieces"] = 2 ** (H + 1)
        report["optimal_return_infinite_horizon"] = def41_optimal_return(H)
        # |V_T - V*| <= gamma^T max|V*| and max|V*| <= H (rewards <= 1): bound on the value error
        report["value_truncation_error_bound"] = mdp.gamma**sol.horizon * H
    else:
        report["reward"] = reward
    return report


def piece_statistics(method: str, n: int, *, seed: int = 0, horizon: int = RANDOM_MDP_HORIZON,
                     reward: str = "state") -> dict:
    """Solve MDPs with seeds ``seed, ..., seed + n - 1`` and summarise the piece counts of pi*
    (the first-step greedy policy) and of Q* (both actions together)."""
    policy, q_total = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    t0 = time.perf_counter()
    for i in range(n):
        sol = solve(make_mdp(method, seed=seed + i, horizon=horizon, reward=reward))
        policy[i], q_total[i] = sol.policy_pieces, sum(sol.q_pieces)
    seconds = time.perf_counter() - t0
    top = int(max(q_total.max(initial=1), policy.max(initial=1)))
    edges = [10**k for k in range(max(1, math.ceil(math.log10(top + 1))) + 1)]  # decades up to the max

    def histogram(counts: np.ndarray) -> dict[str, int]:
        hist = np.histogram(counts, bins=edges)[0]
        return {f"[{lo}, {hi})": int(c) for lo, hi, c in zip(edges, edges[1:], hist)}

    frac = (lambda mask: float(mask.mean()) if n else None)
    return {
        "method": method,
        "n": n,
        "seed": seed,
        "horizon": horizon,
        "reward": reward,
        "fraction_policy_pieces_gt_100": frac(policy > 100),
        "fraction_policy_pieces_gt_1000": frac(policy > 1000),
        "policy_pieces_median": float(np.median(policy)) if n else None,
        "policy_pieces_max": int(policy.max(initial=0)),
        "policy_pieces_histogram": histogram(policy),
        "q_pieces_total_median": float(np.median(q_total)) if n else None,
        "q_pieces_total_histogram": histogram(q_total),
        "seconds": round(seconds, 3),
    }
