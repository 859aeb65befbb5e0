"""T1 for paper 001's agents: OfflineDynaDQN trains under a plain Lightning Trainer (``training_step``,
named optimizers, logging) with the exact number of updates, and the 3x3 benchmark writes its JSON
and figure."""

from __future__ import annotations

import csv
import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger

from benchmarks import generalization_3x3, generalization_online, panflute_frozen_model, panflute_smoothing
from lightning_mbrl.algos.offline_dyna import OfflineDynaDQN
from lightning_mbrl.envs.gridworlds import PanFlute
from tests.conftest import ROOT
from tests.smoke.test_recipes import SEEDED
from tests.smoke.test_resume import rows_after


@pytest.mark.parametrize("agent", ["er", "model"])
def test_offline_dyna_fits_under_a_trainer(agent, tmp_path) -> None:
    module = OfflineDynaDQN(agent=agent, seeds=2, updates=40, log_every=20, hidden=(8,), batch_size=20, rollout_length=10)
    trainer = pl.Trainer(max_epochs=1, logger=CSVLogger(tmp_path), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module)
    assert module.updates_done == 40
    with open(f"{trainer.logger.log_dir}/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval/correct_fraction")]
    assert len(rows) == 2 and "train/loss_q" in rows[0]
    assert ("train/loss_observation" in rows[0]) == (agent == "model")


def test_benchmark_writes_results_and_figure(tmp_path) -> None:
    out = tmp_path / "g.json"
    generalization_3x3.main(["--seeds", "2", "--updates", "3", "--only", "single_cell", "--timing_updates", "1", "--model_first_updates", "2", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert [(r["coverage"], r["agent"]) for r in doc["runs"]] == [("single_cell", a) for a in generalization_3x3.AGENTS]
    assert all(len(r["cells"]) == 12 for r in doc["runs"]) and len(doc["seed_scaling"]) == 3
    assert out.with_suffix(".png").stat().st_size > 0
    model_runs = [r for r in doc["runs"] if r["agent"] != "er"]
    assert all(r["model_first_updates"] == 2 and len(r["model_position_accuracy"]) == 2 for r in model_runs)
    # model-10 reuses model-1's fit: the same model accuracy per seed
    assert model_runs[0]["model_position_accuracy"] == model_runs[1]["model_position_accuracy"]


def test_benchmark_stdout_mode_prints_json_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never.json"
    generalization_3x3.main(["--seeds", "1", "--updates", "2", "--only", "no_evaluation", "er", "--timing_updates", "0",
                             "--stdout", "--out", str(out)])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["benchmark"] == "generalization_3x3" and [r["agent"] for r in doc["runs"]] == ["er"]
    assert "no_evaluation" in captured.err and not out.exists()


TINY_SEEDS = str(ROOT / "recipes" / "tiny_seeds.yaml")


def test_every_seeded_recipe_is_collected():
    assert set(SEEDED) == {"dyna_dqn_procmaze", "dyna_dqn_buttongrid", "dyna_dqn_panflute"}


@pytest.mark.parametrize("recipe,agent", [(r, "simple") for r in SEEDED]
                         + [("dyna_dqn_procmaze", a) for a in ("er", "perfect", "categorical", "gaussian")])
def test_seeded_recipe_fits_with_tiny_overlay(recipe, agent, in_tmp):
    cli = importlib.import_module(f"recipes.{recipe}").main(["fit", "--config", TINY_SEEDS, f"--model.agent={agent}"])
    model = cli.model
    assert (model.env_steps, model.updates_done) == (40, 20)  # 1 update per step after 20 learning-start steps
    with open(pathlib.Path(cli.trainer.logger.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [20, 40]
    assert {"eval/return", "eval/return_seed0", "eval/return_seed1", "train/loss_q"} <= set(rows[-1])


def test_seeded_recipe_bad_value_is_one_line(in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module("recipes.dyna_dqn_procmaze").main(["fit", "--config", TINY_SEEDS, "--model.regime=medium"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: model.regime must be one of ['high', 'low'], got medium"


def test_seed_scaling_benchmark_runs(tmp_path):
    from benchmarks import seed_scaling

    out = tmp_path / "s.json"
    seed_scaling.main(["--seeds", "2", "--agents", "er", "--steps", "1", "--repeats", "1", "--out", str(out),
                       "--precision", "32-true", "bf16-mixed"])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["agent"], r["precision"], r["seeds"]) for r in rows] == [("er", "32-true", 2), ("er", "bf16-mixed", 2)]
    assert all(r["ratio"] > 0 for r in rows)
    with seed_scaling._context("bf16-mixed"):  # what the bf16 rows ran in
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with seed_scaling._context("32-true"):
        assert not torch.is_autocast_enabled("cpu")


def _seeded_run(cwd: pathlib.Path, agent: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "recipes.dyna_dqn_procmaze", "fit", "--config", TINY_SEEDS, f"--model.agent={agent}",
           "--model.steps=60", "--model.eval_every=10", "--checkpoint.every_frames=24", *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("agent", ["perfect", "categorical"])
def test_seeded_run_killed_and_resumed_matches_the_uninterrupted_run(agent, tmp_path):
    """SIGKILL between checkpoints, then ``fit --ckpt_path last``: every per-seed evaluation and loss
    logged after the checkpoint equals the uninterrupted run's, bit for bit (the checkpoint holds the
    filled replay, the env states (which the perfect model rolls out from), every seed's generators and
    the evaluation curve)."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir(), broken.mkdir()
    done = _seeded_run(straight, agent)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = _seeded_run(broken, agent, "--trainer.callbacks+=tests.helpers.KillAt", "--trainer.callbacks.frames=41")
    assert killed.returncode == -9, killed.stderr[-3000:]
    checkpoints = broken / "runs" / "dyna_dqn_procmaze" / "version_0" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["frames=24.ckpt", "last.ckpt"]
    saved = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert saved["loop_counters"] == {"frames": 24, "stored": 24, "updates_done": 4, "target_copies": 0}
    state = saved["seeded_state"]
    assert state["replay"]["observation"].shape[:2] == (2, 24)  # the filled part only
    assert ("env_state" in state["replay"]) == (agent == "perfect")
    assert state["eval_steps"].tolist() == [10, 20]

    resumed = _seeded_run(broken, agent, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = rows_after(straight / "runs" / "dyna_dqn_procmaze" / "version_0" / "metrics.csv", 24)
    got = rows_after(broken / "runs" / "dyna_dqn_procmaze" / "version_0" / "metrics.csv", 24)
    assert {"eval/return_seed0", "eval/return_seed1", "train/loss_q"} <= {c for _, c in expected}
    assert sorted({s for s, _ in expected}) == [30, 40, 50, 60]
    assert got == expected


def test_alphabetical_policy_follows_the_rewarded_cycle():
    """With probability 1 of following, the policy plays n-1, n-2, ..., 0 forever, so every n-th step
    has all n pipe-ends lit and is rewarded, and no other step is (the spontaneous event is off)."""
    core = PanFlute(4, spontaneous=False)
    data = panflute_smoothing.alphabetical_trajectories(core, episodes=3, steps=12, follow=1.0,
                                                        generator=torch.Generator().manual_seed(0))
    actions = data["action"].reshape(12, 3)  # time-major
    assert actions[:, 0].tolist() == [3, 2, 1, 0] * 3
    lit_next = core.lit_ends(data["next_observation"]).reshape(12, 3)[:, 0]
    assert lit_next.tolist() == [0, 0, 0, 4] * 3  # pipe i's end is lit i + 1 steps after action i
    assert data["reward"].reshape(12, 3)[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]


def test_panflute_smoothing_and_online_benchmarks_write_results_and_figures(tmp_path):
    out = tmp_path / "s.json"
    panflute_smoothing.main(["--seeds", "2", "--steps", "30", "--pipes", "4", "--episodes", "4", "--length", "20",
                             "--out", str(out)])
    doc = json.loads(out.read_text())
    assert [r["agent"] for r in doc["agents"]] == ["simple", "gaussian"]
    for row in doc["agents"]:
        assert len(row["reward_by_ends_now"]) == 5 and len(row["reward_by_ends_now"][0]) == 2  # bins x seeds
    assert out.with_suffix(".png").stat().st_size > 0
    out = tmp_path / "o.json"
    generalization_online.main(["--envs", "gridworld/panflute-3", "--agents", "er", "perfect", "--steps", "40",
                                "--seeds", "2", "--eval_every", "10", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert [(r["agent"], len(r["final"])) for r in doc["runs"]] == [("er", 2), ("perfect", 2)]
    assert "minus_er_ci95" in doc["rows"][1] and out.with_suffix(".png").stat().st_size > 0


def test_frozen_model_benchmark_writes_results_and_figure(tmp_path):
    out = tmp_path / "f.json"
    panflute_frozen_model.main(["--pipes", "3", "--seeds", "2", "--model_updates", "0", "5", "--steps", "1010",
                                "--eval_every", "505", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert [r["model_updates"] for r in doc["runs"]] == [0, 5] and doc["runs"][1]["model_env_steps"] == 1005
    assert all(len(r["steps_to_near_optimal"]) == 2 and len(r["smoothing"]) == 2 for r in doc["runs"])
    assert 0.3 < doc["best_rate"] < 1 / 3 + 1 / 9  # the cycle's rate, plus spontaneous events, minus the start
    assert out.with_suffix(".png").stat().st_size > 0


def test_best_rate_is_the_cycle_by_hand():
    """Without spontaneous events the cycle 2, 1, 0 of 3 pipes lights every end before steps 3, 6 and 9
    (0-based; a step's reward is evaluated on the state before it): 3 rewards in 10 steps."""
    core = PanFlute(3, spontaneous=False)
    rate = panflute_frozen_model.best_rate(core, 2, 10, torch.Generator().manual_seed(0))
    assert rate == pytest.approx(0.3)
