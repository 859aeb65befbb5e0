"""Paper 001, Figure 4 (right) at a reduced scale: Q trained from scratch on a simple model frozen after a
variable amount of training; how many env steps until the greedy policy is near-optimal?

    python -m benchmarks.panflute_frozen_model                     # 5 pipes, 5 seeds, 8k steps per run
    python -m benchmarks.panflute_frozen_model --pipes 9 --seeds 30 --steps 1000000 \\
        --model_updates 0 10000 30000 100000 300000 --eval_every 500     # the paper's scale (a GPU)

1. One Dyna-DQN run with the simple model (``algos.dyna_dqn.DynaDQN``, high data, S seeds batched) is
   trained, and its model is saved after each of ``--model_updates`` model steps. At each, the model's
   mean predicted reward for states with ``round(2 n / 3)`` lit pipe-ends (the paper: 6 of 9; true reward
   0) is measured on the alphabetical-policy trajectories of ``benchmarks.panflute_smoothing``: the
   paper's surrogate for the amount of smoothing.
2. For each saved model, a fresh agent with the same seeds (fresh Q, fresh replay) learns for ``--steps``
   env steps on rollouts of that model, fixed (``train_model=False``).
3. A seed's score is the first evaluation step at which its greedy reward rate reaches ``--threshold``
   (0.95) of the best possible rate, which is measured by evaluating the rewarded cycle under the same
   protocol (32 episodes of 100 steps from the all-off state, spontaneous events included). Seeds that
   never reach it are counted (the paper's numbered arrows), not averaged.

Writes ``benchmarks/results/panflute_frozen_model.{json,png}``. The step size is ``--lr`` for Q (1e-3:
the tuned 1e-4 belongs to 1M steps); the model's is the code's 2e-4.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, commit, machine
from benchmarks.panflute_smoothing import alphabetical_trajectories
from lightning_mbrl import stats
from lightning_mbrl.algos.dyna_dqn import DynaDQN
from lightning_mbrl.envs.gridworlds import PanFlute

OUT = RESULTS / "panflute_frozen_model.json"


@torch.no_grad()
def best_rate(core: PanFlute, episodes: int, steps: int, generator: torch.Generator) -> float:
    """The mean reward per step of the rewarded cycle ``n - 1, ..., 0`` over ``episodes`` evaluation
    episodes of ``steps`` steps from the reset state (``DynaDQN.evaluate``'s protocol)."""
    n = core.num_pipes
    state = core.reset((episodes,), generator)
    total = torch.zeros(episodes)
    for t in range(steps):
        action = torch.full((episodes,), n - 1 - t % n)
        state, reward, _ = core.transition(state, action, core.sample_noise((episodes,), generator))
        total += reward
    return float(total.mean() / steps)


@torch.no_grad()
def smoothing(module: DynaDQN, data: dict[str, torch.Tensor], lit: int) -> list[float]:
    """Per seed, the model's mean predicted reward on the transitions whose state has ``lit`` lit ends."""
    mask = module.core.lit_ends(data["observation"]) == lit
    S = len(module.seed_list)
    reward, _, _ = module.model(data["observation"][mask].expand(S, -1, -1), data["action"][mask].expand(S, -1))
    return reward.mean(-1).tolist()


def first_reaching(module: DynaDQN, bar: float) -> list[int | None]:
    """Per seed, the first evaluation step whose greedy rate is at least ``bar`` (``None``: never)."""
    curve, steps = module.eval_curve, module.eval_curve_steps  # [n_evals, S]
    out: list[int | None] = []
    for s in range(curve.shape[1]):
        hits = (curve[:, s] >= bar).nonzero().flatten()
        out.append(steps[int(hits[0])] if len(hits) else None)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipes", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model_updates", type=int, nargs="+", default=[0, 1000, 3000, 7000],
                        help="model steps after which the model is frozen (0: the untrained model)")
    parser.add_argument("--steps", type=int, default=8_000, help="env steps of each from-scratch Q run")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--stdout", action="store_true",
                        help="print the result JSON on stdout (progress on stderr) and write no file")
    args = parser.parse_args(argv)
    log = sys.stderr if args.stdout else sys.stdout
    env = f"gridworld/panflute-{args.pipes}"
    core = PanFlute(args.pipes)
    best = best_rate(core, 4096, 100, torch.Generator().manual_seed(0))
    bar = args.threshold * best
    data = alphabetical_trajectories(core, 200, 100, 0.8, torch.Generator().manual_seed(0))
    lit = round(2 * args.pipes / 3)
    common = dict(env=env, agent="simple", regime="high", seeds=args.seeds, lr=args.lr, eval_every=args.eval_every)

    # 1. the model's training run, saved after each number of model steps
    trainer = DynaDQN(**common, steps=10**9).standalone()
    saved: dict[int, dict] = {}
    started = time.perf_counter()
    for k in sorted(set(args.model_updates)):
        while trainer.updates_done < k:
            trainer.step()
        saved[k] = {"model": copy.deepcopy(trainer.model.state_dict()), "env_steps": trainer.env_steps,
                    "smoothing": smoothing(trainer, data, lit)}
        print(f"model after {k} steps ({trainer.env_steps} env steps): predicted reward at {lit} lit ends "
              f"{np.mean(saved[k]['smoothing']):.3f}", file=log, flush=True)
    model_seconds = time.perf_counter() - started

    # 2-3. Q from scratch on each frozen model
    doc = {"benchmark": "panflute_frozen_model", "commit": commit(), "machine": machine(), "settings": vars(args),
           "env": env, "best_rate": best, "bar": bar, "lit_for_smoothing": lit, "model_seconds": model_seconds,
           "runs": []}
    for k in args.model_updates:
        module = DynaDQN(**common, steps=args.steps, train_model=False).standalone()
        module.model.load_state_dict(saved[k]["model"])
        started = time.perf_counter()
        for _ in range(args.steps):
            module.step()
        reached = first_reaching(module, bar)
        done = [r for r in reached if r is not None]
        est = stats.estimate(done, "mean") if done else None
        run = {"model_updates": k, "model_env_steps": saved[k]["env_steps"], "smoothing": saved[k]["smoothing"],
               "steps_to_near_optimal": reached, "failed": len(reached) - len(done),
               "mean_steps": est.value if est else None, "ci95": [est.low, est.high] if est else None,
               "eval_steps": module.eval_curve_steps, "eval": module.eval_curve.T.tolist(),
               "seconds": time.perf_counter() - started}
        doc["runs"].append(run)
        print(f"frozen after {k} model steps: steps to {args.threshold:.0%} of the best rate {reached} "
              f"({run['failed']} of {args.seeds} never), {run['seconds']:.0f} s", file=log, flush=True)
        if not args.stdout:
            Path(args.out).write_text(json.dumps(doc, indent=1))
    if args.stdout:
        print(json.dumps(doc))
        return
    Path(args.out).write_text(json.dumps(doc, indent=1))
    plot(doc, Path(args.out).with_suffix(".png"))


def plot(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    runs = doc["runs"]
    x = np.arange(len(runs))
    for i, run in enumerate(runs):
        if run["mean_steps"] is not None:
            m, (lo, hi) = run["mean_steps"], run["ci95"]
            ax.errorbar(i, m, yerr=[[m - lo], [hi - m]], fmt="o", color="tab:orange", capsize=4)
        if run["failed"]:
            ax.annotate(f"{run['failed']} of {len(run['steps_to_near_optimal'])} never", (i, doc["settings"]["steps"]),
                        xytext=(0, -12), textcoords="offset points", ha="center", va="top", color="tab:orange")
    ax.axhline(doc["settings"]["steps"], color="black", lw=1)
    ax.set_xticks(x, [str(r["model_updates"]) for r in runs])
    ax.set_xlabel("model training steps before it was frozen")
    ax.set_ylabel(f"env steps to {doc['settings']['threshold']:.0%} of the best rate", color="tab:orange")
    twin = ax.twinx()
    means = [np.mean(r["smoothing"]) for r in runs]
    twin.plot(x, means, "s-", color="tab:green")
    twin.set_ylabel(f"predicted reward at {doc['lit_for_smoothing']} lit ends (true 0)", color="tab:green")
    ax.set_title(f"{doc['env']}: Q from scratch on a frozen simple model, {doc['settings']['seeds']} seeds", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
