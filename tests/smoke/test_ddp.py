"""T1 smoke: data-parallel training with Lightning's own DDP strategy on 2 CPU processes (gloo),
by trainer flags only. Each rank collects its own data; gradients of every optimizer, normaliser
statistics and ensemble elites are shared, so the parameters and buffers of every rank are
bit-identical after training. Each run is bounded by a timeout (a deadlock fails the test)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY
from tests.helpers import check_routing

DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
CASES = {
    "sac_pendulum": [],
    "mbpo_invertedpendulum": ["--model.model_train_freq", "50", "--model.rollout_batch_size", "100",
                              "--model.max_model_epochs", "3", "--model.model_hidden", "[32, 32]"],
    "mbsac_halfcheetah": ["--model.model_units", "32", "--model.model_blocks", "1"],
    "dqn_cartpole": [],
}


def run(recipe: str, cwd: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", f"recipes.{recipe}", "fit", "--config", TINY, *CASES[recipe], *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def dump_args(directory: Path) -> list[str]:
    return ["--trainer.callbacks+=tests.helpers.DumpRank", f"--trainer.callbacks.directory={directory}"]


def probe_args(directory: Path) -> list[str]:
    return ["--trainer.callbacks+=tests.helpers.RoutingProbe", f"--trainer.callbacks.directory={directory}"]


@pytest.mark.parametrize("recipe", sorted(CASES))
def test_two_cpu_ranks_train_identical_parameters_on_different_data(recipe, tmp_path):
    done = run(recipe, tmp_path, *DDP, *dump_args(tmp_path / "dump"), *probe_args(tmp_path / "dump"))
    assert done.returncode == 0, done.stderr[-3000:]
    # each rank against the reference, not against the other rank: an agent update moves only the
    # agent and steps only its optimizers (the averaged gradients give every optimizer of the
    # module a gradient, so a wrongly routed step would move the world model); Adam's step counts
    # equal the loop's counters
    for rank in (0, 1):
        check_routing(torch.load(tmp_path / "dump" / f"routing{rank}.pt"))
    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt") for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    # the schedule is per rank: 200 frames and 100 * G updates on each
    assert r0["frames"] == r1["frames"] == 200 and r0["updates"] == r1["updates"] > 0
    # different envs (seeds seed + rank * 1000), so different data
    assert r0["observations"].shape == r1["observations"].shape == (200, r0["observations"].shape[1])
    assert not torch.equal(r0["observations"], r1["observations"])
    # ... and the same model: every parameter and buffer (target networks, normalisers, elites)
    assert r0["state_dict"].keys() == r1["state_dict"].keys()
    differ = [k for k in r0["state_dict"] if not torch.equal(r0["state_dict"][k], r1["state_dict"][k])]
    assert not differ
    # the end checkpoint holds both ranks' replay buffers and envs
    (last,) = (tmp_path / "runs" / recipe).glob("version_*/checkpoints/last.ckpt")
    saved = torch.load(last, weights_only=True)
    assert [s["replay"]["size"] for s in saved["rank_states"]] == [200, 200]
    a, b = (s["replay"]["data"]["observation"] for s in saved["rank_states"])
    assert torch.equal(a, r0["observations"]) and torch.equal(b, r1["observations"])


def test_ddp_run_killed_and_resumed_finishes_and_a_world_size_change_is_a_clear_error(tmp_path):
    ckpt = ["--model.max_frames", "200", "--checkpoint.every_frames", "100"]
    killed = run("sac_pendulum", tmp_path, *DDP, *ckpt, "--trainer.callbacks+=tests.helpers.KillAt",
                 "--trainer.callbacks.frames=150")
    assert killed.returncode == -9, killed.stderr[-3000:]  # every rank killed itself at frame 150
    (last,) = (tmp_path / "runs" / "sac_pendulum").glob("version_*/checkpoints/last.ckpt")
    saved = torch.load(last, weights_only=True)
    assert saved["loop_counters"]["frames"] == 100 and len(saved["rank_states"]) == 2

    wrong = run("sac_pendulum", tmp_path, *ckpt, "--ckpt_path", "last")
    assert wrong.returncode == 2
    assert "written by 2 rank(s)" in wrong.stderr and "--trainer.devices 2" in wrong.stderr

    again = run("sac_pendulum", tmp_path, *DDP, *ckpt, "--ckpt_path", "last", *dump_args(tmp_path / "dump"))
    assert again.returncode == 0, again.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "dump" / f"rank{r}.pt") for r in (0, 1))
    assert r0["frames"] == r1["frames"] == 200 and r0["updates"] == r1["updates"] == 100
    for rank, r in enumerate((r0, r1)):  # each rank got its own first 100 transitions back
        torch.testing.assert_close(r["observations"][:100], saved["rank_states"][rank]["replay"]["data"]["observation"])
    assert not [k for k in r0["state_dict"] if not torch.equal(r0["state_dict"][k], r1["state_dict"][k])]


def test_videos_under_ddp_are_recorded_by_rank_0_without_a_hang(tmp_path):
    """VideoEval renders on rank 0 only; it must not call a collective there (trainer.log_dir is a
    broadcast), or rank 0 waits for rank 1 forever."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}
    cmd = [sys.executable, "-m", "recipes.sac_halfcheetah", "fit", "--config", TINY, *DDP, "--model.max_episode_steps=20",
           "--trainer.callbacks+=callbacks.VideoEval", "--trainer.callbacks.every_frames=100",
           "--trainer.callbacks.format=gif", "--trainer.callbacks.width=32", "--trainer.callbacks.height=32"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    (videos,) = (tmp_path / "runs" / "sac_halfcheetah").glob("version_*/videos")
    assert sorted(p.name for p in videos.iterdir()) == ["policy_frames=100.gif", "policy_frames=200.gif"]
