"""Paper 001's 3x3 offline experiment (Young et al. 2023, Section 2, Figure 1): per dataset and agent,
the fraction of seeds whose greedy action is correct in each cell of the two evaluation layouts, the
verdict by the paper's majority rule, and the cost of S seeds as one batched run.

    python -m benchmarks.generalization_3x3                      # 30 seeds, 3,000 updates each
    python -m benchmarks.generalization_3x3 --seeds 10 --updates 1000 --only path_to_goal

The model agents follow Section 2: the model is fitted first (``--model_first_updates`` steps of 32
transitions at the code's step size 2e-4) and then fixed while Q learns on its rollouts; model-1
and model-10 of a dataset share that fit.

Agents (``algos.offline_dyna.OfflineDynaDQN``): DQN with experience replay ("er"), and DQN on the
simple model's rollouts of length 1 ("model-1", 320 starts) and 10 ("model-10", 32 starts), every Q
step on 320 transitions. An agent *fails* a dataset when in some cell the majority of seeds picks a
wrong greedy action (a fraction correct below 1/2). The paper's predictions (all confirmed there):
All-Evaluation every agent passes; Path-to-Goal ER fails, both model agents pass; Single-Cell only
model-10 passes; No-Evaluation every agent fails.

Writes ``benchmarks/results/generalization_3x3.json`` (after every configuration, so an interrupted
run keeps what it finished) and ``generalization_3x3.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch

from benchmarks.common import RESULTS, commit, machine
from lightning_mbrl.algos.offline_dyna import OfflineDynaDQN
from lightning_mbrl.envs import grid3x3

AGENTS = {"er": dict(agent="er"), "model-1": dict(agent="model", rollout_length=1),
          "model-10": dict(agent="model", rollout_length=10)}
PREDICTED_PASS = {
    "all_evaluation": {"er": True, "model-1": True, "model-10": True},
    "path_to_goal": {"er": False, "model-1": True, "model-10": True},
    "single_cell": {"er": False, "model-1": False, "model-10": True},
    "no_evaluation": {"er": False, "model-1": False, "model-10": False},
}
OUT = RESULTS / "generalization_3x3.json"


def run_one(coverage: str, agent: str, seeds: int, updates: int, lr: float, temperature: float,
            model_first_updates: int, fitted: dict | None = None, checkpoints: int = 10,
            starts: str = "dataset") -> tuple[dict, dict | None]:
    """One configuration; ``fitted`` is the model fit of the same coverage and seeds (its parameters
    and the generators' states after it), reused by model-10 after model-1: the fit draws from the
    same generators either way, so restoring it equals refitting."""
    module = OfflineDynaDQN(coverage=coverage, seeds=seeds, updates=updates, lr=lr, temperature=temperature,
                            model_first_updates=model_first_updates, starts=starts, **AGENTS[agent]).standalone()
    started = time.perf_counter()
    if module.model is not None:
        if fitted is None:
            module.fit_model(model_first_updates)
            fitted = {"model": copy.deepcopy(module.model.state_dict()), "steps": module.model_steps,
                      "generators": [g.get_state() for g in module.generators]}
        else:
            module.model.load_state_dict(fitted["model"])
            module.model_steps = fitted["steps"]
            for g, state in zip(module.generators, fitted["generators"]):
                g.set_state(state)
    model_accuracy = module.model_accuracy().tolist() if module.model is not None else None
    curve = []
    for n in range(1, updates + 1):
        module.update()
        if n % max(1, updates // checkpoints) == 0 or n == updates:
            curve.append({"updates": n, "fraction_correct": module.greedy_correct().float().mean().item()})
    seconds = time.perf_counter() - started
    correct = module.greedy_correct()  # [S, 12]
    fraction = correct.float().mean(0)
    cells = module.eval_cells
    return {
        "coverage": coverage, "agent": agent, "seeds": seeds, "updates": updates, "starts": starts,
        "model_first_updates": model_first_updates if module.model is not None else 0,
        "model_position_accuracy": model_accuracy,
        "seconds": seconds, "ms_per_update": 1e3 * seconds / updates,
        "cells": [{"layout": int(l), "cell": int(c), "correct_action": int(a), "fraction_correct": float(f)}
                  for l, c, a, f in zip(cells["layout"], cells["cell"], cells["correct_action"], fraction)],
        "passes": bool((fraction >= 0.5).all()),
        "predicted_pass": PREDICTED_PASS[coverage][agent],
        "curve": curve,
    }, fitted


def seed_scaling(agent: str, seeds: int, n: int = 20) -> dict:
    """Milliseconds per update of ``seeds`` batched seeds and of one seed, alternated in the same run."""
    batched = OfflineDynaDQN(seeds=seeds, **AGENTS[agent]).standalone()
    alone = OfflineDynaDQN(seeds=1, **AGENTS[agent]).standalone()
    times = {"batched": [], "alone": []}
    for _ in range(3):
        for name, module in (("batched", batched), ("alone", alone)):
            module.update()
            t0 = time.perf_counter()
            for _ in range(n):
                module.update()
            times[name].append(1e3 * (time.perf_counter() - t0) / n)
    ms = {name: sorted(v)[1] for name, v in times.items()}
    return {"agent": agent, "seeds": seeds, "ms_per_update_batched": ms["batched"],
            "ms_per_update_one_seed": ms["alone"], "ratio": ms["batched"] / ms["alone"]}


def plot(results: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    arrows = {0: (0, 0), 1: (0, 0.3), 2: (-0.3, 0), 3: (0, -0.3), 4: (0.3, 0)}
    coverages = [c for c in grid3x3.COVERAGES if any(r["coverage"] == c for r in results)]
    agents = [a for a in AGENTS if any(r["agent"] == a for r in results)]
    fig, axes = plt.subplots(len(coverages), len(agents), figsize=(3.4 * len(agents), 1.9 * len(coverages)), squeeze=False)
    for i, coverage in enumerate(coverages):
        for j, agent in enumerate(agents):
            ax = axes[i][j]
            ax.set_xlim(-0.2, 7.2), ax.set_ylim(-0.2, 3.2), ax.set_aspect("equal"), ax.axis("off")
            run = next((r for r in results if r["coverage"] == coverage and r["agent"] == agent), None)
            if run is None:
                continue
            for k, layout in enumerate(grid3x3.EVALUATION_LAYOUTS):
                x0 = 4 * k
                for cell in range(grid3x3.CELLS):
                    row, col = divmod(cell, 3)
                    x, y = x0 + col, 2 - row
                    color = "black" if cell in layout else ("gold" if cell == grid3x3.GOAL else "white")
                    ax.add_patch(Rectangle((x, y), 1, 1, facecolor=color, edgecolor="grey"))
                for c in run["cells"]:
                    if c["layout"] != k:
                        continue
                    row, col = divmod(c["cell"], 3)
                    x, y, f = x0 + col + 0.5, 2 - row + 0.5, c["fraction_correct"]
                    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=(1 - f, f, 0.2, 0.35)))
                    dx, dy = arrows[c["correct_action"]]
                    if f >= 0.05:  # a zero-length arrow would still draw its head, pointing up
                        ax.arrow(x - dx / 2, y - 0.2 - dy / 2, dx * f, dy * f, head_width=0.1, color="green")
                    ax.text(x, y + 0.18, f"{f:.2f}", ha="center", va="center", fontsize=7)
            verdict = "pass" if run["passes"] else "fail"
            predicted = "pass" if run["predicted_pass"] else "fail"
            ax.set_title(f"{coverage} / {agent}, {run['updates']:,} updates: {verdict} (paper: {predicted})", fontsize=7)
    fig.suptitle(f"3x3 offline grid: fraction of {results[0]['seeds']} seeds whose greedy action is correct "
                 "(green arrow: the correct action, its length the fraction)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--model_first_updates", type=int, default=3000,
                        help="model steps before the Q updates (then the model is fixed; 0: interleaved)")
    parser.add_argument("--merge", nargs="*", default=[], help="result files whose runs count as done")
    parser.add_argument("--only", nargs="*", default=None,
                        help="coverages and/or agents to run (both given: those agents on those coverages)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--timing_updates", type=int, default=20,
                        help="updates per timing repeat of the seed-scaling measurement (0: skip it)")
    parser.add_argument("--stdout", action="store_true",
                        help="print the result JSON on stdout (progress on stderr) and write no file "
                             "(python -m benchmarks.reproduce runs it so)")
    parser.add_argument("--resume", action="store_true", help="keep finished configurations of --out")
    parser.add_argument("--starts", choices=("dataset", "evaluation"), default="dataset",
                        help="where the model agents' rollouts start: anywhere in the dataset (the paper) or only in "
                             "its evaluation-layout transitions (a diagnostic; model agents only, its own benchmark "
                             "name, so that the report's claims never read it)")
    args = parser.parse_args(argv)
    if args.starts == "evaluation" and args.out == str(OUT):
        parser.error("--starts evaluation needs its own --out (the default is the paper protocol's result)")
    out = RESULTS.__class__(args.out)
    log = sys.stderr if args.stdout else sys.stdout
    name = "generalization_3x3" if args.starts == "dataset" else "generalization_3x3_evaluation_starts"
    doc = {"benchmark": name, "commit": commit(), "machine": machine(), "settings": vars(args),
           "runs": [], "seed_scaling": []}
    if args.resume and out.exists():
        doc["runs"] = json.loads(out.read_text())["runs"]
    for other in args.merge:  # each run keeps the commit it was made at
        merged = json.loads(RESULTS.__class__(other).read_text())
        doc["runs"] += [{"commit": merged.get("commit"), **run} for run in merged["runs"]]
    done = {(r["coverage"], r["agent"]) for r in doc["runs"]}
    only = args.only or []
    unknown = set(only) - set(grid3x3.COVERAGES) - set(AGENTS)
    if unknown:
        parser.error(f"--only takes coverages ({', '.join(grid3x3.COVERAGES)}) and agents ({', '.join(AGENTS)}), "
                     f"got {', '.join(sorted(unknown))}")
    coverages = [c for c in grid3x3.COVERAGES if c in only] or list(grid3x3.COVERAGES)
    agents = [a for a in AGENTS if a in only] or list(AGENTS)
    if args.starts == "evaluation":
        if agents == ["er"]:
            parser.error("--starts evaluation moves the model agents' rollout starts; er has none")
        agents = [a for a in agents if a != "er"]
        if coverages == ["no_evaluation"]:
            parser.error("--starts evaluation needs evaluation-layout transitions; no_evaluation has none")
        coverages = [c for c in coverages if c != "no_evaluation"]
    for coverage in coverages:
        fitted = None
        for agent in agents:
            if (coverage, agent) in done:
                continue
            run, fitted = run_one(coverage, agent, args.seeds, args.updates, args.lr, args.temperature,
                                  args.model_first_updates, fitted, starts=args.starts)
            run = {"commit": doc["commit"], **run}
            doc["runs"].append(run)
            print(f"{coverage:15s} {agent:9s} {'pass' if run['passes'] else 'FAIL'} (paper: "
                  f"{'pass' if run['predicted_pass'] else 'fail'})  min cell {min(c['fraction_correct'] for c in run['cells']):.2f}"
                  f"  {run['ms_per_update']:.0f} ms/update, model position accuracy "
                  f"{run['model_position_accuracy'] and min(run['model_position_accuracy'])}", file=log, flush=True)
            if not args.stdout:
                out.write_text(json.dumps(doc, indent=1))
    for agent in AGENTS if args.timing_updates > 0 else ():
        doc["seed_scaling"].append(seed_scaling(agent, args.seeds, args.timing_updates))
        print(doc["seed_scaling"][-1], file=log, flush=True)
    doc["commits"] = sorted({run["commit"] for run in doc["runs"] if run.get("commit")})  # what made the runs
    if args.stdout:
        print(json.dumps(doc))
        return
    out.write_text(json.dumps(doc, indent=1))
    if doc["runs"]:
        plot(doc["runs"], out.with_suffix(".png"))


if __name__ == "__main__":
    main()
