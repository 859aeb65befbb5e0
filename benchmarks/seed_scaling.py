"""Paper 001's many seeds in one process: the wall time of one env step (act, store, one update) of S
seeds as one batched ``DynaDQN`` against one seed alone, alternated in the same run (issue 18's target:
30 seeds at most 5x one seed).

    python -m benchmarks.seed_scaling                       # ProcMaze-4, high data, S = 30, every agent
    python -m benchmarks.seed_scaling --agents er simple --steps 20
    python -m benchmarks.seed_scaling --precision 32-true bf16-mixed   # both, alternated

Writes ``benchmarks/results/seed_scaling.json``. Paper sizes (3 x 200 ELU, batch 320); the replay is
filled past ``learning_starts`` first, evaluation is off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
from pytorch_lightning.plugins.precision import MixedPrecision

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


def _context(precision: str):
    """What Lightning's ``--trainer.precision`` puts around ``training_step``: autocast for bf16-mixed."""
    return MixedPrecision("bf16-mixed", "cpu").forward_context() if precision == "bf16-mixed" else contextlib.nullcontext()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--agents", nargs="*", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--env", default="gridworld/procmaze-4")
    parser.add_argument("--steps", type=int, default=20, help="env steps per timing repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", nargs="+", choices=["32-true", "bf16-mixed"], default=["32-true"],
                        help="one row per agent and precision; the timings of an agent alternated")
    parser.add_argument("--out", default=str(RESULTS / "seed_scaling.json"))
    args = parser.parse_args(argv)
    rows = []
    for kind in args.agents:
        modules, times = {}, {}
        for precision in args.precision:
            with _context(precision):
                for s in (args.seeds, 1):
                    modules[precision, s], times[precision, s] = agent(kind, s, args.env), []
        for _ in range(args.repeats):  # alternated, so every timing sees the same machine
            for (precision, s), module in modules.items():
                with _context(precision):
                    times[precision, s].append(ms_per_step(module, args.steps))
        for precision in args.precision:
            batched, alone = (sorted(times[precision, s])[args.repeats // 2] for s in (args.seeds, 1))
            rows.append({"agent": kind, "precision": precision, "seeds": args.seeds, "ms_per_step_batched": batched,
                         "ms_per_step_one_seed": alone, "ratio": batched / alone, "target_ratio": 5.0})
            print(f"{kind:12s} {precision:10s} S={args.seeds}: {batched:.1f} ms/step, S=1: {alone:.1f} ms/step, "
                  f"ratio {batched / alone:.1f} (target <= 5)", flush=True)
    doc = {"benchmark": "seed_scaling", "commit": commit(), "machine": machine(), "env": args.env,
           "fp32_gemm_peak_gflops": gemm_peak_flops() / 1e9 if args.repeats > 1 else None, "rows": rows}
    RESULTS.__class__(args.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
