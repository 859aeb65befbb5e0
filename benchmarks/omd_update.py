"""Speed of one OMD update (identity; CG with at most 10 and 100 iterations) next to one MLE update, at
CartPole sizes (``algos.omd.OMD``) and HalfCheetah sizes (``algos.omd_sac.OMDSAC``), in the same run; and
the CartPole training loop's cost per frame.

    python -m benchmarks.omd_update            # writes benchmarks/results/omd_update.json
    python -m benchmarks.omd_update --quick    # 1 round: a sanity check (writes nothing)

CartPole: batch 256, two 2 x 32 Q-networks, the 2 x 32 model (the code's settings, REFERENCE 3.2).
HalfCheetah: batch 256, SAC 2 x 256, the 2 x 64 model (REFERENCE 3.4). Each variant's ``update`` is
timed on a fixed random batch in rounds, the variants interleaved within a round (this VM's throughput
drifts), and the medians over rounds reported. CG stops early once its relative residual is below
1e-5, so the mean iterations CG made are reported beside its time.

The loop (``--loop-frames``, default 3,000): a CartPole fit of 1,000 random frames and then that many
frames with one update each, evaluation off, timed from the first update to the end; the per-frame
cost times 199,000 plus the random frames' time gives a 200k-frame run's wall time without evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytorch_lightning as pl
import torch
from tensordict import TensorDict

from benchmarks.common import timeit, write
from benchmarks.maac_update import fit_sac_optimizers
from lightning_mbrl import keys
from lightning_mbrl.algos.omd import OMD
from lightning_mbrl.algos.omd_sac import OMDSAC

BATCH = 256
VARIANTS = {  # name -> constructor arguments
    "mle": dict(model_loss="mle"),
    "omd_identity": dict(model_loss="omd", approx="identity"),
    "omd_cg10": dict(model_loss="omd", approx="cg", cg_max_iter=10),
    "omd_cg100": dict(model_loss="omd", approx="cg", cg_max_iter=100),
}
SIZES = {
    "cartpole": (OMD, dict(env="CartPole-v1")),
    "halfcheetah": (OMDSAC, dict(env="HalfCheetah-v5")),
}


def fake_batch(module: OMD | OMDSAC, batch: int = BATCH) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    d = module.spec.observation_dim
    if module.spec.discrete:
        action = torch.randint(module.spec.num_actions, (batch, 1), generator=g)
    else:
        action = torch.rand(batch, module.spec.action_dim, generator=g) * 2 - 1
    return TensorDict({
        keys.OBSERVATION: torch.randn(batch, d, generator=g), keys.ACTION: action,
        keys.REWARD: torch.randn(batch, 1, generator=g), keys.TERMINATED: torch.rand(batch, 1, generator=g) < 0.02,
        keys.NEXT_OBSERVATION: torch.randn(batch, d, generator=g),
    }, batch_size=[batch])


def time_updates(size: str, rounds: int, number: int) -> dict[str, dict]:
    cls, kwargs = SIZES[size]
    modules = {}
    for name, variant in VARIANTS.items():
        module = cls(**kwargs, **variant, max_frames=10, init_random_frames=0, batch_size=BATCH)
        fit_sac_optimizers(module)  # the named optimizers, outside a fit
        modules[name] = module
    batch = fake_batch(next(iter(modules.values())))
    times: dict[str, list[float]] = {name: [] for name in modules}
    iterations: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(rounds):
        for name, module in modules.items():
            outs = []
            times[name].append(timeit(lambda: outs.append(module.update(batch)), warmup=3, repeats=1, number=number))
            if "cg_iterations" in outs[-1].keys():
                iterations[name].extend(float(o["cg_iterations"]) for o in outs)
    rows = {}
    for name in modules:
        rows[name] = {"ms": 1e3 * statistics.median(times[name])}
        if iterations[name]:
            rows[name]["cg_iterations_mean"] = statistics.mean(iterations[name])
    mle = rows["mle"]["ms"]
    for row in rows.values():
        row["over_mle"] = row["ms"] / mle
    return rows


class _LoopTimer(pl.Callback):
    def __init__(self) -> None:
        self.started = self.first_update = None

    def on_train_start(self, trainer, module) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, module, *args) -> None:
        if self.first_update is None and module.updates:
            self.first_update, self.frames_at_first = time.perf_counter(), module.frames

    def on_train_end(self, trainer, module) -> None:
        self.ended, self.frames_at_end = time.perf_counter(), module.frames


def time_loop(model_loss: str, frames: int) -> dict:
    module = OMD(model_loss=model_loss, max_frames=1_000 + frames, init_random_frames=1_000)
    timer = _LoopTimer()
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[timer], accelerator="cpu").fit(module)
    per_frame = (timer.ended - timer.first_update) / (timer.frames_at_end - timer.frames_at_first)
    random_s = timer.first_update - timer.started
    return {"ms_per_frame": 1e3 * per_frame, "random_frames_s": random_s,
            "run_200k_without_eval_min": (random_s + 199_000 * per_frame) / 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20, help="updates per timing round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop-frames", type=int, default=3_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, number, loop_frames = (1, 2, 50) if args.quick else (args.rounds, args.number, args.loop_frames)
    result = {"batch": BATCH, "updates": {size: time_updates(size, rounds, number) for size in SIZES},
              "cartpole_loop": {loss: time_loop(loss, loop_frames) for loss in ("omd", "mle")}}
    for size, rows in result["updates"].items():
        print(size, {name: {k: round(v, 2) for k, v in row.items()} for name, row in rows.items()})
    print("loop", result["cartpole_loop"])
    if not args.quick:
        write("omd_update", result)


if __name__ == "__main__":
    main()
