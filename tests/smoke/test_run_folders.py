"""T1 smoke: where a run's outputs go and how its metrics reach disk.

- ``--trainer.default_root_dir DIR`` moves every output of a run to ``DIR/version_N`` (metrics, events,
  config, checkpoints) and ``--ckpt_path last`` finds it there; an explicit logger save_dir still wins.
- Rows reach ``metrics.csv`` as they are logged (a running run can be plotted).
- A killed run keeps the rows it logged; resumed, it continues its own run folder: rows up to the
  checkpoint kept, the rest logged again once, one header, frames increasing; TensorBoard hides the
  killed run's events after the checkpoint.
"""

import csv
import os
from collections import Counter
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from lightning_mbrl import plot
from tests.conftest import ROOT, TINY
from tests.smoke.test_recipes import fit


def run_files(run: Path) -> set[str]:
    return {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and "events.out" not in p.name}


def test_default_root_dir_moves_every_output_and_last_finds_it(in_tmp):
    cli = fit("sac_pendulum", "--trainer.default_root_dir=out/exp", "--checkpoint.every_frames=100")
    run = in_tmp / "out" / "exp" / "version_0"
    assert Path(cli.trainer.log_dir).resolve() == run.resolve()  # videos go to <log_dir>/videos
    assert {"metrics.csv", "config.yaml", "checkpoints/last.ckpt", "checkpoints/frames=200.ckpt"} <= run_files(run)
    assert list(run.glob("events.out.tfevents.*"))
    assert not (in_tmp / "runs").exists()

    resumed = fit("sac_pendulum", "--trainer.default_root_dir=out/exp", "--ckpt_path=last")
    assert Path(resumed.trainer.log_dir).resolve() == run.resolve()  # the checkpoint's run folder
    fresh = fit("sac_pendulum", "--trainer.default_root_dir=out/exp")
    assert Path(fresh.trainer.log_dir).resolve() == (run.parent / "version_1").resolve()
    # a named version wins over the checkpoint's folder: the resumed run gets a file of its own
    named = fit("sac_pendulum", "--trainer.default_root_dir=out/exp", "--trainer.logger.init_args.version=abl",
                f"--ckpt_path={run}/checkpoints/frames=100.ckpt")
    assert [Path(lg.log_dir).resolve() for lg in named.trainer.loggers] == [(run.parent / "abl").resolve()] * 2
    with open(run.parent / "abl" / "metrics.csv") as f:
        assert min(int(r["step"]) for r in csv.DictReader(f)) > 100
    with open(run / "metrics.csv") as f:
        assert max(int(r["step"]) for r in csv.DictReader(f)) == 200  # the checkpoint's run is untouched
    assert not (in_tmp / "runs").exists()


def test_an_explicit_logger_save_dir_wins_over_default_root_dir(in_tmp):
    logger = "{class_path: pytorch_lightning.loggers.CSVLogger, init_args: {save_dir: mine, name: x}}"
    cli = fit("sac_pendulum", "--trainer.default_root_dir=out", f"--trainer.logger=[{logger}]")
    assert Path(cli.trainer.log_dir).resolve() == (in_tmp / "mine" / "x" / "version_0").resolve()
    assert (in_tmp / "mine" / "x" / "version_0" / "metrics.csv").is_file()


class ReadMetricsMidRun(pl.Callback):
    """At ``frames``, read the run's metrics.csv and plot it, as a user would while the run goes on."""

    seen: dict[str, Any] = {}

    def __init__(self, frames: int) -> None:
        self.frames = frames

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        if module.frames != self.frames:
            return
        path = Path(trainer.log_dir) / "metrics.csv"
        rows = list(csv.DictReader(open(path))) if path.is_file() else []
        out = Path(trainer.log_dir).parent.parent / "plots_mid_run"
        ReadMetricsMidRun.seen = {"steps": [int(r["step"]) for r in rows],
                                  "plot": plot.main([str(trainer.log_dir), "--out", str(out)])}


def test_rows_reach_metrics_csv_as_they_are_logged(in_tmp):
    fit("sac_pendulum", "--trainer.log_every_n_steps=1", "--eval.every_frames=50",
        "--trainer.callbacks+=tests.smoke.test_run_folders.ReadMetricsMidRun", "--trainer.callbacks.frames=150")
    seen = ReadMetricsMidRun.seen
    assert seen["steps"] and max(seen["steps"]) == 150 and seen["steps"].count(100) == 2  # train row + eval row
    assert seen["plot"] == 0


# ------------------------------------------------------------------------------------------- killed
def run_cli(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "recipes.sac_pendulum", "fit", "--config", TINY, "--eval.every_frames=50",
           "--checkpoint.every_frames=100", "--checkpoint.keep=1", *extra]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def read_rows(path: Path) -> tuple[str, list[dict[str, str]]]:
    text = path.read_text()
    return text, list(csv.DictReader(text.splitlines()))


def tensorboard_steps(run: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_a_killed_run_keeps_its_rows_and_its_resume_continues_the_file(tmp_path):
    killed = run_cli(tmp_path, "--trainer.callbacks+=tests.helpers.KillAt", "--trainer.callbacks.frames=150")
    assert killed.returncode == -9, killed.stderr[-3000:]
    run = tmp_path / "runs" / "sac_pendulum" / "version_0"
    before_text, before = read_rows(run / "metrics.csv")
    steps = [int(r["step"]) for r in before]
    assert steps == sorted(steps) and max(steps) == 150  # every row logged before the kill is on disk
    assert [int(r["step"]) for r in before if r["eval/return"]] == [50, 100, 150]
    assert plot.main([str(run), "--out", str(tmp_path / "plot_killed")]) == 0
    assert "| sac_pendulum | policy | 150 |" in (tmp_path / "plot_killed" / "final_returns.md").read_text()

    resumed = run_cli(tmp_path, "--ckpt_path", "last")  # last.ckpt is at frames 100: 110..150 are run again
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]  # no new version_N
    after_text, after = read_rows(run / "metrics.csv")
    assert after_text.count("step") == 1  # one header
    steps = [int(r["step"]) for r in after]
    assert steps == sorted(steps) and max(steps) == 200
    # a train row every 10 frames (tiny.yaml) and an eval row every 50, each once
    assert Counter(steps) == {s: 1 + (s % 50 == 0) for s in range(10, 201, 10)}
    kept = [r for r in before if int(r["step"]) <= 100]
    assert [{k: v for k, v in r.items() if v} for r in after[: len(kept)]] == [
        {k: v for k, v in r.items() if v} for r in kept]  # the killed run's rows up to the checkpoint, unchanged
    assert [int(r["step"]) for r in after if r["eval/return"]] == [50, 100, 150, 200]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["frames=200.ckpt", "last.ckpt"]  # keep=1
    tb = tensorboard_steps(run, "frames")  # the killed run's events after frames 100 are purged
    assert tb == sorted(set(tb)) and max(tb) == 200
    assert plot.main([str(tmp_path / "runs"), "--out", str(tmp_path / "plot_resumed")]) == 0
    assert "| sac_pendulum | policy | 200 |" in (tmp_path / "plot_resumed" / "final_returns.md").read_text()
