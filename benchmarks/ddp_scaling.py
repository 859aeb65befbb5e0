"""Data-parallel scaling of the tiny MBPO recipe: 1 vs 2 CPU ranks (Lightning DDP, gloo), and on a GPU
box 1 vs N GPUs (``--accelerator gpu``).

    python -m benchmarks.ddp_scaling            # ~3 min on 2 cores; writes benchmarks/results/ddp_scaling.json

Each configuration is one ``python -m recipes.mbpo_invertedpendulum fit`` process tree (the recipe with
``recipes/tiny.yaml``, made longer so that the measured window is steady state). The window starts when
the random warm-up ends and stops at the end of training; evaluation and checkpoints are off.
Reported per configuration:

- ``frames_per_s``: env frames of all ranks per second (each rank collects its own);
- ``updates_per_s``: SAC gradient steps per second (the ranks step together, each on its own batch, so
  one step consumes ``ranks * batch_size`` samples: ``samples_per_s``);
- ``model_fits``: ensemble fits in the window (also synchronised across ranks).

On a 2-core box, two ranks with one thread each are compared with one rank with one thread (the
parallel efficiency of the data-parallel code) and with one rank using both cores through intra-op
threads (what the same machine gives without DDP). The latency of one all-reduce between the
ranks (``allreduce_ms``, gloo on CPU, for the sizes of a 1k-float buffer and of the SAC critic's and
actor's flat gradients here) is measured too: SAC averages gradients twice per update.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.common import write

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "mbpo_invertedpendulum"
OVERRIDES = [
    "--config", str(ROOT / "recipes" / "tiny.yaml"),
    "--model.max_frames", "600", "--model.init_random_frames", "100", "--model.max_episode_steps", "1000",
    "--model.updates_per_frame", "10", "--model.batch_size", "256", "--model.hidden", "[256, 256]",
    "--model.model_train_freq", "250", "--model.rollout_batch_size", "10000", "--model.max_model_epochs", "5",
    "--eval.every_frames", "0", "--checkpoint.every_frames", "0", "--trainer.log_every_n_steps", "100",
]


class Throughput(pl.Callback):
    """Times the window from the end of warm-up to the end of training; rank 0 writes JSON to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.start: tuple[float, int, int, int] | None = None

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if self.start is None and module.frames >= module.hparams.init_random_frames:
            self.start = (time.perf_counter(), module.frames, module.updates, module.model_fits)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        t0, frames0, updates0, fits0 = self.start
        seconds = time.perf_counter() - t0
        ranks = trainer.world_size
        result = {
            "ranks": ranks,
            "seconds": seconds,
            "frames_per_s": ranks * (module.frames - frames0) / seconds,
            "updates_per_s": (module.updates - updates0) / seconds,
            "samples_per_s": ranks * module.hparams.batch_size * (module.updates - updates0) / seconds,
            "model_fits": module.model_fits - fits0,
        }
        if trainer.is_global_zero:
            Path(self.path).write_text(json.dumps(result))


def run(ranks: int, threads: int, accelerator: str, workdir: Path) -> dict[str, Any]:
    out = workdir / f"r{ranks}_t{threads}.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", f"recipes.{RECIPE}", "fit", *OVERRIDES,
           "--trainer.accelerator", accelerator, "--trainer.devices", str(ranks),
           "--trainer.callbacks+=benchmarks.ddp_scaling.Throughput", f"--trainer.callbacks.path={out}"]
    if ranks > 1:
        cmd += ["--trainer.strategy", "ddp"]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return {"threads_per_rank": threads, **json.loads(out.read_text())}


ALLREDUCE_SIZES = (1_000, 67_000, 135_000)  # floats: tiny; the actor's and the twin critics' gradients here


def _allreduce_rank(rank: int, port: int, out: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for n in ALLREDUCE_SIZES:
            x = torch.randn(n)
            for _ in range(20):
                dist.all_reduce(x)
            t0 = time.perf_counter()
            for _ in range(200):
                dist.all_reduce(x)
            if rank == 0:
                out[n] = (time.perf_counter() - t0) / 200 * 1e3
    finally:
        dist.destroy_process_group()


def allreduce_latency_ms() -> dict[int, float]:
    """Milliseconds per gloo all-reduce between two CPU processes, by buffer size in floats."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_allreduce_rank, args=(port, out), nprocs=2, join=True)
    return {n: out[n] for n in ALLREDUCE_SIZES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--ranks", type=int, default=2, help="the largest number of ranks")
    args = parser.parse_args()
    if args.accelerator == "cpu":
        configs = [(1, 1), (1, args.ranks), (args.ranks, 1)]
    else:
        configs = [(n, 1) for n in sorted({1, args.ranks})]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(ranks, threads, args.accelerator, Path(tmp)) for ranks, threads in configs]
    base = results[0]
    for r in results:
        r["frames_speedup_vs_1_rank_1_thread"] = r["frames_per_s"] / base["frames_per_s"]
        r["parallel_efficiency"] = r["frames_speedup_vs_1_rank_1_thread"] / (r["ranks"] * r["threads_per_rank"])
        print(f"ranks {r['ranks']} x {r['threads_per_rank']} thread(s): {r['frames_per_s']:.1f} frames/s, "
              f"{r['updates_per_s']:.1f} updates/s, {r['samples_per_s']:.0f} samples/s, "
              f"speed-up {r['frames_speedup_vs_1_rank_1_thread']:.2f}, efficiency {r['parallel_efficiency']:.2f}")
    latency = allreduce_latency_ms() if args.accelerator == "cpu" else {}
    for n, ms in latency.items():
        print(f"gloo all-reduce of {n} floats between 2 CPU processes: {ms:.2f} ms")
    path = write(f"ddp_scaling_{args.accelerator}", {"recipe": RECIPE, "overrides": OVERRIDES, "results": results,
                                                     "allreduce_ms": latency})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
