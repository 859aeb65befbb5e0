"""Paper 001, Figure 4 (left): do learned models of 9-pipe PanFlute smooth its reward and dynamics?

    python -m benchmarks.panflute_smoothing                          # simple and gaussian, 10 seeds
    python -m benchmarks.panflute_smoothing --seeds 30 --agents simple gaussian   # the paper's count

The paper's protocol (Section 4, "Why do some learned models outperform the perfect model"):

1. Train the Dyna-DQN agents with the simple model and the Gaussian latent model on 9-pipe PanFlute
   in the high-data regime (one update per env step, the tuned (lr, temperature) of REFERENCE 4.3)
   for 10,000 env steps, S seeds batched (``algos.dyna_dqn.DynaDQN``).
2. Generate random trajectories with a policy that takes the "alphabetical" action with probability
   0.8 and a uniform action otherwise. Here the alphabetical order is the rewarded cycle
   ``n - 1, n - 2, ..., 0`` (pipe ``i``'s end is lit ``i + 1`` steps after action ``i``): it is the only
   order that yields the paper's "good mix of different numbers of active pipe-ends" (the reverse
   cycle lights the ends one at a time). With probability 0.8 the policy takes the action after its
   previous one in that cycle (``a_t = a_{t-1} - 1 mod n``; the first action is ``n - 1``), otherwise a
   uniform action, from which the cycle then continues. A random action thus shifts the phase, and
   every count of lit ends from 0 to n occurs.
3. Bin the transitions by the true number of active pipe-ends *now* and average the model's
   predicted reward; bin them by the true number active at the *next* step and average the model's
   probability that every pipe-end is active at the next step. The ground truth is 0 in every bin
   but the last (the reward is 1 exactly when all ends are lit).

How the probability is computed: the simple model's per-feature Bernoulli heads are independent, so
``P(all ends next) = prod_i sigmoid(logit_end_i)``. The Gaussian latent model samples
``z ~ q(z | o)``, ``z' ~ p(z' | z, a)`` and decodes ``z'`` (its decoder reconstructs the observation of a
latent), so ``P = prod_i sigmoid(decoder(z')_end_i)``, averaged over the transitions of a bin (one
latent sample each, a Monte Carlo estimate).

Writes ``benchmarks/results/panflute_smoothing.{json,png}``: per agent, bin and seed the two
predictions, with the mean over seeds and a 95% interval (rliable's stratified bootstrap over seeds,
the report's ``lightning_mbrl.stats``).
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
from lightning_mbrl.envs.gridworlds import PanFlute

OUT = RESULTS / "panflute_smoothing.json"


@torch.no_grad()
def alphabetical_trajectories(core: PanFlute, episodes: int, steps: int, follow: float,
                              generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``episodes`` trajectories of ``steps`` steps from the reset state under the 80% alphabetical
    policy (module docstring), flattened: ``observation [N, D]``, ``action [N]``, ``reward [N]``,
    ``next_observation [N, D]`` with ``N = episodes * steps``."""
    n = core.num_pipes
    previous = torch.zeros(episodes, dtype=torch.long)  # so that the first action in the cycle is n - 1
    state = core.reset((episodes,), generator)
    out: dict[str, list[torch.Tensor]] = {"observation": [], "action": [], "reward": [], "next_observation": []}
    for t in range(steps):
        follow_cycle = torch.rand(episodes, generator=generator) < follow
        uniform = torch.randint(n, (episodes,), generator=generator)
        action = torch.where(follow_cycle, (previous - 1) % n, uniform)
        previous = action
        obs = core.observation(state)
        state, reward, _ = core.transition(state, action, core.sample_noise((episodes,), generator))
        for key, value in zip(out, (obs, action, reward, core.observation(state))):
            out[key].append(value)
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def predictions(module: DynaDQN, data: dict[str, torch.Tensor], generator: torch.Generator,
                chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per seed and transition: the predicted reward ``[S, N]`` and the predicted probability that
    every pipe-end is lit at the next step ``[S, N]`` (module docstring)."""
    core, model, S = module.core, module.model, len(module.seed_list)
    last = core.end_cells
    rewards, probs = [], []
    for lo in range(0, len(data["action"]), chunk):
        obs = data["observation"][lo: lo + chunk].expand(S, -1, -1)
        action = data["action"][lo: lo + chunk].expand(S, -1)
        if module.hparams.agent == "simple":
            reward, _, logits = model(obs, action)
        else:
            u = torch.rand(S, obs.shape[1], 2, model.noise_dim, generator=generator)
            latent = model.features(obs, u[:, :, 0])
            next_latent, reward, _ = model.sample(latent, action, u[:, :, 1])
            logits = model.decoder(next_latent)
        rewards.append(reward)
        probs.append(torch.sigmoid(logits[..., last]).prod(-1))
    return torch.cat(rewards, 1), torch.cat(probs, 1)


def binned(values: torch.Tensor, bins: torch.Tensor, n_bins: int) -> list[list[float | None]]:
    """Per seed ``[S, N]`` -> ``[n_bins][S]`` means (``None`` for an empty bin)."""
    out = []
    for k in range(n_bins):
        mask = bins == k
        out.append(values[:, mask].mean(-1).tolist() if bool(mask.any()) else [None] * values.shape[0])
    return out


def interval(per_seed: list[float | None]) -> dict:
    xs = [x for x in per_seed if x is not None]
    if not xs:
        return {"mean": None, "ci95": None}
    est = stats.estimate(xs, "mean")
    return {"mean": est.value, "ci95": [est.low, est.high]}


def train(agent: str, seeds: int, steps: int, pipes: int) -> tuple[DynaDQN, dict]:
    module = DynaDQN(env=f"gridworld/panflute-{pipes}", agent=agent, regime="high", seeds=seeds, steps=steps,
                     eval_every=max(1, steps // 10)).standalone()
    started = time.perf_counter()
    for _ in range(steps):
        module.step()
    info = {"seconds": time.perf_counter() - started, "updates": module.updates_done,
            "lr": module.hparams.lr, "temperature": module.hparams.temperature,
            "eval_steps": module.eval_curve_steps, "eval_reward_rate": module.eval_curve.T.tolist()}
    return module, info


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = np.arange(doc["pipes"] + 1)
    for row in doc["agents"]:
        for ax, key in zip(axes, ("reward_by_ends_now", "p_all_next_by_ends_next")):
            stats = [interval(b) for b in row[key]]
            x = [k for k, s in zip(bins, stats) if s["mean"] is not None]
            m = np.array([s["mean"] for s in stats if s["mean"] is not None])
            lo = np.array([s["ci95"][0] for s in stats if s["mean"] is not None])
            hi = np.array([s["ci95"][1] for s in stats if s["mean"] is not None])
            ax.errorbar(x, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label=row["agent"])
    for ax, title in zip(axes, ("predicted reward", "predicted P(all pipe-ends lit next step)")):
        ax.plot(bins, (bins == doc["pipes"]).astype(float), "k--", lw=1, label="ground truth")
        ax.set_title(title)
        ax.set_ylabel(title.split(" (")[0])
        ax.legend()
    axes[0].set_xlabel("pipe-ends lit now")
    axes[1].set_xlabel("pipe-ends lit at the next step")
    fig.suptitle(f"{doc['pipes']}-pipe PanFlute, models after {doc['steps']:,} env steps, "
                 f"{doc['seeds']} seeds (95% intervals)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", nargs="*", default=["simple", "gaussian"], choices=["simple", "gaussian"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000, help="env steps of training (paper: 10,000)")
    parser.add_argument("--pipes", type=int, default=9)
    parser.add_argument("--episodes", type=int, default=200, help="alphabetical-policy trajectories")
    parser.add_argument("--length", type=int, default=100, help="steps per trajectory")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--stdout", action="store_true",
                        help="print the result JSON on stdout (progress on stderr) and write no file "
                             "(python -m benchmarks.reproduce runs it so)")
    args = parser.parse_args(argv)
    log = sys.stderr if args.stdout else sys.stdout
    core = PanFlute(args.pipes)
    data = alphabetical_trajectories(core, args.episodes, args.length, 0.8, torch.Generator().manual_seed(0))
    now, nxt = core.lit_ends(data["observation"]), core.lit_ends(data["next_observation"])
    counts_now = torch.bincount(now, minlength=args.pipes + 1).tolist()
    counts_next = torch.bincount(nxt, minlength=args.pipes + 1).tolist()
    doc = {"benchmark": "panflute_smoothing", "commit": commit(), "machine": machine(), "pipes": args.pipes,
           "steps": args.steps, "seeds": args.seeds, "transitions": len(now),
           "transitions_by_ends_now": counts_now, "transitions_by_ends_next": counts_next,
           "true_reward_by_ends_now": [float(data["reward"][now == k].mean()) if counts_now[k] else None
                                       for k in range(args.pipes + 1)],
           "agents": []}
    for agent in args.agents:
        module, info = train(agent, args.seeds, args.steps, args.pipes)
        reward, p_all = predictions(module, data, torch.Generator().manual_seed(1))
        row = {"agent": agent, **info,
               "reward_by_ends_now": binned(reward, now, args.pipes + 1),
               "p_all_next_by_ends_next": binned(p_all, nxt, args.pipes + 1)}
        row["summary"] = {key: [interval(b) for b in row[key]]
                          for key in ("reward_by_ends_now", "p_all_next_by_ends_next")}
        doc["agents"].append(row)
        means = [s["mean"] for s in row["summary"]["reward_by_ends_now"]]
        print(f"{agent}: {info['seconds']:.0f} s; predicted reward by ends lit now "
              f"{[None if m is None else round(m, 3) for m in means]}", file=log, flush=True)
        means = [s["mean"] for s in row["summary"]["p_all_next_by_ends_next"]]
        print(f"{agent}: P(all lit next) by ends lit next {[None if m is None else round(m, 3) for m in means]}",
              file=log, flush=True)
        if not args.stdout:
            Path(args.out).write_text(json.dumps(doc, indent=1))
    if args.stdout:
        print(json.dumps(doc))
        return
    plot(doc, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
