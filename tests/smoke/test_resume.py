"""T1 smoke: a run killed (SIGKILL) between checkpoints and resumed with ``fit --ckpt_path last``
logs exactly what an uninterrupted run with the same seed logs after the checkpoint: every loss,
model metric, counter and evaluation return (policy and BOOTS), bit for bit (CPU, one thread). The checkpoint holds
the replay buffer (size proportional to the data), the env mid-episode, the collector's carrier
and the RNG states; MBPO's holds its model replay too. In fp32 for every case, and under
``--trainer.precision bf16-mixed`` for SAC with BOOTS and for MBPO."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY

CHECKPOINT_AT, KILL_AT, MAX_FRAMES = 150, 190, 260
COMMON = [
    "--model.max_frames", str(MAX_FRAMES), "--model.max_episode_steps", "40",
    "--checkpoint.every_frames", str(CHECKPOINT_AT), "--eval.every_frames", "30", "--trainer.log_every_n_steps", "1",
]
CASES = {
    # SAC with BOOTS, which fits its own model (its weights, optimizer and call count are callback state)
    "sac_pendulum": ["--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=60",
                     "--trainer.callbacks.episodes=2", "--trainer.callbacks.n_candidates=8",
                     "--trainer.callbacks.n_elites=2", "--trainer.callbacks.n_iters=2",
                     "--trainer.callbacks.own_model_steps=10", "--trainer.callbacks.own_model_units=16"],
    "mbpo_invertedpendulum": ["--model.model_train_freq", "20", "--model.rollout_batch_size", "64",
                              "--model.epoch_length", "40", "--model.rollout_schedule", "[1, 4, 1, 3]",
                              "--model.max_model_epochs", "3", "--model.model_hidden", "[32, 32]",
                              "--model.updates_per_frame", "2"],
    "mbsac_halfcheetah": ["--model.model_units", "32", "--model.model_blocks", "1", "--model.updates_per_frame", "1"],
    # MAAC: STEVE's member draws and the pathwise rollouts use the global RNG, which the checkpoint carries
    "maac_pendulum": ["--model.model_train_freq", "20", "--model.rollout_batch_size", "64", "--model.epoch_length", "40",
                      "--model.max_model_epochs", "3", "--model.model_hidden", "[32, 32]", "--model.ensemble_size", "4",
                      "--model.num_elites", "4", "--model.updates_per_frame", "2", "--model.target_update_every", "3"],
    # OMD with SAC inside: the implicit gradient's noise draws come from the global RNG, which the checkpoint carries
    "omd_halfcheetah": ["--model.model_hidden", "16"],
}
NOT_COMPARED = {"fps"}  # wall-clock


def run(recipe: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", f"recipes.{recipe}", "fit", "--config", TINY, *COMMON, *CASES[recipe], *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def rows_after(metrics: Path, frames: int) -> dict[tuple[int, str], str]:
    """``(step, column) -> value`` of every logged number at env frames > ``frames``."""
    out = {}
    with open(metrics) as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            if step > frames:
                for column, value in row.items():
                    if value != "" and column not in NOT_COMPARED and column != "step":
                        out[(step, column)] = value
    return out


@pytest.mark.parametrize("recipe, precision", [*((r, "32-true") for r in sorted(CASES)),
                                               ("sac_pendulum", "bf16-mixed"), ("mbpo_invertedpendulum", "bf16-mixed")])
def test_killed_and_resumed_run_matches_the_uninterrupted_run(recipe, precision, tmp_path):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir(), broken.mkdir()
    done = run(recipe, straight, "--trainer.precision", precision)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = run(recipe, broken, "--trainer.precision", precision,
                 "--trainer.callbacks+=tests.helpers.KillAt", f"--trainer.callbacks.frames={KILL_AT}")
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL: nothing ran after it
    checkpoints = broken / "runs" / recipe / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"frames={CHECKPOINT_AT}.ckpt", "last.ckpt"]

    # the checkpoint: the filled replay only, and every piece of the runtime
    saved = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert saved["loop_counters"]["frames"] == CHECKPOINT_AT
    (state,) = saved["rank_states"]
    assert state["replay"]["size"] == CHECKPOINT_AT
    assert state["env"] is not None and "mujoco" in state["env"] or recipe.endswith("pendulum")
    assert ("model_replay" in state) == recipe.startswith(("mbpo", "maac"))

    resumed = run(recipe, broken, "--ckpt_path", "last", "--trainer.precision", precision)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected = rows_after(straight / "runs" / recipe / "version_0" / "metrics.csv", CHECKPOINT_AT)
    got = rows_after(broken / "runs" / recipe / "version_0" / "metrics.csv", CHECKPOINT_AT)  # the resume continues the run folder
    assert {c for _, c in expected} >= {"train/loss_critic", "eval/return", "updates"}
    if recipe == "sac_pendulum":
        assert {"eval/boots/return", "eval/boots/own_model_loss"} <= {c for _, c in expected}
    if recipe.startswith(("mbpo", "maac")):
        assert {"model/holdout_mse", "model/imagined_return"} <= {c for _, c in expected}
    if recipe.startswith("omd"):
        assert "train/loss_outer" in {c for _, c in expected}
        assert saved["loop_counters"]["inner_updates"] == CHECKPOINT_AT - 100
    assert got.keys() == expected.keys()
    mismatched = sorted(k for k in expected if got[k] != expected[k])
    assert not mismatched, [(k, expected[k], got[k]) for k in mismatched[:10]]
    assert max(step for step, _ in got) == MAX_FRAMES
