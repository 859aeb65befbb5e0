"""T0: ``python -m benchmarks.reproduce``: the commands it would run (``--dry-run``), and its resumability on
fake run folders: a done run is skipped, a killed run with a checkpoint is continued with ``--ckpt_path``, a
killed run without one is started again, a folder it did not make is refused. No training: the runs are
made by a stand-in interpreter that writes what a finished run leaves behind."""

import contextlib
import json
import os
import pathlib
import shutil
import signal
import stat
import sys
import threading
import time

import pytest

from benchmarks import reproduce
from lightning_mbrl import report

IP = ("python -m recipes.mbpo_invertedpendulum fit --model.max_frames=5000 --eval.every_frames=250 "
      "--eval.episodes=10 --model.seed={seed} --trainer.default_root_dir={root}/mbpo_invertedpendulum "
      "--trainer.logger.init_args.version=seed_{seed} --trainer.enable_progress_bar=false "
      "--checkpoint.every_frames=1000")

# Stands in for the interpreter: records its argv and leaves what a finished run leaves (metrics up to the
# budget, hparams, a last checkpoint); a benchmark module prints a JSON object.
FAKE_PYTHON = """#!{python}
import json, pathlib, sys
args = sys.argv[1:]
with open({calls!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[1] == "lightning_mbrl.envs.piecewise_linear":
    print(json.dumps({{"policy_pieces": 4, "theorem_4_2_policy_pieces": 4, "n": 1000}}))
    sys.exit(0)
opt = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
run = pathlib.Path(opt["trainer.default_root_dir"]) / opt["trainer.logger.init_args.version"]
(run / "checkpoints").mkdir(parents=True, exist_ok=True)
(run / "checkpoints" / "last.ckpt").write_text("weights")
budget = int(opt["model.max_frames"])
rows = "".join(f"{{f}},{{900 + f / 50}}\\n" for f in range(250, budget + 1, 250))
(run / "metrics.csv").write_text("step,eval/return\\n" + rows)
(run / "hparams.yaml").write_text(f"seed: {{opt['model.seed']}}\\nmax_frames: {{budget}}\\n")
(run / "config.yaml").write_text("trainer:\\n  precision: bf16-mixed\\n")  # as LightningCLI saves it
"""


def dry_run(capsys, *args: str) -> str:
    runs_dir = pathlib.Path(args[args.index("--runs-dir") + 1])  # the repo's kept evidence must not count here
    assert reproduce.main(["--dry-run", "--evidence-dir", str(runs_dir / "evidence"), *args]) == 0
    return capsys.readouterr().out


def squeezed(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines()]


def commands(out: str) -> list[str]:
    lines = out.split("commands:\n")[1].split("estimated cost:")[0].splitlines()
    return [line.strip() for line in lines]


def test_dry_run_lists_the_learning_tests_commands(tmp_path, capsys):
    out = dry_run(capsys, "--runs-dir", str(tmp_path), "--only", "mbpo_invertedpendulum_950")
    root = tmp_path / "reduced"
    assert commands(out) == [IP.format(seed=s, root=root) for s in range(5)]
    assert f"reduced scale, runs in {root} (0 of 5 done)" in out
    assert "pending mbpo_invertedpendulum/seed_3 0 / 5,000 frames" in squeezed(out)
    both = commands(dry_run(capsys, "--runs-dir", str(tmp_path), "--only", "mbpo_vs_sac_invertedpendulum"))
    assert len(both) == 10 and both[5] == (
        "python -m recipes.sac_pendulum fit --model.env=InvertedPendulum-v5 --model.max_frames=15000 "
        "--model.init_random_frames=500 --eval.every_frames=250 --eval.episodes=10 --model.seed=0 "
        f"--trainer.default_root_dir={root}/sac_invertedpendulum --trainer.logger.init_args.version=seed_0 "
        "--trainer.enable_progress_bar=false --checkpoint.every_frames=2500")
    assert not (tmp_path / "reduced").exists()  # a dry run makes nothing


def test_dry_run_at_paper_scale_and_benchmark_jobs(tmp_path, capsys):
    out = dry_run(capsys, "--scale", "paper", "--runs-dir", str(tmp_path), "--only", "mbpo_hopper", "rand_pieces")
    cmds = commands(out)
    assert cmds[:2] == [
        f"python -m lightning_mbrl.envs.piecewise_linear stats --method {m} --n 1000 --horizon 10 --seed 0 "
        f"> {tmp_path}/paper/pwl_stats/{m}.json" for m in ("rand", "semi-rand")]
    assert cmds[2:] == [f"python -m recipes.mbpo_hopper fit --model.seed={s} --trainer.default_root_dir="
                        f"{tmp_path}/paper/mbpo_hopper --trainer.logger.init_args.version=seed_{s} "
                        "--trainer.enable_progress_bar=false --checkpoint.every_frames=5000" for s in range(5)]
    assert "mbpo_hopper: 5 seeds x 125,000 frames, about" in out and "(estimates;" in out
    note = dry_run(capsys, "--runs-dir", str(tmp_path), "--only", "mbpo_hopper_100k")
    assert note.startswith("note: mbpo_hopper_100k is decided by --scale paper runs")


def test_every_claim_and_job_is_runnable_by_name(capsys):
    assert [j.name for j in reproduce.select_jobs(None)] == [j.name for j in report.JOBS]
    for claim in report.CLAIMS:
        assert {j.name for j in reproduce.select_jobs([claim.name])} == set(claim.jobs)
    assert reproduce.main(["--dry-run", "--only", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --only nope: no such job or claim (jobs: pwl_def41,")


def make_run(root: pathlib.Path, seed: int, *, marker: dict | None = None, frames: int = 0,
             checkpoint: bool = False) -> pathlib.Path:
    run = root / "mbpo_invertedpendulum" / f"seed_{seed}"
    run.mkdir(parents=True)
    if marker is not None:
        (run / "reproduce.json").write_text(json.dumps(marker))
    if frames:
        rows = "".join(f"{100 + f / 100},{f}\n" for f in range(250, frames + 1, 250))
        (run / "metrics.csv").write_text("eval/return,step\n" + rows + "123.")  # a row cut by the kill
        (run / "hparams.yaml").write_text(f"seed: {seed}\nmax_frames: 5000\n")
        (run / "config.yaml").write_text("trainer:\n  precision: bf16-mixed\n")
    if checkpoint:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_text("weights")
    return run


def test_done_runs_are_skipped_and_killed_runs_resumed(tmp_path, capsys):
    root = tmp_path / "reduced"
    make_run(root, 0, marker={"status": "done", "commits": ["aaa"]}, frames=5000, checkpoint=True)
    killed = make_run(root, 1, marker={"status": "running", "commits": ["aaa"]}, frames=2000, checkpoint=True)
    make_run(root, 2, marker={"status": "running"}, frames=250)  # killed before its first checkpoint
    out = dry_run(capsys, "--runs-dir", str(tmp_path), "--only", "mbpo_invertedpendulum")
    assert "(1 of 5 done)" in out
    assert {"done mbpo_invertedpendulum/seed_0 5,000 / 5,000 frames",
            "partial mbpo_invertedpendulum/seed_1 2,000 / 5,000 frames",
            "stale mbpo_invertedpendulum/seed_2 250 / 5,000 frames"} <= set(squeezed(out))
    assert commands(out) == [
        IP.format(seed=1, root=root) + f" --ckpt_path={killed}/checkpoints/last.ckpt",
        *(IP.format(seed=s, root=root) for s in (2, 3, 4))]

    make_run(root, 3, frames=500)  # not made by the runner
    out = dry_run(capsys, "--runs-dir", str(tmp_path), "--only", "mbpo_invertedpendulum")
    assert f"  error: {root}/mbpo_invertedpendulum/seed_3: a folder this runner did not make" in out


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "fake_python"
    script.write_text(FAKE_PYTHON.format(python=sys.executable, calls=str(calls)))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(reproduce, "PYTHON", str(script))
    monkeypatch.setattr(report, "git_commit", lambda root=None: "bbb")
    return lambda: [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_a_run_continues_killed_seeds_and_writes_the_report(tmp_path, capsys, fake_python, monkeypatch):
    monkeypatch.chdir(reproduce.REPO)  # as the README runs it
    root = tmp_path / "runs" / "reduced"
    make_run(root, 0, marker={"status": "done", "commits": ["aaa"]}, frames=5000, checkpoint=True)
    killed = make_run(root, 1, marker={"status": "failed", "commits": ["aaa"]}, frames=2000, checkpoint=True)
    stale = make_run(root, 2, marker={"status": "running"}, frames=250)
    (stale / "events.out.tfevents.1").write_text("old")
    out_md = tmp_path / "docs" / "reproduction"
    evidence = tmp_path / "evidence"
    args = ["--runs-dir", str(tmp_path / "runs"), "--only", "mbpo_invertedpendulum_950", "--report-out", str(out_md),
            "--evidence-dir", str(evidence)]
    assert reproduce.main(args) == 0
    calls = fake_python()
    assert [next(a for a in c if a.startswith("--model.seed=")) for c in calls] == [
        "--model.seed=1", "--model.seed=2", "--model.seed=3", "--model.seed=4"]  # seed 0 was done
    assert calls[0][-1] == f"--ckpt_path={killed}/checkpoints/last.ckpt"
    assert not any(a.startswith("--ckpt_path") for c in calls[1:] for a in c)
    assert not (stale / "events.out.tfevents.1").exists()  # started again from nothing
    resumed = json.loads((killed / "reproduce.json").read_text())
    assert resumed["status"] == "done" and resumed["returncode"] == 0 and resumed["commits"] == ["aaa", "bbb"]
    assert "$ python -m recipes.mbpo_invertedpendulum" in (killed / "reproduce.log").read_text()
    out = capsys.readouterr().out
    assert "(5 of 5 done)" in out and f"wrote {out_md}.md" in out
    md = out_md.with_suffix(".md").read_text()
    (line,) = [line for line in md.splitlines() if "(`mbpo_invertedpendulum_950`)" in line]
    # seeds 1-4 (the stand-in) reach 950 at 2,500 frames; seed 0 ran its 5,000 without. IQM of 5 = mean of the
    # middle 3: 2,500. Upper end: resamples with 3 or more 5,000s (5.8%) have IQM >= 4,167, with 4 or more (0.7%) 5,000
    assert "| 2,500 [2,500, 4,167] frames (1 of 5 seeds never reached it: >= 5,000) | 5 |" in line
    assert "| agree |" in line and "aaa, bbb" in line
    # its sources are named as a user in the checkout types them, not by this machine's paths
    (made_by,) = [line for line in md.splitlines() if line.startswith("Made by")]
    assert f"python -m lightning_mbrl.report {evidence} benchmarks/results/" in made_by
    assert f"{reproduce.REPO}/benchmarks" not in made_by

    assert reproduce.main(args) == 0  # all done: nothing runs again
    assert len(fake_python()) == 4

    # What the report read is kept below --evidence-dir (tracked), without checkpoints: the run folders can go
    for seed in range(5):
        kept = evidence / "reduced" / "mbpo_invertedpendulum" / f"seed_{seed}"
        kept_files = sorted(p.name for p in kept.iterdir())
        assert kept_files == ["config.yaml", "hparams.yaml", "metrics.csv", "reproduce.json"]
    shutil.rmtree(tmp_path / "runs")
    assert reproduce.main(args) == 0  # a fresh clone: the runs are gone, the evidence makes the same report
    assert out_md.with_suffix(".md").read_text() == md and len(fake_python()) == 4  # and nothing ran again


def test_benchmark_variants_are_kept_as_json_with_their_commit(tmp_path, fake_python):
    args = ["--runs-dir", str(tmp_path / "runs"), "--only", "pwl_def41", "--report-out", str(tmp_path / "r"),
            "--evidence-dir", str(tmp_path / "evidence")]
    assert reproduce.main(args) == 0
    saved = json.loads((tmp_path / "runs" / "reduced" / "pwl_def41" / "H=5.json").read_text())
    assert saved["benchmark"] == "pwl_def41" and saved["variant"] == "H=5" and saved["commit"] == "bbb"
    assert saved["command"] == "python -m lightning_mbrl.envs.piecewise_linear solve --method def41 --H 5"
    assert len(fake_python()) == 3  # H = 4, 5, 6: the theorem's H > 3
    assert reproduce.main(args) == 0 and len(fake_python()) == 3  # done: not run again
    kept = json.loads((tmp_path / "evidence" / "reduced" / "pwl_def41" / "H=5.json").read_text())
    assert kept == saved


def test_a_committed_benchmark_result_counts_as_done(tmp_path, capsys, fake_python, monkeypatch):
    """A benchmark variant whose result was made outside the runner and committed (``Job.committed``) is what the
    report reads: a fresh clone's runner does not make it again."""
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(report.jobs, "RESULTS", results)
    only = ["--runs-dir", str(tmp_path / "runs"), "--only", "maac_gradient_error"]
    assert "pending maac_gradient_error/seeds5" in squeezed(dry_run(capsys, *only))
    (results / "maac_gradient_error.json").write_text(json.dumps({"benchmark": "maac_gradient_error", "seeds": 5}))
    assert (f"done maac_gradient_error/seeds5 (committed: {results}/maac_gradient_error.json)"
            in squeezed(dry_run(capsys, *only)))
    args = [*only, "--report-out", str(tmp_path / "r"), "--evidence-dir", str(tmp_path / "evidence")]
    assert reproduce.main(args) == 0 and fake_python() == []  # nothing ran
    (results / "maac_gradient_error.json").write_text("{}")  # not a benchmark result: does not count
    assert "pending maac_gradient_error/seeds5" in squeezed(dry_run(capsys, *only))
    # the committed files the jobs name exist, and are results of their benchmark
    for job in report.JOBS:
        for scale, variants in job.committed.items():
            assert set(variants) <= set(job.variants[scale])
            for name in variants.values():
                result = report.read_result(reproduce.REPO / "benchmarks" / "results" / name)
                assert result is not None and result.benchmark == job.name, name



def test_the_committed_3x3_results_hold_every_run_their_variants_name():
    """A committed file counts every variant mapped to it as done, so it must hold each of their runs: per
    coverage the variant's ``--only`` names, all three agents at the variant's ``--seeds`` and ``--updates``."""
    job = next(job for job in report.JOBS if job.name == "generalization_3x3")
    for scale, variants in job.committed.items():
        for variant, name in variants.items():
            argv = job.variants[scale][variant]
            seeds, updates = (int(argv[argv.index(flag) + 1]) for flag in ("--seeds", "--updates"))
            coverages = argv[argv.index("--only") + 1:argv.index("--timing_updates")]
            runs = report.read_result(reproduce.REPO / "benchmarks" / "results" / name).data["runs"]
            made = {(r["coverage"], r["agent"]) for r in runs if (r["seeds"], r["updates"]) == (seeds, updates)}
            assert made >= {(c, a) for c in coverages for a in ("er", "model-1", "model-10")}, (variant, name)

SLEEPY_PYTHON = """#!{python}
import os, pathlib, sys, time
opt = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
run = pathlib.Path(opt["trainer.default_root_dir"]) / opt["trainer.logger.init_args.version"]
(run / "metrics.csv").write_text("step,eval/return\\n250,900\\n")
(run / "pid").write_text(str(os.getpid()))
time.sleep(20)
"""


def test_sigterm_stops_the_running_run_and_marks_it_interrupted(tmp_path, monkeypatch, capsys):
    """``kill <runner>`` (SIGTERM; a background runner ignores SIGINT) must not leave its run training on: the
    runner terminates it, marks it interrupted and keeps its evidence; its signal handlers are restored after."""
    script = tmp_path / "sleepy_python"
    script.write_text(SLEEPY_PYTHON.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(reproduce, "PYTHON", str(script))
    monkeypatch.setattr(report, "git_commit", lambda root=None: "bbb")
    run = tmp_path / "runs" / "reduced" / "mbpo_invertedpendulum" / "seed_0"

    def kill_when_started() -> None:
        deadline = time.monotonic() + 30
        while not (run / "pid").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    def outside_the_runner(signum, frame) -> None:  # pytest's own, were the runner not to handle it
        raise AssertionError("SIGTERM reached past the runner")

    before = signal.signal(signal.SIGTERM, outside_the_runner)
    try:
        threading.Thread(target=kill_when_started, daemon=True).start()
        started = time.monotonic()
        code = reproduce.main(["--runs-dir", str(tmp_path / "runs"), "--only", "mbpo_invertedpendulum",
                               "--report-out", str(tmp_path / "r"), "--evidence-dir", str(tmp_path / "evidence")])
        assert signal.getsignal(signal.SIGTERM) is outside_the_runner  # restored
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == 130 and time.monotonic() - started < 15  # not the child's 20 s
    assert "interrupted: mbpo_invertedpendulum/seed_0 stopped" in capsys.readouterr().err
    child = int((run / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # terminated and reaped
    assert json.loads((run / "reproduce.json").read_text())["status"] == "interrupted"
    assert (tmp_path / "evidence" / "reduced" / "mbpo_invertedpendulum" / "seed_0" / "metrics.csv").is_file()


@pytest.mark.skipif(reproduce.fcntl is None, reason="no run locks without fcntl")
def test_a_unit_another_runner_holds_is_skipped_not_removed(tmp_path, capsys, fake_python):
    """Two runners on one --runs-dir: the unit one of them is running (its lock held) is neither run nor, though
    it looks ``stale`` (no checkpoint yet), removed by the other; once released, it runs."""
    root = tmp_path / "runs" / "reduced"
    other = make_run(root, 2, marker={"status": "running"}, frames=250)
    args = ["--runs-dir", str(tmp_path / "runs"), "--only", "mbpo_invertedpendulum", "--report-out",
            str(tmp_path / "r"), "--evidence-dir", str(tmp_path / "evidence")]
    (unit,) = [u for u in reproduce.plan([report.JOBS_BY_NAME["mbpo_invertedpendulum"]], "reduced", root)
               if u.name == "seed_2"]
    with reproduce.claimed(unit):  # the other runner
        assert "running mbpo_invertedpendulum/seed_2 (in another runner)" in squeezed(dry_run(capsys, *args[:4]))
        assert reproduce.main(args) == 0
        assert (other / "metrics.csv").read_text().startswith("eval/return,step\n")  # untouched
        out = capsys.readouterr().out
        assert "running mbpo_invertedpendulum/seed_2 (in another runner: skipped)" in squeezed(out)
        assert "note: 1 runs were running in another runner: mbpo_invertedpendulum/seed_2" in out
        with pytest.raises(reproduce.Busy):
            with reproduce.claimed(unit):
                pass
    def seeds() -> list[str]:
        return [next(a for a in c if a.startswith("--model.seed=")) for c in fake_python()]

    assert seeds() == [f"--model.seed={s}" for s in (0, 1, 3, 4)]
    assert reproduce.main(args) == 0  # released: now it runs (stale: started again)
    assert seeds()[4:] == ["--model.seed=2"]


def test_a_unit_finished_by_another_runner_before_the_lock_is_not_run_again(tmp_path, fake_python, monkeypatch):
    """The status is read before the lock is taken: a run another runner finished in between is not started again."""
    root = tmp_path / "runs" / "reduced"
    claimed = reproduce.claimed

    @contextlib.contextmanager
    def finished_meanwhile(unit):
        if unit.name == "seed_1":  # the other runner's run ends just before this one takes the lock
            make_run(root, 1, marker={"status": "done", "commits": ["aaa"]}, frames=5000, checkpoint=True)
        with claimed(unit):
            yield

    monkeypatch.setattr(reproduce, "claimed", finished_meanwhile)
    assert reproduce.main(["--runs-dir", str(tmp_path / "runs"), "--only", "mbpo_invertedpendulum", "--report-out",
                           str(tmp_path / "r"), "--evidence-dir", str(tmp_path / "evidence")]) == 0
    assert [next(a for a in c if a.startswith("--model.seed=")) for c in fake_python()] == [
        f"--model.seed={s}" for s in (0, 2, 3, 4)]


def test_a_run_that_exits_0_short_of_its_budget_is_stopped_not_done(tmp_path, capsys, fake_python, monkeypatch):
    """Lightning exits 0 on SIGTERM: a run that ends cleanly before its budget (here the stand-in logs 2,500 of
    5,000 frames) is ``stopped`` and continued from its checkpoint next time, never ``done``."""
    short = tmp_path / "short_python"
    short.write_text(FAKE_PYTHON.format(python=sys.executable, calls=str(tmp_path / "calls.jsonl"))
                     .replace('budget = int(opt["model.max_frames"])', 'budget = int(opt["model.max_frames"]) // 2'))
    short.chmod(short.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(reproduce, "PYTHON", str(short))
    args = ["--runs-dir", str(tmp_path / "runs"), "--only", "mbpo_invertedpendulum", "--report-out",
            str(tmp_path / "r"), "--evidence-dir", str(tmp_path / "evidence")]
    assert reproduce.main(args) == 1
    run = tmp_path / "runs" / "reduced" / "mbpo_invertedpendulum" / "seed_0"
    assert json.loads((run / "reproduce.json").read_text())["status"] == "stopped"
    assert "stopped mbpo_invertedpendulum/seed_0: exited at 2,500 of 5,000 frames" in squeezed(capsys.readouterr().out)
    monkeypatch.setattr(reproduce, "PYTHON", str(tmp_path / "fake_python"))  # the full run
    assert reproduce.main(args) == 0
    second = fake_python()[5:]  # every seed stopped short, so every seed runs again
    assert [c[-1] for c in second] == [f"--ckpt_path={run.parent}/seed_{s}/checkpoints/last.ckpt" for s in range(5)]
