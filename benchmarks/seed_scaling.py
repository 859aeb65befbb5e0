"""Paper 001's many seeds in one process: the wall time of one env step (act, store, one update) of S
seeds as one batched ``DynaDQN`` against one seed alone, alternated in the same run (issue 18's target:
30 seeds at most 5x one seed).

    python -m benchmarks.seed_scaling                       # ProcMaze-4, high data, S = 30, every agent
    python -m benchmarks.seed_scaling --agents er simple --steps 20

Writes ``benchmarks/results/seed_scaling.json``. Paper sizes (3 x 200 ELU, batch 320); the replay is
filled past ``learning_starts`` first, evaluation is off.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from benchmarks.common import RESULTS, commit, gemm_peak_flops, machine
from lightning_mbrl.algos.dyna_dqn import DynaDQN

AGENTS = ("er", "simple", "perfect", "gaussian", "categorical")


def agent(kind: str, seeds: int, env: str) -> DynaDQN:
    module = DynaDQN(env=env, agent=kind, seeds=seeds, steps=10**9, learning_starts=400, eval_every=10**9,
                     buffer_size=10_000).standalone()
    for _ in range(401):  # past learning_starts: every later step makes one update
        module.step()
    return module


def ms_per_step(module: DynaDQN, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        module.step()
    return 1e3 * (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--agents", nargs="*", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--env", default="gridworld/procmaze-4")
    parser.add_argument("--steps", type=int, default=20, help="env steps per timing repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "seed_scaling.json"))
    args = parser.parse_args(argv)
    rows = []
    for kind in args.agents:
        batched, alone = agent(kind, args.seeds, args.env), agent(kind, 1, args.env)
        times: dict[str, list[float]] = {"batched": [], "alone": []}
        for _ in range(args.repeats):  # alternated, so both see the same machine
            times["batched"].append(ms_per_step(batched, args.steps))
            times["alone"].append(ms_per_step(alone, args.steps))
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        rows.append({"agent": kind, "seeds": args.seeds, "ms_per_step_batched": med["batched"],
                     "ms_per_step_one_seed": med["alone"], "ratio": med["batched"] / med["alone"],
                     "target_ratio": 5.0})
        print(f"{kind:12s} S={args.seeds}: {med['batched']:.1f} ms/step, S=1: {med['alone']:.1f} ms/step, "
              f"ratio {med['batched'] / med['alone']:.1f} (target <= 5)", flush=True)
    doc = {"benchmark": "seed_scaling", "commit": commit(), "machine": machine(), "env": args.env,
           "fp32_gemm_peak_gflops": gemm_peak_flops() / 1e9 if args.repeats > 1 else None, "rows": rows}
    RESULTS.__class__(args.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
