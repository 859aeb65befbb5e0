"""Re-create the runs of every claim of the reproduction report, then write the report.

    python -m benchmarks.reproduce [--scale reduced|paper] [--only NAME...] [--runs-dir runs/reproduce]
        [--report-out docs/reproduction] [--dry-run] [--refresh 60]

Runs every job of ``lightning_mbrl.report.JOBS`` at one scale, one subprocess at a time (``python -m
recipes.<name> fit ...`` per seed, ``python -m lightning_mbrl.envs.piecewise_linear ...`` per benchmark
variant), then ``python -m lightning_mbrl.report <evidence-dir> benchmarks/results/*.json --out <report-out>``. ``--only`` takes
job names or claim names (a claim stands for the jobs it reads); ``--dry-run`` prints each run's state and
the command it would run, and runs nothing.

Where runs go: ``<runs-dir>/<scale>/<job>/seed_<N>/`` is one seed's run folder (metrics, config,
checkpoints; ``--trainer.default_root_dir`` and ``--trainer.logger.init_args.version``), so the report's
recipe (the folder a run is in) is the job's name; the runner adds ``reproduce.json`` (command, the commit
of every start, status) and ``reproduce.log`` (the run's output) to it. A benchmark variant is
``<runs-dir>/<scale>/<job>/<variant>.json``: the module's JSON output with ``benchmark``, ``variant``,
``commit`` and ``command`` added.

Evidence: after each run (done, failed or interrupted) the runner copies what the report reads of it, a
seed's ``metrics.csv``, ``hparams.yaml``, ``config.yaml`` and ``reproduce.json`` or a variant's JSON, to the
same place below ``--evidence-dir`` (default ``benchmarks/results/reproduce/<scale>/``, tracked by git; 10-30 kB per
run). The run folders (checkpoints, replay buffers, videos) stay in the ignored ``runs/``; the report reads the
evidence, so a fresh clone writes the same report (``python -m benchmarks.reproduce`` with every run done runs
nothing and writes it).

Resumable, by the run folders alone:

- ``done``: ``reproduce.json`` says the run exited 0 (a benchmark: its JSON file is complete), or its evidence
  is kept, or (a benchmark variant) the committed ``benchmarks/results`` file it made outside the runner
  exists (``Job.committed``; the dry run names it): skipped;
- ``partial``: not done, with ``checkpoints/last.ckpt``: a killed, failed or stopped (exit 0 short of its
  budget) run, continued exactly where its last checkpoint stopped with the same command plus ``--ckpt_path <run>/checkpoints/last.ckpt`` (README,
  "Checkpoints and resuming": weights, buffers, env and RNG states come back, ``metrics.csv`` continues);
  every job checkpoints every ``Job.checkpoint_every`` frames, so at most that much is run twice;
- ``pending``: no run folder yet, or one of this runner killed before its first checkpoint (removed and
  started again). A folder there that this runner did not make is an error naming it (nothing is deleted).

Several runners may share a ``--runs-dir`` (one per core, say, with the same or different ``--only``): each
unit is locked while it runs, and a runner skips the units another one is running. Progress: one line per
run (``done`` / ``running`` / ``pending`` / ``partial`` / ``failed``, frames logged of the budget) at the
start and after each run, and a line for the running run every ``--refresh`` seconds.

Budgets (``lightning_mbrl.report.JOBS``; times are estimates for 2 CPU cores, from benchmarks/results and
the learning tests):

| job | reduced | paper |
|---|---|---|
| pwl_def41, pwl_stats | Definition 4.1 for H = 1..6; 1,000 RAND and 1,000 SEMI-RAND MDPs (~1 min) | same |
| sac_pendulum_boots | 3 seeds x 8k frames, SAC 16 x 16, BOOTS every 2k (the learning test) | 5 seeds |
| mbpo_invertedpendulum, sac_invertedpendulum | 5 seeds x 5k (MBPO) and 15k (SAC) frames, eval every 250 (~1 h) | same |
| dqn_pwl | 3 seeds x 30k frames, BOOTS k = 3, 200 eval episodes (the learning test) | 5 x 50k, k = 0..4 (recipe) |
| maac_invertedpendulum | 3 seeds x 3k frames, MPC at 3k (the learning test; ~1.5 h) | same |
| maac_halfcheetah | 1 seed x 15k frames, eval every 1k (~4 h on one core) | 4 seeds x 205k, MPC every 50k |
| mbpo_hopper | 3 seeds x 15k frames (~1.7 h) | 5 seeds x 125k |
| mbpo_hopper_fp32 | mbpo_hopper's seed 0 in `32-true` (issue 20's curve, `benchmarks.precision_curve`) | none |
| mbpo_halfcheetah | 3 seeds x 10k frames (~1.6 h) | 5 seeds x 400k |
| mbsac_humanoid | 2 seeds x 50k, BOOTS k = 4 at 50k (31 min/seed, 1 core) | 5 seeds x 400k, BOOTS every 10k x 10 episodes |

The jobs in the table take about 12 hours on 2 cores at the reduced scale (the OMD CartPole and paper-001 jobs
several more); ``--dry-run`` prints the estimates per job. The paper
scale is for GPUs (the report's last section estimates it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

try:
    import fcntl
except ImportError:  # Windows: no run locks
    fcntl = None

from lightning_mbrl import report
from lightning_mbrl.report import CLAIMS, JOBS, JOBS_BY_NAME, MARKER, SCALES, Job

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the interpreter of every run


@dataclass(frozen=True)
class Unit:
    """One run: a seed of a recipe job, or a variant of a benchmark job, at ``scale`` below ``root``
    (``<runs-dir>/<scale>``)."""

    job: Job
    scale: str
    name: str
    root: Path
    evidence_root: Path | None = None  # where the evidence of runs at this scale is kept (keep_evidence)

    @property
    def label(self) -> str:
        return f"{self.job.name}/{self.name}"

    @property
    def path(self) -> Path:
        folder = self.root / self.job.name
        return folder / f"{self.name}.json" if self.job.is_benchmark else folder / self.name

    @property
    def kept(self) -> Path | None:
        """This unit's copy below ``evidence_root``."""
        return None if self.evidence_root is None else self.evidence_root / self.path.relative_to(self.root)

    @property
    def committed(self) -> Path | None:
        """The committed ``benchmarks/results`` file this benchmark variant made outside the runner, if any."""
        return self.job.committed_result(self.scale, self.name) if self.job.is_benchmark else None

    def _done_elsewhere(self) -> bool:
        """No run folder here, but the evidence of a finished run is kept (a fresh clone), or a benchmark
        variant's result is committed (``Job.committed``): nothing to run."""
        if self.path.exists():
            return False
        if self.job.is_benchmark:
            return any(p is not None and report.read_result(p) is not None for p in (self.kept, self.committed))
        if self.kept is None:
            return False
        try:
            return json.loads((self.kept / MARKER).read_text()).get("status") == "done"
        except (OSError, json.JSONDecodeError):
            return False

    @property
    def lock(self) -> Path:
        """Held by the runner running this unit (next to its run folder, which a restart may remove)."""
        return self.root / self.job.name / f".{self.name}.lock"

    def busy(self) -> bool:
        """Another runner is running this unit now (it holds :attr:`lock`)."""
        if fcntl is None or not self.lock.is_file():
            return False
        with open(self.lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
        return False

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.ckpt"

    @property
    def budget(self) -> int | None:
        return None if self.job.is_benchmark else self.job.frames[self.scale]

    def marker(self) -> dict:
        try:
            return json.loads((self.path / MARKER).read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def status(self) -> str:
        """``done``, ``partial`` (resume from the last checkpoint), ``failed`` (exited non-zero without a
        checkpoint: run again), ``stale`` (this runner's folder without a checkpoint: start again),
        ``foreign`` (a folder this runner did not make) or ``pending``. A unit whose run folder is gone but
        whose kept evidence says it finished is ``done``."""
        if self._done_elsewhere():
            return "done"
        if self.job.is_benchmark:
            return "done" if report.read_result(self.path) is not None else "pending"
        if not self.path.exists():
            return "pending"
        marker = self.marker()
        if not marker:
            return "foreign" if any(self.path.iterdir()) else "pending"
        if marker.get("status") == "done":
            return "done"
        if self.checkpoint.is_file():
            return "partial"
        return "failed" if marker.get("status") == "failed" else "stale"

    def frames(self) -> int:
        if self.job.is_benchmark:
            return 0
        return report.last_frame(self.kept if self._done_elsewhere() else self.path)

    def argv(self) -> list[str]:
        """The command (after ``python``) that makes or continues this run."""
        argv = self.job.command(self.scale, self.name, None if self.job.is_benchmark else self.root)
        if not self.job.is_benchmark and self.status() == "partial":
            argv.append(f"--ckpt_path={self.checkpoint}")
        return argv

    def display(self) -> str:
        shown = shlex.join(["python", *self.argv()])
        return f"{shown} > {self.path}" if self.job.is_benchmark else shown

    def line(self, status: str | None = None) -> str:
        """One progress line; ``status`` ``busy``: another runner is running it."""
        if status == "busy":
            return f"  running  {self.label}  (in another runner)"
        status = status or self.status()
        if self.job.is_benchmark:
            made_elsewhere = status == "done" and not self.path.exists() and not (self.kept and self.kept.is_file())
            return f"  {status:<8} {self.label}" + (f"  (committed: {_shown(self.committed)})" if made_elsewhere else "")
        return f"  {status:<8} {self.label:<36} {self.frames():>9,} / {self.budget:,} frames"


class Busy(Exception):
    """Another runner holds the unit's lock."""


@contextlib.contextmanager
def claimed(unit: Unit):
    """Hold ``unit``'s lock while it runs (released when the runner exits, however it exits), or raise
    :class:`Busy`: two runners on one ``--runs-dir`` share the work instead of running (or removing, as
    ``stale``) the same run."""
    if fcntl is None:
        yield
        return
    unit.lock.parent.mkdir(parents=True, exist_ok=True)
    with open(unit.lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(unit.label) from None
        yield


def select_jobs(names: Sequence[str] | None) -> list[Job]:
    """The jobs named (job names, or claim names standing for their jobs), in :data:`JOBS` order; all if none.
    An unknown name is a ``ValueError`` listing the known ones."""
    if not names:
        return list(JOBS)
    claims = {c.name: c for c in CLAIMS}
    wanted: set[str] = set()
    for name in names:
        if name in JOBS_BY_NAME:
            wanted.add(name)
        elif name in claims:
            wanted.update(claims[name].jobs)
        else:
            raise ValueError(f"--only {name}: no such job or claim (jobs: {', '.join(JOBS_BY_NAME)}; "
                             f"claims: {', '.join(claims)})")
    return [job for job in JOBS if job.name in wanted]


def plan(jobs: Sequence[Job], scale: str, root: Path, evidence_root: Path | None = None) -> list[Unit]:
    return [Unit(job, scale, name, root, evidence_root) for job in jobs for name in job.units(scale)]


def progress(units: Sequence[Unit], root: Path, scale: str) -> str:
    states = ["busy" if u.busy() else u.status() for u in units]
    head = f"{scale} scale, runs in {root} ({states.count('done')} of {len(units)} done)"
    return "\n".join([head, *(u.line(s) for u, s in zip(units, states))])


def estimates(jobs: Sequence[Job], scale: str) -> list[str]:
    lines = []
    for job in jobs:
        cost = job.cost.get(scale)
        est = report.estimate_cost(cost, job.frames[scale]) if cost and scale in job.frames else None
        if est:
            seeds = job.seeds[scale]
            lines.append(f"  {job.name}: {seeds} seeds x {job.frames[scale]:,} frames, about {est[0] * seeds:.1f} h "
                         f"on 2 CPU cores, {est[1] * seeds:.1f} h on a GPU (estimates; {est[2]})")
    return lines


# ============================================================================================ running
def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def run_benchmark(unit: Unit, commit: str | None) -> bool:
    proc = subprocess.run([PYTHON, *unit.argv()], capture_output=True, text=True, env=_child_env())
    if proc.returncode != 0:
        print(f"  failed   {unit.label}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}", flush=True)
        return False
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(f"  failed   {unit.label}: its output is not JSON", flush=True)
        return False
    unit.path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(unit.path, {"benchmark": unit.job.name, "variant": unit.name, "scale": unit.scale,
                            "commit": commit, "command": unit.display().split(" > ")[0], **result})
    return True


def run_seed(unit: Unit, commit: str | None, refresh: float, clock: Callable[[], float] = time.monotonic) -> bool:
    """Start or continue one seed's run; its output goes to ``reproduce.log`` in its run folder."""
    status = unit.status()
    if status == "foreign":
        raise FileExistsError(f"{unit.path}: a folder this runner did not make (no {MARKER}); move it away")
    if status in ("stale", "failed"):
        shutil.rmtree(unit.path)  # this runner's own folder, killed before its first checkpoint
    argv = unit.argv()
    unit.path.mkdir(parents=True, exist_ok=True)
    marker = unit.marker()
    commits = [c for c in marker.get("commits", []) if c != commit] + ([commit] if commit else [])
    marker.update(job=unit.job.name, unit=unit.name, scale=unit.scale, command=unit.display(), commits=commits,
                  status="running", started=datetime.datetime.now().isoformat(timespec="seconds"))
    _write_json(unit.path / MARKER, marker)
    start = clock()
    with open(unit.path / "reproduce.log", "a") as log:
        log.write(f"\n$ {unit.display()}\n")
        log.flush()
        proc = subprocess.Popen([PYTHON, *argv], stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        try:
            while proc.poll() is None:
                try:
                    proc.wait(timeout=refresh)
                except subprocess.TimeoutExpired:
                    minutes = (clock() - start) / 60
                    print(f"{unit.line('running')}  ({minutes:.0f} min)", flush=True)
        except BaseException:
            proc.terminate()
            proc.wait()
            marker.update(status="interrupted", returncode=proc.returncode)
            _write_json(unit.path / MARKER, marker)
            raise
    # exit 0 short of the budget: stopped by a signal the recipe handles (Lightning exits cleanly on SIGTERM)
    reached = report.last_frame(unit.path)
    status = "failed" if proc.returncode != 0 else "stopped" if reached < unit.budget else "done"
    marker.update(status=status, returncode=proc.returncode, finished=datetime.datetime.now().isoformat(timespec="seconds"))
    _write_json(unit.path / MARKER, marker)
    if status == "failed":
        print(f"  failed   {unit.label}: exit {proc.returncode} (see {unit.path / 'reproduce.log'})", flush=True)
    elif status == "stopped":
        print(f"  stopped  {unit.label}: exited at {reached:,} of {unit.budget:,} frames", flush=True)
    return status == "done"


# what the report reads of a run folder, and the configuration the run used (its precision, for one)
EVIDENCE_FILES = ("metrics.csv", "hparams.yaml", "config.yaml", MARKER)


def keep_evidence(unit: Unit) -> Path | None:
    """Copy what the report reads of ``unit`` (a seed's ``metrics.csv``, ``hparams.yaml``, ``config.yaml`` and
    ``reproduce.json``; a benchmark variant's JSON) to the same place below ``evidence_root``
    (``<evidence-dir>/<scale>``), a tracked folder: the run folders (checkpoints, replay, logs) stay in the
    ignored ``runs/``, and the report can be written again from a fresh clone. Partial runs are copied too (the report shows them as short).
    Returns the copy, or ``None`` when the unit has nothing to copy (yet, or no ``evidence_root``)."""
    target = unit.kept
    if target is None:
        return None
    if unit.job.is_benchmark:
        if not unit.path.is_file():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(unit.path, target)
        return target
    if not (unit.path / "metrics.csv").is_file():
        return None
    target.mkdir(parents=True, exist_ok=True)
    for name in EVIDENCE_FILES:
        if (unit.path / name).is_file():
            shutil.copyfile(unit.path / name, target / name)
    return target


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (the report prints its sources in its
    first line, which must not name this machine's checkout)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """The runner. ``SIGTERM`` and ``SIGINT`` stop it as Ctrl-C does, also when it was started in the background
    (where ``SIGINT`` is ignored): the running run is terminated and marked ``interrupted``, its evidence kept,
    and the same command continues it. (Killed any other way, the runner would leave its run training alone,
    and a second runner would start another one into the same folder.)"""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _main(argv)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=SCALES, default="reduced",
                        help="reduced: budgets for a 2-core CPU; paper: the papers' budgets")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="job or claim names (default: all)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/reproduce"))
    parser.add_argument("--report-out", type=Path, default=Path("docs/reproduction"),
                        help="the report: <report-out>.md and figures in <report-out>/")
    parser.add_argument("--evidence-dir", type=Path, default=REPO / "benchmarks" / "results" / "reproduce",
                        help="where each run's metrics, hparams and marker are copied for the report (tracked)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their commands; run nothing")
    parser.add_argument("--refresh", type=float, default=60.0, help="seconds between progress lines of a run")
    args = parser.parse_args(argv)
    try:
        jobs = select_jobs(args.only)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    root = args.runs_dir / args.scale
    evidence = args.evidence_dir / args.scale
    units = plan(jobs, args.scale, root, evidence)
    for claim in CLAIMS:
        if args.only and claim.name in args.only and claim.scale != args.scale:
            print(f"note: {claim.name} is decided by --scale {claim.scale} runs; at {args.scale} scale the report "
                  "shows it at the frames reached")
    print(progress(units, root, args.scale), flush=True)
    if args.dry_run:
        print("commands:")
        for unit in units:
            status = unit.status()
            if status == "foreign":
                print(f"  error: {unit.path}: a folder this runner did not make (no {MARKER}); move it away")
            elif status != "done":
                print(f"  {unit.display()}")
        print("\n".join(["estimated cost:", *estimates(jobs, args.scale)]))
        return 0
    commit = report.git_commit()
    failed, elsewhere = [], []
    for unit in units:
        if unit.status() == "done":
            continue
        try:
            with claimed(unit):
                if unit.status() == "done":  # another runner finished it since the check above
                    continue
                print(unit.line("running"), flush=True)
                ok = run_benchmark(unit, commit) if unit.job.is_benchmark else run_seed(unit, commit, args.refresh)
        except Busy:
            print(f"  running  {unit.label}  (in another runner: skipped)", flush=True)
            elsewhere.append(unit.label)
            continue
        except FileExistsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            keep_evidence(unit)
            print(f"\ninterrupted: {unit.label} stopped; run the same command again to continue", file=sys.stderr)
            return 130
        failed += [] if ok else [unit.label]
        keep_evidence(unit)
        print(progress(units, root, args.scale), flush=True)
    for unit in units:  # also the runs made before (or by an interrupted runner)
        keep_evidence(unit)
    evidence.mkdir(parents=True, exist_ok=True)
    sources = [evidence.parent, *sorted(report.RESULTS.glob("*.json"))]
    report.main([*map(_shown, sources), "--out", str(args.report_out)])
    if elsewhere:
        print(f"note: {len(elsewhere)} runs were running in another runner: {', '.join(elsewhere)} (the report "
              "shows them as far as they got; run again when they finish)")
    if failed:
        print(f"error: {len(failed)} runs failed or stopped short: {', '.join(failed)} (run again to resume them)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
