"""Paper 001, Figure 3 at a reduced scale: final greedy performance of ER-DQN and Dyna-DQN (simple,
perfect, latent models) on ProcMaze, ButtonGrid and PanFlute instances, S seeds batched per run.

    python -m benchmarks.generalization_online --envs gridworld/panflute-5 --agents er simple perfect \\
        --regime high --steps 10000 --seeds 5 --lr 1e-3
    python -m benchmarks.generalization_online --envs --merge a.json b.json   # merge runs into one file + figure
    # the paper's scale, for a GPU (1M steps high data / 100k low data, 30 seeds, the tuned lr):
    python -m benchmarks.generalization_online --envs gridworld/procmaze-4 --agents er simple perfect \\
        categorical gaussian --regime high --seeds 30 --tuned_lr

One run is ``algos.dyna_dqn.DynaDQN`` with the regime's schedule (``high``: one update per env step;
``low``: ten) and the agent's tuned softmax temperature (REFERENCE 4.3), driven without a Trainer; its
greedy evaluation (32 episodes of at most 100 steps per seed: the mean return, or the reward per step on
the continuing envs) runs every ``--eval_every`` steps. The paper's tuned step sizes belong to 1M updates:
at this reduced length the runs use one ``--lr`` for every agent unless ``--tuned_lr``.

The score of a seed is the mean of its evaluations in the last ``--final_fraction`` of the run ("final
performance"); each (env, agent) row gives the mean over seeds with a 95% stratified-bootstrap interval
(``lightning_mbrl.stats``, rliable), and each agent's paired difference to ER (same seeds) with its
interval. Results go to ``benchmarks/results/generalization_online.json`` after every run (a killed
invocation keeps what it finished; ``--merge`` reads earlier files and skips what they hold), with a
figure of the final scores and the learning curves (``.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, commit, machine
from lightning_mbrl import stats
from lightning_mbrl.algos.dyna_dqn import DynaDQN

OUT = RESULTS / "generalization_online.json"
AGENTS = ("er", "simple", "perfect", "categorical", "gaussian")


def run_one(env: str, agent: str, regime: str, steps: int, seeds: int, lr: float | None, eval_every: int,
            final_fraction: float, learning_starts: int = 1000) -> dict:
    """One (env, agent) run of ``seeds`` batched seeds: its per-seed evaluation curve and final scores."""
    module = DynaDQN(env=env, agent=agent, regime=regime, seeds=seeds, steps=steps, lr=lr, eval_every=eval_every,
                     learning_starts=learning_starts).standalone()
    started = time.perf_counter()
    for _ in range(steps):
        module.step()
    seconds = time.perf_counter() - started
    curve = module.eval_curve  # [n_evals, S]
    evals = torch.tensor(module.eval_curve_steps)
    final = curve[evals > steps * (1 - final_fraction)].mean(0)
    return {"env": env, "agent": agent, "regime": regime, "steps": steps, "seeds": seeds,
            "updates": module.updates_done, "lr": module.hparams.lr, "temperature": module.hparams.temperature,
            "learning_starts": learning_starts, "seconds": seconds,
            "ms_per_update": 1e3 * seconds / max(1, module.updates_done),
            "eval_steps": module.eval_curve_steps, "eval": curve.T.tolist(), "final": final.tolist(),
            "final_fraction": final_fraction}


def summarize(runs: list[dict]) -> list[dict]:
    """Per (env, agent): the mean final score with its interval, and the paired difference to ER."""
    rows = []
    for run in runs:
        est = stats.estimate(run["final"], "mean")
        row = {"env": run["env"], "agent": run["agent"], "regime": run["regime"], "steps": run["steps"],
               "seeds": run["seeds"], "final_mean": est.value, "final_ci95": [est.low, est.high]}
        er = next((r for r in runs if r["agent"] == "er" and (r["env"], r["regime"], r["steps"]) ==
                   (run["env"], run["regime"], run["steps"])), None)
        if er is not None and run["agent"] != "er" and er["seeds"] == run["seeds"]:
            gap = stats.estimate(np.subtract(run["final"], er["final"]), "mean")
            row["minus_er_mean"], row["minus_er_ci95"] = gap.value, [gap.low, gap.high]
        rows.append(row)
    return rows


def plot(runs: list[dict], rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys((r["env"], r["regime"]) for r in runs))
    fig, axes = plt.subplots(2, len(envs), figsize=(4.2 * len(envs), 7), squeeze=False)
    for j, (env, regime) in enumerate(envs):
        these = [r for r in runs if (r["env"], r["regime"]) == (env, regime)]
        bar = axes[0][j]
        for i, run in enumerate(these):
            row = next(r for r in rows if (r["env"], r["agent"], r["regime"]) == (env, run["agent"], regime))
            m, (lo, hi) = row["final_mean"], row["final_ci95"]
            bar.bar(i, m, yerr=[[m - lo], [hi - m]], capsize=4, color=f"C{AGENTS.index(run['agent'])}")
            curve = np.array(run["eval"])  # [S, n_evals]
            axes[1][j].plot(run["eval_steps"], curve.mean(0), color=f"C{AGENTS.index(run['agent'])}", label=run["agent"])
            axes[1][j].fill_between(run["eval_steps"], curve.min(0), curve.max(0), alpha=0.15,
                                    color=f"C{AGENTS.index(run['agent'])}")
        bar.set_xticks(range(len(these)), [r["agent"] for r in these])
        bar.set_title(f"{env.split('/')[-1]}, {regime} data, {these[0]['steps']:,} steps, {these[0]['seeds']} seeds",
                      fontsize=9)
        bar.set_ylabel("final greedy performance (95% CI)")
        axes[1][j].set_xlabel("env steps")
        axes[1][j].set_ylabel("greedy evaluation (mean, min-max over seeds)")
        axes[1][j].legend(fontsize=8)
    fig.suptitle("Paper 001 Figure 3, reduced scale (benchmarks/generalization_online.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="*", default=["gridworld/panflute-5"],
                        help="env ids to run (none: only merge the --merge files and plot)")
    parser.add_argument("--agents", nargs="+", default=["er", "simple", "perfect"], choices=AGENTS)
    parser.add_argument("--regime", choices=["high", "low"], default="high")
    parser.add_argument("--steps", type=int, default=None, help="env steps (default: the regime's 1M / 100k)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3, help="Q step size of every agent (reduced scale)")
    parser.add_argument("--tuned_lr", action="store_true", help="each agent's tuned step size (REFERENCE 4.3)")
    parser.add_argument("--eval_every", type=int, default=None, help="default: steps / 20")
    parser.add_argument("--final_fraction", type=float, default=0.25)
    parser.add_argument("--learning_starts", type=int, default=1000, help="env steps before the first update")
    parser.add_argument("--merge", nargs="*", default=[], help="result files whose runs count as done")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--stdout", action="store_true",
                        help="print the result JSON on stdout (progress on stderr) and write no file "
                             "(python -m benchmarks.reproduce runs it so)")
    args = parser.parse_args(argv)
    steps = args.steps or (1_000_000 if args.regime == "high" else 100_000)
    eval_every = args.eval_every or max(1, steps // 20)
    out = Path(args.out)
    runs: list[dict] = []
    for path in args.merge:
        runs += json.loads(Path(path).read_text())["runs"]
    for env in args.envs:
        for agent in args.agents:
            key = (env, agent, args.regime, steps, args.seeds)
            if any((r["env"], r["agent"], r["regime"], r["steps"], r["seeds"]) == key for r in runs):
                continue
            run = run_one(env, agent, args.regime, steps, args.seeds, None if args.tuned_lr else args.lr,
                          eval_every, args.final_fraction, args.learning_starts)
            run["commit"] = commit()
            runs.append(run)
            print(f"{env} {agent} {args.regime}: final {np.mean(run['final']):.3f} "
                  f"(seeds {[round(x, 3) for x in run['final']]}), {run['seconds']:.0f} s, "
                  f"{run['ms_per_update']:.1f} ms/update", file=sys.stderr, flush=True)
            if not args.stdout:
                out.write_text(json.dumps(_document(runs), indent=1))
    if args.stdout:
        print(json.dumps(_document(runs)))
        return
    out.write_text(json.dumps(_document(runs), indent=1))
    plot(runs, summarize(runs), out.with_suffix(".png"))


def _document(runs: list[dict]) -> dict:
    return {"benchmark": "generalization_online", "machine": machine(), "rows": summarize(runs), "runs": runs,
            "commits": sorted({r["commit"] for r in runs if r.get("commit")})}


if __name__ == "__main__":
    main()
