"""Speed of MBPO's world model on CPU at HalfCheetah-v5 sizes.

    python -m benchmarks.world_model            # writes benchmarks/results/world_model.json

Model: obs 17, action 6 (in 23, out 18), 7 members, 5 elites, 4x200 SiLU (MBPO's). Reports, as
medians over interleaved rounds (this 2-core VM is noisy), next to the FLOP-bound time (GEMM FLOPs
/ the GEMM peak measured in the same rounds):

(a) one training epoch of ``fit_ensemble`` over 10k transitions (batch 256, 80/20 holdout, the
    holdout evaluation and snapshot included): the time between consecutive holdout evaluations
    (one per epoch, timestamped by wrapping ``model.holdout_mse``); the whole
    ``fit_ensemble(max_epochs=1)`` call (split, normaliser, one epoch, restore, elites) is also given;
(b) 100k one-step model rollouts (``EnsembleDynamics.rollout``, mode "sample", not differentiable)
    with a 2x256 ``TanhGaussianActor``: one elite per sample (``forward_selected``); also the
    model's share alone (``step`` with the actions given) and, for comparison, the naive
    compute-all-members-then-pick step.

``--precision bf16-mixed`` times (a) and (b) under the autocast that ``--trainer.precision bf16-mixed``
puts around ``training_step`` (bf16 hidden-layer GEMMs, weight-cast cache off), and, in the same rounds
(interleaved, so that both see the same machine), the fp32 epoch and rollout for reference
(``train_epoch.fp32_seconds``, ``rollout.fp32_seconds``); the default, ``32-true``, is fp32 only.

Smoke run (seconds): ``python -m benchmarks.world_model --rounds 1 --transitions 2000 --rollouts 2000``
(it overwrites the results file).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from benchmarks.common import gemm_peak_flops, write
from lightning_mbrl.allocator import keep_freed_memory
from lightning_mbrl.precision import flush_denormals
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.model_training import fit_ensemble, make_model_optimizer
from lightning_mbrl.models.world_model import EnsembleDynamics

OBS, ACT, HIDDEN, MEMBERS, ELITES = 17, 6, (200, 200, 200, 200), 7, 5
IN, OUT = OBS + ACT, 1 + OBS


def mlp_flops(sizes: list[int]) -> int:
    """Forward GEMM FLOPs (2 x multiply-adds) of one MLP with layer sizes ``sizes``, per sample."""
    return 2 * sum(a * b for a, b in itertools.pairwise(sizes))


MODEL_SIZES = [IN, *HIDDEN, 2 * OUT]


def epoch_flops(n_train: int, n_holdout: int) -> int:
    """GEMM FLOPs of one epoch: forward + backward (dW of every layer, dX of all but the input
    layer) of every member on its ``n_train`` bootstrap samples, then the holdout forward."""
    fwd = mlp_flops(MODEL_SIZES)
    bwd = 2 * fwd - 2 * IN * HIDDEN[0]
    return MEMBERS * (n_train * (fwd + bwd) + n_holdout * fwd)


def rollout_flops(n: int) -> int:
    """GEMM FLOPs of ``n`` one-step rollouts: the actor and ONE model member per sample."""
    return n * (mlp_flops([OBS, 256, 256, 2 * ACT]) + mlp_flops(MODEL_SIZES))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--transitions", type=int, default=10_000)
    parser.add_argument("--rollouts", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per round")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                        help="the Trainer precision to time (a) and (b) under; bf16-mixed also times fp32")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: allocator.keep_freed_memory() as the CLI does (default); default: glibc as is")
    args = parser.parse_args()
    flush_denormals()  # as the CLI does (precision.flush_denormals)
    kept = keep_freed_memory() if args.malloc == "keep" else False
    bf16 = args.precision == "bf16-mixed"

    def under(precision_bf16: bool, fn):
        """``fn`` under Lightning's bf16-mixed autocast (CPU, bf16, cache off), or as is."""
        def run(*a, **k):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision_bf16, cache_enabled=False):
                return fn(*a, **k)
        return run
    torch.manual_seed(0)

    dynamics = EnsembleDynamics(OBS, ACT, n_members=MEMBERS, n_elites=ELITES, hidden=HIDDEN)
    model = dynamics.ensemble
    optimizer = make_model_optimizer(model)
    obs, action = torch.randn(args.transitions, OBS), torch.rand(args.transitions, ACT) * 2 - 1
    next_obs, reward = obs + 0.1 * torch.randn_like(obs), torch.randn(args.transitions)
    inputs, targets = dynamics.make_inputs(obs, action), dynamics.make_targets(obs, action, reward, next_obs)
    n_holdout = min(int(args.transitions * 0.2), 5000)
    n_train = args.transitions - n_holdout

    actor = TanhGaussianActor(OBS, ACT, hidden=(256, 256))
    start = torch.randn(args.rollouts, OBS)

    def policy(o: torch.Tensor) -> torch.Tensor:
        return actor.sample(o)[0]

    stamps: list[float] = []
    holdout_mse = model.holdout_mse

    def stamped_holdout_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = holdout_mse(x, y)
        stamps.append(time.perf_counter())
        return out

    model.holdout_mse = stamped_holdout_mse  # one call at the end of every epoch (+ one after restoring)

    def fit(epochs: int, precision_bf16: bool = bf16) -> list[float]:
        """Seconds of each epoch after the first (no early stop within ``epochs``)."""
        stamps.clear()
        under(precision_bf16, fit_ensemble)(
            model, inputs, targets, optimizer, max_epochs=epochs, max_epochs_since_update=10**6
        )
        per_epoch = stamps[:epochs]
        return [b - a for a, b in itertools.pairwise(per_epoch)]

    def rollout(precision_bf16: bool = bf16) -> None:
        under(precision_bf16, dynamics.rollout)(start, policy, 1, mode="sample")

    with torch.no_grad():
        start_action = policy(start)

    def model_step() -> None:  # the model's share: the same step with the actions given
        dynamics.transition(start, start_action, mode="sample")

    def rollout_all_members() -> None:  # the naive alternative: every member, then pick
        with torch.no_grad():
            a = policy(start)
            x = dynamics.make_inputs(start, a)
            member = model.sample_elites(x.shape[0])
            mean, logvar = model(x)
            rows = torch.arange(x.shape[0])
            mean, logvar = mean[member, rows], logvar[member, rows]
            _ = mean + (0.5 * logvar).exp() * torch.randn_like(mean)

    fit(2), rollout(), model_step(), rollout_all_members()  # warm-up
    rows: dict[str, list[float]] = {
        "fit_1": [],
        "epoch": [],
        "epoch_fp32": [],
        "rollout": [],
        "rollout_fp32": [],
        "model_step": [],
        "rollout_all": [],
        "peak": [],
    }
    for i in range(args.rounds):
        rows["fit_1"].append(timed(lambda: fit(1)))
        rows["epoch"].extend(fit(1 + args.epochs))
        if bf16:  # the fp32 reference, interleaved
            rows["epoch_fp32"].extend(fit(1 + args.epochs, False))
        rows["rollout"].extend(timed(rollout) for _ in range(3))
        if bf16:
            rows["rollout_fp32"].extend(timed(lambda: rollout(False)) for _ in range(3))
        rows["model_step"].extend(timed(model_step) for _ in range(3))
        if i < 3:  # slow (about 3 s) and only for comparison
            rows["rollout_all"].append(timed(rollout_all_members))
        rows["peak"].append(gemm_peak_flops())
    med = {name: statistics.median(values) for name, values in rows.items() if values}
    peak = med["peak"]
    f_epoch, f_roll = epoch_flops(n_train, n_holdout), rollout_flops(args.rollouts)
    result = {
        "sizes": {"in": IN, "out": OUT, "members": MEMBERS, "elites": ELITES, "hidden": list(HIDDEN)},
        "gemm_peak_gflops": peak / 1e9,
        "train_epoch": {
            "transitions": args.transitions,
            "batch_size": 256,
            "precision": args.precision,
            "seconds": med["epoch"],
            "seconds_min": min(rows["epoch"]),
            "seconds_all": rows["epoch"],
            "fit_max_epochs_1_seconds": med["fit_1"],
            "fp32_seconds": med.get("epoch_fp32", med["epoch"]),
            "gflop": f_epoch / 1e9,
            "flop_bound_seconds": f_epoch / peak,
            "fraction_of_gemm_peak": f_epoch / med["epoch"] / peak,
            "target_seconds": 0.4,
        },
        "rollout": {
            "n": args.rollouts,
            "seconds": med["rollout"],
            "seconds_min": min(rows["rollout"]),
            "seconds_all": rows["rollout"],
            "fp32_seconds": med.get("rollout_fp32", med["rollout"]),
            "model_step_seconds": med["model_step"],
            "model_step_flop_bound_seconds": args.rollouts * mlp_flops(MODEL_SIZES) / peak,
            "all_members_then_pick_seconds": med["rollout_all"],
            "gflop": f_roll / 1e9,
            "flop_bound_seconds": f_roll / peak,
            "fraction_of_gemm_peak": f_roll / med["rollout"] / peak,
            "target_seconds": 0.5,
        },
    }
    te, ro = result["train_epoch"], result["rollout"]
    print(f"GEMM peak {peak / 1e9:.0f} GFLOP/s (median of {args.rounds} rounds, threads={torch.get_num_threads()})")
    print(
        f"(a) train epoch, {args.transitions} transitions, {args.precision}: median {te['seconds']:.3f} s, "
        f"min {te['seconds_min']:.3f} s (target 0.4 s); FLOP-bound {te['flop_bound_seconds']:.3f} s "
        f"({te['gflop']:.1f} GFLOP, median at {te['fraction_of_gemm_peak']:.0%} of peak); "
        f"fit_ensemble(max_epochs=1) {te['fit_max_epochs_1_seconds']:.3f} s"
        + (f"; fp32 epoch in the same rounds {te['fp32_seconds']:.3f} s" if bf16 else "")
    )
    print(
        f"(b) {args.rollouts} one-step rollouts: median {ro['seconds']:.3f} s, "
        f"min {ro['seconds_min']:.3f} s (target 0.5 s); FLOP-bound {ro['flop_bound_seconds']:.3f} s "
        f"({ro['gflop']:.1f} GFLOP, median at {ro['fraction_of_gemm_peak']:.0%} of peak); "
        f"model step alone {ro['model_step_seconds']:.3f} s (FLOP-bound {ro['model_step_flop_bound_seconds']:.3f} s); "
        f"all members then pick {ro['all_members_then_pick_seconds']:.3f} s"
        + (f"; fp32 rollouts in the same rounds {ro['fp32_seconds']:.3f} s" if bf16 else "")
    )
    result["malloc"] = {"setting": args.malloc, "applied": kept}
    print(f"malloc: {args.malloc} (applied: {kept})")
    print(f"wrote {write('world_model', result)}")


if __name__ == "__main__":
    main()
