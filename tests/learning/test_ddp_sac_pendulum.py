"""T2 learning (slow): SAC on Pendulum-v1 trained by 2 CPU ranks (Lightning DDP, gloo) with the flags
that keep the single-process recipe's schedule (README, "Scaling out"): 7,500 frames per rank (15k in
all), 500 random frames per rank, G = 2 per rank frame, batch 128 per rank (256 per gradient step).
It must reach the single-process test's threshold (-250, mean of 2 x 10 evaluation episodes) within
those 15k frames: data parallelism must not break learning."""

import csv
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

THRESHOLD = -250.0


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_two_rank_sac_pendulum_reaches_threshold(tmp_path, precision_args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", "recipes.sac_pendulum", "fit", *precision_args,
           "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
           "--model.max_frames", "7500", "--model.init_random_frames", "500", "--model.updates_per_frame", "2",
           "--model.batch_size", "128", "--eval.every_frames", "500", "--checkpoint.every_frames", "0"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3500)
    assert done.returncode == 0, done.stderr[-3000:]
    (metrics,) = (tmp_path / "runs" / "sac_pendulum").glob("version_*/metrics.csv")
    with open(metrics) as f:
        curve = [(int(r["step"]), float(r["eval/return"])) for r in csv.DictReader(f) if r.get("eval/return")]
    print("frames per rank -> eval return (both ranks' episodes):", curve)
    assert [frames for frames, _ in curve] == list(range(500, 7501, 500))
    assert max(r for _, r in curve) >= THRESHOLD
