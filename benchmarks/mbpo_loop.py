"""Whole-loop speed of MBPO on HalfCheetah-v5 with the MBPO code's hyperparameters (REFERENCE 1.2-1.4).

    python -m benchmarks.mbpo_loop [--threads 1] [--precision bf16-mixed] [--settings mbrl-lib]
                                                   # ~15 min; writes benchmarks/results/mbpo_loop[_mbrl_lib][_bf16].json

The run: ``prefill`` uniform random frames, ``settle`` policy frames (the first model fits start from
scratch and take many more epochs than later, warm-started ones), then a measured window of
``window`` policy frames (default 1,000 = one MBPO epoch: 4 model fits, 4 x 100k rollouts, 40,000 SAC
updates, 1,000 env steps and one evaluation of 5 episodes, the recipe's schedule).

Reported, in seconds per 1,000 real frames:

- ``whole``: wall time of the window inside ``Trainer.fit`` (Lightning's loop, logging, callbacks);
- ``in_loop``: the same window split into SAC updates (batch mixing included), model training,
  rollouts (into the model replay), env steps (collector and real replay) and evaluation, timed
  by wrapping the module's methods; ``whole - sum(in_loop)`` is the loop's own overhead;
- ``alone``: each part timed again outside the loop at the end of the run on the same state (200
  SAC updates, one model fit divided by its epochs times the window's epochs, 3 imagination rounds,
  1,000 collector frames, one evaluation), scaled to the window's counts. Target: whole within 1.2x
  of the sum of the parts alone;
- ``update_split_ms``: one SAC update split, at the end of the run: ``mixed_batch()`` alone, ``update``
  on one fixed batch, and ``update(mixed_batch())`` (ms each, interleaved rounds).

``--settings mbrl-lib`` runs mbrl-lib 0.2.0's HalfCheetah MBPO settings instead (G = 10 SAC updates per
frame, SAC hidden 512, real_ratio 0, one evaluation episode; the rest as MBPO's), the loop mbrl-lib's
own MBPO was timed on. ``--precision`` is the Trainer's (``32-true`` or ``bf16-mixed``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import defaultdict

import pytorch_lightning as pl
import torch

from benchmarks.common import write
from lightning_mbrl.allocator import keep_freed_memory
from lightning_mbrl.precision import flush_denormals
from callbacks.evaluation import PolicyEval
from lightning_mbrl.algos.mbpo import MBPO

PARTS = ("sac_updates", "model_training", "rollouts", "env_steps", "evaluation")
SETTINGS = {
    "mbpo": {"model": {"updates_per_frame": 40}, "eval_episodes": 5},
    "mbrl-lib": {"model": {"updates_per_frame": 10, "hidden": (512, 512), "real_ratio": 0.0}, "eval_episodes": 1},
}


class Window(pl.Callback):
    """Times the window and, at the end of training, each part alone."""

    def __init__(self, start: int, end: int, evaluator: PolicyEval, alone_updates: int) -> None:
        self.start, self.end, self.evaluator, self.alone_updates = start, end, evaluator, alone_updates
        self.spent: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self.measuring = False
        self.result: dict = {}

    def timed(self, part: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.measuring:
                self.spent[part] += time.perf_counter() - t0
                self.counts[part] += 1
            return out
        return wrapper

    def on_fit_start(self, trainer, module) -> None:
        module.update = self.timed("sac_updates", module.update)
        module.mixed_batch = self.timed("sac_updates", module.mixed_batch)
        module.fit_world_model = self.timed("model_training", module.fit_world_model)
        module.imagine = self.timed("rollouts", module.imagine)
        module.collect = self.timed("env_steps", module.collect)
        self.evaluator.evaluate = self.timed("evaluation", self.evaluator.evaluate)
        self.epochs = 0
        fit = module.fit_world_model

        def count_epochs():
            stats = fit()
            if self.measuring:
                self.epochs += int(stats["epochs"])
            return stats
        module.fit_world_model = count_epochs

    def on_train_batch_start(self, trainer, module, *args) -> None:
        if module.frames == self.start:
            self.measuring, self.t0 = True, time.perf_counter()

    def on_train_batch_end(self, trainer, module, *args) -> None:  # runs after PolicyEval's
        if module.frames == self.end and self.measuring:
            self.whole = time.perf_counter() - self.t0
            self.measuring = False

    def on_train_end(self, trainer, module) -> None:
        # the parts alone run outside training_step: give them the autocast Lightning gives training_step
        with trainer.precision_plugin.train_step_context():
            self.measure_alone(trainer, module)

    def measure_alone(self, trainer, module) -> None:
        window = self.end - self.start
        per_1000 = 1000.0 / window
        in_loop = {p: self.spent[p] * per_1000 for p in PARTS}
        fits, updates = self.counts["model_training"], module.hparams.updates_per_frame * window
        alone = {}
        t0 = time.perf_counter()
        for _ in range(self.alone_updates):
            module.update(module.mixed_batch())
        alone["sac_updates"] = (time.perf_counter() - t0) / self.alone_updates * updates * per_1000
        fixed = module.mixed_batch()
        split = defaultdict(list)
        for _ in range(5):
            for name, fn in (("mixed_batch", module.mixed_batch), ("update_fixed_batch", lambda: module.update(fixed)),
                             ("update_mixed_batch", lambda: module.update(module.mixed_batch()))):
                t1 = time.perf_counter()
                for _ in range(max(1, self.alone_updates // 10)):
                    fn()
                split[name].append((time.perf_counter() - t1) / max(1, self.alone_updates // 10) * 1e3)
        t0 = time.perf_counter()
        stats = module.fit_world_model()
        alone["model_training"] = (time.perf_counter() - t0) / int(stats["epochs"]) * self.epochs * per_1000
        t0 = time.perf_counter()
        for _ in range(3):
            module.imagine()
        alone["rollouts"] = (time.perf_counter() - t0) / 3 * fits * per_1000
        t0 = time.perf_counter()
        for _ in range(1000):
            module.runtime.buffer.extend(next(module.runtime.batches).exclude("collector"))
        alone["env_steps"] = (time.perf_counter() - t0) / 1000 * window * per_1000
        t0 = time.perf_counter()
        self.evaluator.evaluate(module)
        alone["evaluation"] = (time.perf_counter() - t0) * self.counts["evaluation"] * per_1000
        whole = self.whole * per_1000
        self.result = {
            "whole_s_per_1000_frames": whole,
            "in_loop_s_per_1000_frames": in_loop,
            "loop_overhead_s_per_1000_frames": whole - sum(in_loop.values()),
            "alone_s_per_1000_frames": alone,
            "whole_over_sum_alone": whole / sum(alone.values()),
            "update_split_ms": {name: statistics.median(v) for name, v in split.items()},
            "window": {"frames": window, "model_fits": fits, "model_epochs": self.epochs, "sac_updates": updates,
                       "evaluations": self.counts["evaluation"]},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=5000)
    parser.add_argument("--settle", type=int, default=250)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--alone-updates", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--flush-denormals", action=argparse.BooleanOptionalAction, default=True,
                        help="flush subnormal floats to zero as the CLI does (--no-flush-denormals: the 'before')")
    parser.add_argument("--out", default=None, help="result name (default: mbpo_loop[_mbrl_lib][_bf16])")
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                        help="the Trainer's precision")
    parser.add_argument("--settings", choices=tuple(SETTINGS), default="mbpo",
                        help="mbpo: the MBPO code's HalfCheetah values; mbrl-lib: mbrl-lib 0.2.0's (G 10, hidden 512, "
                             "real_ratio 0, 1 eval episode)")
    args = parser.parse_args()
    if args.flush_denormals:
        flush_denormals()  # as the CLI does, before the first parallel op (precision.flush_denormals)
    keep_freed_memory()  # as the CLI does
    if args.threads:
        torch.set_num_threads(args.threads)
    start = args.prefill + args.settle
    end = start + args.window
    settings = SETTINGS[args.settings]
    model = MBPO("HalfCheetah-v5", max_frames=end, init_random_frames=args.prefill, **settings["model"])
    evaluator = PolicyEval(every_frames=1000, episodes=settings["eval_episodes"])
    window = Window(start, end, evaluator, args.alone_updates)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[evaluator, window], log_every_n_steps=50,
                         precision=args.precision, accelerator="cpu")
    trainer.fit(model)
    res = window.result
    name = "mbpo_loop" + ("" if args.settings == "mbpo" else "_" + args.settings.replace("-", "_"))
    path = write(args.out or name + ("_bf16" if args.precision == "bf16-mixed" else ""), {"args": vars(args), **res})
    print(f"whole loop: {res['whole_s_per_1000_frames']:.1f} s per 1000 frames; "
          f"sum of parts alone {sum(res['alone_s_per_1000_frames'].values()):.1f} s "
          f"(ratio {res['whole_over_sum_alone']:.2f})")
    for part in PARTS:
        print(f"  {part:15s} in loop {res['in_loop_s_per_1000_frames'][part]:7.2f} s   "
              f"alone {res['alone_s_per_1000_frames'][part]:7.2f} s")
    print(f"  loop overhead   {res['loop_overhead_s_per_1000_frames']:7.2f} s   window {res['window']}")
    print("  one update, ms: " + ", ".join(f"{k} {v:.2f}" for k, v in res["update_split_ms"].items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
