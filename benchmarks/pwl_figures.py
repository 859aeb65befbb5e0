"""Figures 1 and 2 of paper 000 (BOOTS) from the exact solvers, as PNG files.

    python -m benchmarks.pwl_figures --out runs/pwl_figures [--rand-seed 0] [--semi-rand-seed 0] [--H 4]

- ``figure1.png``: dynamics f(., 0), f(., 1) (left) and Q*(., 0), Q*(., 1) with pi* (right) of one
  RAND (top) and one SEMI-RAND (bottom) MDP, horizon 10.
- ``figure2.png``: Definition 4.1 with H = 4: (a) dynamics, (b) reward, (c) Q* truncated to 2H
  terms, (d) pi* against Eq. (2).

Needs matplotlib (not a dependency of the library).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lightning_mbrl.envs.piecewise_linear.algebra import PiecewiseLinear
from lightning_mbrl.envs.piecewise_linear.mdps import definition_4_1, rand_mdp, semi_rand_mdp
from lightning_mbrl.envs.piecewise_linear.solver import def41_policy, solve

COLORS = ("tab:blue", "tab:orange")


def polyline(f: PiecewiseLinear) -> tuple[np.ndarray, np.ndarray]:
    """Points tracing ``f`` piece by piece, with a NaN gap at each jump (so jumps are not drawn)."""
    start, end = f.x[:-1], f.x[1:]
    xs = np.stack([start, end, end], axis=1)
    ys = np.stack([f.v, f.end_values, np.full(f.num_pieces, np.nan)], axis=1)
    jump = np.append(~f.continuous_at, True)
    keep = np.ones_like(xs, dtype=bool)
    keep[:, 2] = jump  # the NaN separator only where the next piece does not join
    return xs[keep], ys[keep]


def plot_fns(ax: plt.Axes, fns: Sequence[PiecewiseLinear], labels: Sequence[str], title: str) -> None:
    for f, label, color in zip(fns, labels, COLORS):
        ax.plot(*polyline(f), color=color, lw=0.8, label=f"{label} ({f.num_pieces} pieces)")
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")


def shade_policy(ax: plt.Axes, policy: PiecewiseLinear) -> None:
    """Light background where pi* = 1."""
    for lo, hi, a in zip(policy.x[:-1], policy.x[1:], policy.v):
        if a == 1:
            ax.axvspan(lo, hi, color="0.85", lw=0)


def figure1(rand_seed: int, semi_rand_seed: int, out: Path) -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for row, mdp in enumerate((rand_mdp(rand_seed), semi_rand_mdp(semi_rand_seed))):
        sol = solve(mdp)
        plot_fns(axes[row, 0], mdp.dynamics, ("f(s, 0)", "f(s, 1)"), f"{mdp.name}: dynamics")
        shade_policy(axes[row, 1], sol.policy)
        plot_fns(axes[row, 1], sol.q, ("Q*(s, 0)", "Q*(s, 1)"),
                 f"{mdp.name}: Q* (horizon {sol.horizon}); grey: pi* = 1 ({sol.policy_pieces} pieces)")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    path = out / "figure1.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def figure2(H: int, out: Path) -> Path:
    mdp = definition_4_1(H)
    sol = solve(mdp, 2 * H)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    plot_fns(axes[0], mdp.dynamics, ("f(s, 0)", "f(s, 1)"), f"(a) dynamics, H = {H}")
    plot_fns(axes[1], mdp.rewards, ("r(s, 0)", "r(s, 1)"), "(b) reward")
    plot_fns(axes[2], sol.q, ("Q*(s, 0)", "Q*(s, 1)"), f"(c) Q* truncated to {sol.horizon} terms")
    s = np.linspace(0, 1, 4001)[:-1]
    axes[3].plot(*polyline(sol.policy), color="k", lw=1.2, label=f"pi* from Q* ({sol.policy_pieces} pieces)")
    axes[3].plot(s, def41_policy(s, H), color="tab:red", ls=":", lw=1.2, label="Eq. (2): 1[s^(H+1) = 0]")
    axes[3].set_xlim(0, 1)
    axes[3].set_title(f"(d) pi*: 2^(H+1) = {2 ** (H + 1)} pieces", fontsize=9)
    axes[3].legend(fontsize=7, loc="center right")
    for ax in axes:
        ax.set_xlabel("s")
    fig.tight_layout()
    path = out / "figure2.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for figure1.png and figure2.png")
    parser.add_argument("--rand-seed", type=int, default=0)
    parser.add_argument("--semi-rand-seed", type=int, default=0)
    parser.add_argument("--H", type=int, default=4)
    args = parser.parse_args(argv)
    if args.H < 1:
        parser.error(f"--H must be >= 1, got {args.H}")
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [figure1(args.rand_seed, args.semi_rand_seed, args.out), figure2(args.H, args.out)]
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
