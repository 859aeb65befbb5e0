"""``python -m lightning_mbrl.envs.piecewise_linear solve|stats``: exact Q*, pi* and piece counts
of the 1-D MDPs of paper 000, printed as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lightning_mbrl.envs.piecewise_linear.mdps import METHODS, RANDOM_MDP_HORIZON, REWARD_CHOICES
from lightning_mbrl.envs.piecewise_linear.reports import piece_statistics, solve_report


def _non_negative(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = name
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbrl.envs.piecewise_linear",
                                     description="Exact Q*, pi* and piece counts of the 1-D MDPs of paper 000.")
    sub = parser.add_subparsers(dest="command", required=True)
    solve_p = sub.add_parser("solve", help="solve one MDP exactly; print piece counts and the optimal return")
    solve_p.add_argument("--method", choices=METHODS, required=True)
    solve_p.add_argument("--H", type=_non_negative("H", 1), default=4, help="def41: effective horizon")
    solve_p.add_argument("--seed", type=_non_negative("seed", 0), default=0, help="rand/semi-rand: the MDP's seed")
    solve_p.add_argument("--horizon", type=_non_negative("horizon", 1), default=None,
                         help="def41: truncation (default 2H); rand/semi-rand: episode length (default 10)")
    solve_p.add_argument("--reward", choices=REWARD_CHOICES, default="state")
    stats_p = sub.add_parser("stats", help="piece-count statistics over many random MDPs")
    stats_p.add_argument("--method", choices=("rand", "semi-rand"), required=True)
    stats_p.add_argument("--n", type=_non_negative("n", 0), default=1000)
    stats_p.add_argument("--seed", type=_non_negative("seed", 0), default=0, help="first seed")
    stats_p.add_argument("--horizon", type=_non_negative("horizon", 1), default=RANDOM_MDP_HORIZON)
    stats_p.add_argument("--reward", choices=REWARD_CHOICES, default="state")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints one JSON object. Bad arguments exit 2 with a one-line message."""
    args = _parser().parse_args(argv)
    if args.command == "solve":
        out = solve_report(args.method, args.H, args.seed, args.horizon, args.reward)
    else:
        out = piece_statistics(args.method, args.n, seed=args.seed, horizon=args.horizon, reward=args.reward)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
