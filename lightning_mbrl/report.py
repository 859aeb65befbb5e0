"""Reproduction report: every paper's claims, measured from runs, with 95% intervals.

    python -m lightning_mbrl.report RUN_DIR... [--out docs/reproduction] [--reps 2000] [--seed 0]
    python -m lightning_mbrl.report benchmarks/results/reproduce benchmarks/results/*.json   # what reproduce writes

Reads run folders as ``lightning_mbrl.plot`` does: every folder holding a ``metrics.csv`` at or below a
RUN_DIR is a run, its recipe is the name of the folder it is in, and the runs of one recipe are its seeds
(one per ``seed`` in the run's ``hparams.yaml``; where a seed appears twice, e.g. in a reduced and a
paper-scale folder, the run with more frames). Every ``*.json`` below a RUN_DIR whose object has a
``"benchmark"`` key is a benchmark result (``benchmarks/results/*.json``, and the piecewise-linear
reports ``python -m benchmarks.reproduce`` writes): such results are the runs of claims about exact
computations. No RUN_DIR, or no runs in them, is fine: every claim then reads ``not run``.

Writes ``<out>.md`` (e.g. ``docs/reproduction.md``): per paper, a table of its claims, each with the
paper's figure or number, ours with a 95% interval and the number of seeds, the rule that decides the
verdict, the verdict, the command that re-creates the row's runs (``python -m benchmarks.reproduce
--only <claim>``) and the commit of those runs; learning curves of the paper's recipes (one line per
evaluator: the policy's ``eval/return``, BOOTS ``eval/boots*/return``, MPC ``eval/mpc/return``, mean over
seeds with its interval, as ``lightning_mbrl.plot`` draws them) and performance profiles of the claims
that compare groups, as PNGs in ``<out>/``; and a section on the paper-scale runs, each with its command
and an estimated cost.

**Claims** are entries of :data:`CLAIMS`: a :class:`Claim` names its paper, says the claim in one line,
gives the paper's value, a *measure* (which recipe, evaluator, frames and statistic it reads:
:class:`ReturnAt`, :class:`FramesTo`, :class:`FramesRatio`, :class:`Gain`, :class:`FractionOfOptimal`,
:class:`BenchmarkShare`, :class:`BenchmarkExact`) and a :class:`Rule` that decides the verdict from the
measured interval. Later issues add rows by adding entries (and, where new runs are needed, a
:class:`Job` to :data:`JOBS`).

**Statistics** are rliable's (``lightning_mbrl.stats``): the interquartile mean (IQM) or the mean over
seeds, each claim saying which (the mean where the paper's figure is a mean over seeds), with a 95%
stratified-bootstrap interval (2,000 resamples, seed 0: the same runs give the same report).

**Verdicts**: ``agree`` when the interval satisfies the claim's rule, ``disagree`` when it does not, and
``not run`` when there are fewer complete seeds than the claim needs: no runs, runs that have not
evaluated at the frames the claim reads (still running, or killed: a killed run keeps the rows it
logged), or a missing benchmark result. Where runs exist but are short, the table still shows ours at
the frames every seed reached, but the verdict stays ``not run``. A run killed after the frames a claim
reads does count for it: the rows it logged up to there are those of an uninterrupted run (runs resume
exactly, README "Checkpoints and resuming").

**Commit**: a run made by ``python -m benchmarks.reproduce`` records the commit it was run at (every
start of it, if resumed) in ``<run>/reproduce.json``, and a benchmark result in its ``"commit"`` key;
the runs of the recipes do not record theirs (``config.yaml`` and ``hparams.yaml`` hold the
configuration only), so for those the table gives the current ``git rev-parse --short HEAD`` and says so.

**Jobs** (:data:`JOBS`) say how each recipe's runs are made, at two scales: ``reduced`` (budgets that
fit a 2-core CPU) and ``paper`` (the papers' budgets). ``python -m benchmarks.reproduce`` runs them;
this module only reads them, for the commands and for the cost estimates of the paper-scale section.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from lightning_mbrl import plot, stats
from lightning_mbrl.precision import default_precision
from lightning_mbrl.stats import Estimate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MARKER = "reproduce.json"  # what benchmarks.reproduce writes into each run folder it makes
SCALES = ("reduced", "paper")


# ============================================================================================ runs
@dataclass
class Run:
    """One run folder: its recipe, seed, evaluation curves, the last env frame it logged and its budget."""

    path: Path
    recipe: str
    seed: str
    curves: plot.Curves
    frames: int
    max_frames: int | None
    commits: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    def state(self) -> str:
        """``"3,000 of 5,000 frames"`` (or ``"3,000 frames"`` when the budget is unknown)."""
        return f"{self.frames:,} of {self.max_frames:,} frames" if self.max_frames else f"{self.frames:,} frames"


@dataclass
class Result:
    """One benchmark result (a JSON object with a ``"benchmark"`` key)."""

    path: Path
    benchmark: str
    variant: str | None
    data: dict
    commits: tuple[str, ...]


@dataclass
class Found:
    """Everything the RUN_DIRs hold: ``runs[recipe]`` (one run per seed) and ``results[benchmark]``."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    results: dict[str, list[Result]] = field(default_factory=dict)

    def count(self) -> tuple[int, int]:
        return sum(map(len, self.runs.values())), sum(map(len, self.results.values()))


def last_frame(run: Path) -> int:
    """The largest env frame count (``step``) in a run's ``metrics.csv``; 0 if none (a cut last row is skipped)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return 0
    frames = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = plot._number(row.get("step"))
            frames = max(frames, step) if step is not None else frames
    return frames


def _marker_commits(data: dict) -> tuple[str, ...]:
    commits = data.get("commits") or ([data["commit"]] if data.get("commit") else [])
    return tuple(str(c) for c in commits)


def read_run(path: Path) -> Run:
    hparams = {}
    if (path / "hparams.yaml").is_file():
        try:
            hparams = yaml.safe_load((path / "hparams.yaml").read_text()) or {}
        except yaml.YAMLError:
            hparams = {}
    marker = {}
    if (path / MARKER).is_file():
        try:
            marker = json.loads((path / MARKER).read_text())
        except json.JSONDecodeError:
            marker = {}
    max_frames = hparams.get("max_frames")
    return Run(path=path, recipe=plot.recipe_of(path),
               seed=str(hparams["seed"]) if "seed" in hparams else path.name,
               curves=plot.read_run(path), frames=last_frame(path),
               max_frames=int(max_frames) if isinstance(max_frames, (int, float)) else None,
               commits=_marker_commits(marker))


def read_result(path: Path) -> Result | None:
    """A benchmark result, or ``None`` for a JSON file that is not one (or is still being written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("benchmark"), str):
        return None
    return Result(path, data["benchmark"], data.get("variant"), data, _marker_commits(data))


def discover(paths: Sequence[Path]) -> Found:
    """The runs and benchmark results at or below each path. A path that does not exist, or a file that is
    neither a ``metrics.csv`` nor a benchmark JSON, is a ``FileNotFoundError`` naming it."""
    run_paths: dict[Path, Path] = {}
    results: dict[Path, Result] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file():
            if path.name == "metrics.csv":
                run_paths.setdefault(path.parent.resolve(), path.parent)
            elif path.suffix == ".json" and (result := read_result(path)) is not None:
                results.setdefault(path.resolve(), result)
            else:
                raise FileNotFoundError(f"{path}: neither a run folder's metrics.csv nor a benchmark result "
                                        "(a JSON object with a \"benchmark\" key)")
            continue
        for metrics in sorted(path.rglob("metrics.csv")):
            run_paths.setdefault(metrics.parent.resolve(), metrics.parent)
        for candidate in sorted(path.rglob("*.json")):
            if candidate.name != MARKER and (result := read_result(candidate)) is not None:
                results.setdefault(candidate.resolve(), result)
    found = Found()
    by_seed: dict[tuple[str, str], Run] = {}
    for run_path in run_paths.values():
        run = read_run(run_path)
        key = (run.recipe, run.seed)
        if key not in by_seed or run.frames > by_seed[key].frames:
            by_seed[key] = run
    for (recipe, _), run in sorted(by_seed.items()):
        found.runs.setdefault(recipe, []).append(run)
    for result in results.values():
        found.results.setdefault(result.benchmark, []).append(result)
    return found


# ============================================================================================ measures
@dataclass
class Measured:
    """What a measure found: the estimate a rule judges (``None``: nothing to judge), the ``ours`` and
    ``seeds`` cells, why the claim cannot be judged (``missing``; ``None`` when it can), the runs and
    results it read, and per-run scores by group (for the performance profiles)."""

    estimate: Estimate | None
    text: str
    seeds: str
    missing: str | None = None
    used: list = field(default_factory=list)
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    higher_is_better: bool = True
    unit: str = ""


class Measure(Protocol):
    """What a claim reads: the recipes whose runs it needs (for the figures) and how it measures them."""

    @property
    def recipes(self) -> tuple[str, ...]: ...

    def measure(self, found: Found, reps: int, seed: int) -> Measured: ...


def _not_yet(short: Sequence[Run], absent: int) -> str:
    """Why seeds are missing: ``"seed_1 at 150 of 300 frames, 2 not started"``."""
    return ", ".join([f"{r.name} at {r.state()}" for r in short] + ([f"{absent} not started"] if absent > 0 else []))


def _last_at_or_before(curve: dict[int, float], frames: int) -> int | None:
    before = [f for f in curve if f <= frames]
    return max(before) if before else None


class _PerSeed:
    """Shared by the measures that read one number per seed at a frame count (fields ``recipe``, ``frames``,
    ``seeds``, ``statistic``, ``digits``): a run counts once it has evaluated at ``frames`` or later
    (``reached``) and has a value there; with fewer such seeds than ``seeds`` the claim is not run, and ours
    is shown at the largest frame count every run has evaluated. Subclasses define ``reached``, ``value``
    and ``last_evaluated``, and may define ``groups`` (for the performance profiles)."""

    unit = ""

    @property
    def recipes(self) -> tuple[str, ...]:
        return (self.recipe,)

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        runs = found.runs.get(self.recipe, [])
        if not runs:
            return Measured(None, "—", "0", missing=f"no runs of {self.recipe}")
        complete = [r for r in runs if self.reached(r, self.frames) and self.value(r, self.frames) is not None]
        if len(complete) >= self.seeds:
            values = np.array([self.value(r, self.frames) for r in complete])
            est = stats.estimate(values, self.statistic, reps=reps, seed=seed)
            return Measured(est, f"{est.format(self.digits)}{self.unit}", str(len(complete)), used=complete,
                            groups=self.groups(complete, self.frames), unit=self.unit)
        short = [r for r in runs if r not in complete]
        why = (f"{len(complete)} of {self.seeds} seeds of {self.recipe} evaluated at {self.frames:,} frames; "
               + _not_yet(short, self.seeds - len(runs)))
        reached = [self.last_evaluated(r) for r in runs]
        values = [] if None in reached else [self.value(r, min(reached)) for r in runs]
        if not values or None in values:
            return Measured(None, "—", str(len(complete)), missing=why, used=runs)
        est = stats.estimate(np.array(values), self.statistic, reps=reps, seed=seed)
        text = f"{est.format(self.digits)}{self.unit} at {min(reached):,} frames"
        return Measured(est, text, f"{len(runs)} (short)", missing=why, used=runs, unit=self.unit)

    def groups(self, runs: list[Run], frames: int) -> dict[str, np.ndarray]:
        return {}


@dataclass(frozen=True)
class ReturnAt(_PerSeed):
    """The ``statistic`` over seeds of ``evaluator``'s return at ``frames`` (its last evaluation at or before)."""

    recipe: str
    frames: int
    evaluator: str = "policy"
    statistic: str = "mean"
    seeds: int = 3
    digits: int = 0

    def reached(self, run: Run, frames: int) -> bool:
        curve = run.curves.get(self.evaluator, {})
        return bool(curve) and max(curve) >= frames

    def value(self, run: Run, frames: int) -> float | None:
        curve = run.curves.get(self.evaluator, {})
        at = _last_at_or_before(curve, frames)
        return None if at is None else curve[at]

    def last_evaluated(self, run: Run) -> int | None:
        curve = run.curves.get(self.evaluator, {})
        return max(curve) if curve else None


@dataclass(frozen=True)
class Gain(_PerSeed):
    """Per seed, the mean over the evaluations up to ``frames`` that both evaluators ran of
    ``evaluator - baseline`` (e.g. BOOTS minus the policy it plans over); ``statistic`` over seeds."""

    recipe: str
    frames: int
    evaluator: str = "boots"
    baseline: str = "policy"
    statistic: str = "iqm"
    seeds: int = 3
    digits: int = 0

    def common(self, run: Run) -> list[int]:
        return sorted(set(run.curves.get(self.evaluator, {})) & set(run.curves.get(self.baseline, {})))

    def reached(self, run: Run, frames: int) -> bool:
        common = self.common(run)
        return bool(common) and common[-1] >= frames

    def value(self, run: Run, frames: int) -> float | None:
        e, b = run.curves.get(self.evaluator, {}), run.curves.get(self.baseline, {})
        common = [f for f in self.common(run) if f <= frames]
        return float(np.mean([e[f] - b[f] for f in common])) if common else None

    def last_evaluated(self, run: Run) -> int | None:
        common = self.common(run)
        return common[-1] if common else None

    def groups(self, runs: list[Run], frames: int) -> dict[str, np.ndarray]:
        def mean_of(run: Run, name: str) -> float:
            curve = run.curves[name]
            return float(np.mean([curve[f] for f in self.common(run) if f <= frames]))

        return {name: np.array([mean_of(r, name) for r in runs]) for name in (self.baseline, self.evaluator)}


@dataclass(frozen=True)
class FractionOfOptimal(_PerSeed):
    """``evaluator``'s return at ``frames`` over the exact optimal return the run logged
    (``eval/optimal_return``, ``callbacks.OptimalReturn``); ``statistic`` over seeds."""

    unit = " of optimal"

    recipe: str
    frames: int
    evaluator: str = "policy"
    statistic: str = "iqm"
    seeds: int = 3
    digits: int = 3

    def reached(self, run: Run, frames: int) -> bool:
        curve = run.curves.get(self.evaluator, {})
        return bool(curve) and max(curve) >= frames and bool(run.curves.get("optimal"))

    def value(self, run: Run, frames: int) -> float | None:
        curve, optimal = run.curves.get(self.evaluator, {}), run.curves.get("optimal", {})
        at = _last_at_or_before(curve, frames)
        if at is None or not optimal:
            return None
        best = optimal.get(at, next(iter(optimal.values())))  # a constant of the task, logged with each evaluation
        return curve[at] / best

    def last_evaluated(self, run: Run) -> int | None:
        curve = run.curves.get(self.evaluator, {})
        return max(curve) if curve and run.curves.get("optimal") else None

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        measured = super().measure(found, reps, seed)
        runs = found.runs.get(self.recipe, [])
        if measured.estimate is None and runs and not any(r.curves.get("optimal") for r in runs):
            measured.missing = f"no eval/optimal_return in the runs of {self.recipe} (callbacks.OptimalReturn)"
        return measured


@dataclass(frozen=True)
class FramesTo:
    """Per seed, the first evaluation frame count at which ``evaluator``'s return reached ``threshold``; a seed
    that evaluated through its whole ``budget`` without reaching it counts as ``budget`` (a lower bound, shown
    with >=), one that stopped earlier without reaching it is not counted. ``statistic`` over seeds."""

    recipe: str
    threshold: float
    budget: int
    evaluator: str = "policy"
    statistic: str = "iqm"
    seeds: int = 5

    @property
    def recipes(self) -> tuple[str, ...]:
        return (self.recipe,)

    def per_run(self, run: Run) -> tuple[float, bool] | None:
        """``(frames, censored)``, or ``None`` if not known yet."""
        curve = run.curves.get(self.evaluator, {})
        hit = next((f for f in sorted(curve) if curve[f] >= self.threshold), None)
        if hit is not None:
            return float(hit), False
        if curve and max(curve) >= self.budget:
            return float(self.budget), True
        return None

    def scores(self, found: Found) -> tuple[list[Run], np.ndarray, int, str | None]:
        """The runs whose frames to the threshold are known, those frames, how many are censored, and why
        the claim cannot be judged (``None`` if it can)."""
        runs = found.runs.get(self.recipe, [])
        if not runs:
            return [], np.array([]), 0, f"no runs of {self.recipe}"
        known = [(r, v) for r in runs if (v := self.per_run(r)) is not None]
        missing = None
        if len(known) < self.seeds:
            unknown = [r for r in runs if self.per_run(r) is None]
            missing = (f"{len(known)} of {self.seeds} seeds of {self.recipe} reached {self.threshold:,.0f} or ran "
                       f"{self.budget:,} frames; " + _not_yet(unknown, self.seeds - len(runs)))
        return ([r for r, _ in known], np.array([v[0] for _, v in known]), sum(v[1] for _, v in known), missing)

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        runs, values, censored, missing = self.scores(found)
        if missing is not None:
            return Measured(None, "—", str(len(values)), missing=missing, used=runs)
        est = stats.estimate(values, self.statistic, reps=reps, seed=seed)
        note = f" ({censored} of {len(values)} seeds never reached it: >= {self.budget:,})" if censored else ""
        return Measured(est, f"{est.format(0)} frames{note}", str(len(values)), used=runs, unit="frames")


@dataclass(frozen=True)
class FramesRatio:
    """``numerator`` over ``denominator`` frames to a threshold (e.g. SAC's over MBPO's), the ratio of their
    statistics with an interval from resampling each set of seeds on its own."""

    numerator: FramesTo
    denominator: FramesTo

    @property
    def recipes(self) -> tuple[str, ...]:
        return (self.denominator.recipe, self.numerator.recipe)

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        num_runs, num, num_censored, num_missing = self.numerator.scores(found)
        den_runs, den, _, den_missing = self.denominator.scores(found)
        if num_missing or den_missing:
            why = "; ".join(m for m in (den_missing, num_missing) if m)
            return Measured(None, "—", f"{len(den)} + {len(num)}", missing=why, used=num_runs + den_runs)
        statistic = self.numerator.statistic
        est = stats.ratio_estimate(num, den, statistic, reps=reps, seed=seed)
        num_est = stats.estimate(num, statistic, reps=reps, seed=seed)
        den_est = stats.estimate(den, statistic, reps=reps, seed=seed)
        bound = ">= " if num_censored else ""
        text = (f"{est.format(2)} x ({self.numerator.recipe} {bound}{num_est.format(0)} / "
                f"{self.denominator.recipe} {den_est.format(0)} frames)")
        return Measured(est, text, f"{len(den)} + {len(num)}", used=num_runs + den_runs,
                        groups={self.denominator.recipe: den, self.numerator.recipe: num}, higher_is_better=False,
                        unit="frames")


@dataclass(frozen=True)
class BenchmarkShare:
    """A share of ``n`` independent trials a benchmark reports (``key``, e.g. the fraction of 1,000 random MDPs
    with more than 100 pieces), with the interval of the mean of their 0/1 outcomes."""

    benchmark: str
    variant: str
    key: str
    n_key: str = "n"
    what: str = "MDPs"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        results = [r for r in found.results.get(self.benchmark, []) if r.variant == self.variant
                   and isinstance(r.data.get(self.key), (int, float)) and isinstance(r.data.get(self.n_key), int)]
        if not results:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result ({self.variant})")
        result = max(results, key=lambda r: r.data[self.n_key])  # the largest sample if there are several
        n = result.data[self.n_key]
        est = stats.estimate(stats.proportion_scores(float(result.data[self.key]), n), "mean", reps=reps, seed=seed)
        return Measured(est, f"{est.value:.1%} [{est.low:.1%}, {est.high:.1%}]", f"{n:,} {self.what}", used=[result])


@dataclass(frozen=True)
class BenchmarkExact:
    """An exact count a benchmark reports (``key``) against the theory's (``expected_key``), in every result of
    the benchmark (e.g. one per horizon H); the estimate is the share that match (an exact number, no interval)."""

    benchmark: str
    key: str
    expected_key: str
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        results = sorted((r for r in found.results.get(self.benchmark, [])
                          if self.key in r.data and self.expected_key in r.data),
                         key=lambda r: (len(r.variant or ""), r.variant or ""))
        if not results:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} results")
        rows = [(r.variant or r.path.stem, r.data[self.key], r.data[self.expected_key]) for r in results]
        share = sum(got == want for _, got, want in rows) / len(rows)
        wrong = [f"{name}: {got} (expected {want})" for name, got, want in rows if got != want]
        text = ("; ".join(wrong) if wrong
                else f"{', '.join(f'{got}' for _, got, _ in rows)} ({', '.join(name for name, _, _ in rows)})")
        est = Estimate("exact", share, share, share, len(rows))
        return Measured(est, f"{share:.0%} match: {text}", f"{len(rows)} (exact)", used=results)


@dataclass(frozen=True)
class PredictionsHold:
    """Paper 001's 3x3 experiment (``benchmarks.generalization_3x3``): on one dataset (``coverage``), the share of
    agents whose verdict by the majority rule (fail: in some cell most seeds pick a wrong greedy action) is the
    paper's prediction; exact (no interval: the verdicts are the paper's statistic), with the seeds it used."""

    coverage: str
    benchmark: str = "generalization_3x3"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        results = [(r, [run for run in r.data.get("runs", []) if run.get("coverage") == self.coverage])
                   for r in found.results.get(self.benchmark, [])]
        results = [(r, runs) for r, runs in results if runs]
        if not results:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result for {self.coverage}")
        result, runs = max(results, key=lambda item: (item[1][0]["seeds"], len(item[1])))  # the most seeds
        share = sum(run["passes"] == run["predicted_pass"] for run in runs) / len(runs)
        text = ", ".join(f"{run['agent']} {'pass' if run['passes'] else 'fail'} (min cell "
                         f"{min(c['fraction_correct'] for c in run['cells']):.2f})" for run in runs)
        seeds = f"{runs[0]['seeds']} x {len(runs)} agents ({runs[0]['updates']:,} updates)"
        return Measured(Estimate("exact", share, share, share, len(runs)), f"{share:.0%} as predicted: {text}", seeds,
                        used=[result])


@dataclass(frozen=True)
class ModelPositionAccuracy:
    """Paper 001's footnote 3: the fitted simple model's most likely next agent cell is right on the evaluation
    layouts' transitions (all of them, in the data or not); mean over seeds with its interval."""

    coverage: str
    benchmark: str = "generalization_3x3"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        fits = [(run["model_position_accuracy"], r) for r in found.results.get(self.benchmark, [])
                for run in r.data.get("runs", []) if run.get("coverage") == self.coverage
                and run.get("model_position_accuracy")]
        if not fits:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} model fit for {self.coverage}")
        per_seed, result = max(fits, key=lambda fit: len(fit[0]))  # the most seeds, and the result holding them
        scores = np.asarray(per_seed, dtype=float)
        est = stats.estimate(scores, "mean", reps=reps, seed=seed)
        return Measured(est, f"{est.value:.1%} [{est.low:.1%}, {est.high:.1%}]", f"{len(scores)}", used=[result])



@dataclass(frozen=True)
class SmoothingRise:
    """Paper 001's Figure 4 (left), ``benchmarks.panflute_smoothing``: per seed, ``agent``'s prediction (``key``:
    ``reward_by_ends_now`` or ``p_all_next_by_ends_next``) in the bin of ``pipes - 1`` lit pipe-ends minus the
    bin of none; both bins' ground truth is 0, so a rise is smoothing. Mean over seeds with its interval."""

    agent: str
    key: str
    benchmark: str = "panflute_smoothing"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        results = [(r, row) for r in found.results.get(self.benchmark, []) for row in r.data.get("agents", [])
                   if row.get("agent") == self.agent and self.key in row]
        if not results:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result for {self.agent}")
        result, row = max(results, key=lambda item: len(item[1][self.key][0]))  # the most seeds
        bins = row[self.key]
        pairs = [(top, zero) for top, zero in zip(bins[-2], bins[0]) if top is not None and zero is not None]
        if not pairs:
            return Measured(None, "—", "0", used=[result], missing="empty bins")
        top, zero = (np.array(x, dtype=float) for x in zip(*pairs))
        est = stats.estimate(top - zero, "mean", reps=reps, seed=seed)
        n = len(bins) - 1
        text = f"{est.format(3)} ({n - 1} lit {top.mean():.3f}, none lit {zero.mean():.3f})"
        return Measured(est, text, str(len(pairs)), used=[result])


@dataclass(frozen=True)
class FrozenModelGap:
    """Paper 001's Figure 4 (right), ``benchmarks.panflute_frozen_model``: per seed, the env steps Q needs to reach
    near-optimal performance on the model frozen after ``late`` model steps minus on the one frozen after
    ``early`` (paired: the same seeds; both must reach it on every seed); mean with its interval."""

    early: int
    late: int
    benchmark: str = "panflute_frozen_model"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        for result in sorted(found.results.get(self.benchmark, []), key=lambda r: -len(r.data.get("runs", []))):
            runs = {r["model_updates"]: r["steps_to_near_optimal"] for r in result.data.get("runs", [])}
            if self.early in runs and self.late in runs:
                break
        else:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} runs frozen after {self.early} and {self.late}")
        early, late = runs[self.early], runs[self.late]
        if None in early or None in late:
            never = sum(x is None for x in early) + sum(x is None for x in late)
            return Measured(None, "—", str(len(early)), used=[result],
                            missing=f"{never} seed runs never near-optimal (the gap needs every seed)")
        est = stats.estimate(np.subtract(late, early, dtype=float), "mean", reps=reps, seed=seed)
        text = f"{est.format(0)} steps (after {self.early}: {np.mean(early):,.0f}; after {self.late}: {np.mean(late):,.0f})"
        return Measured(est, text, str(len(early)), used=[result])


@dataclass(frozen=True)
class OnlineGap:
    """Paper 001's Figure 3 at a reduced scale, ``benchmarks.generalization_online``: on ``env``, per seed,
    ``agent``'s final greedy performance minus ``baseline``'s on the same seed (paired); mean with its
    interval. The run with the most seeds is used."""

    env: str
    agent: str
    baseline: str
    benchmark: str = "generalization_online"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        best = None
        for result in found.results.get(self.benchmark, []):
            runs = {r["agent"]: r for r in result.data.get("runs", []) if r.get("env") == self.env}
            if self.agent in runs and self.baseline in runs and runs[self.agent]["seeds"] == runs[self.baseline]["seeds"]:
                if best is None or runs[self.agent]["seeds"] > best[1][self.agent]["seeds"]:
                    best = (result, runs)
        if best is None:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} runs of {self.agent} and {self.baseline} "
                                                    f"on {self.env}")
        result, runs = best
        ours, theirs = (np.asarray(runs[a]["final"], dtype=float) for a in (self.agent, self.baseline))
        est = stats.estimate(ours - theirs, "mean", reps=reps, seed=seed)
        run = runs[self.agent]
        text = (f"{est.format(3)} ({self.agent} {ours.mean():.3f}, {self.baseline} {theirs.mean():.3f}; "
                f"{run['regime']} data, {run['steps']:,} steps)")
        return Measured(est, text, str(len(ours)), used=[result], groups={self.baseline: theirs, self.agent: ours})


def _most_seeds(found: Found, benchmark: str, required: set[str], seeds_key: str) -> Result | None:
    """The ``benchmark`` result holding every key of ``required`` with the most seeds (``len(data[seeds_key])``),
    if any."""
    results = [r for r in found.results.get(benchmark, []) if required <= set(r.data)]
    return max(results, key=lambda r: len(r.data[seeds_key])) if results else None


@dataclass(frozen=True)
class GradientErrorGap:
    """Paper 004's gradient-error study (``benchmarks.maac_gradient_error``): per seed, the L1 error of the MAAC
    gradient with the learned model minus that with the true dynamics at horizon ``horizon`` (paired: the same
    learned Q); mean over seeds with its interval."""

    horizon: int
    benchmark: str = "maac_gradient_error"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        result = _most_seeds(found, self.benchmark, {"runs", "horizons"}, "runs")
        if result is None or self.horizon not in result.data["horizons"]:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result at H = {self.horizon}")
        i = result.data["horizons"].index(self.horizon)
        learned, true = (np.array([run[k][i] for run in result.data["runs"]], dtype=float)
                         for k in ("learned_dynamics", "true_dynamics"))
        est = stats.estimate(learned - true, "mean", reps=reps, seed=seed)
        text = f"{est.format(3)} (learned {learned.mean():.3f}, true {true.mean():.3f})"
        return Measured(est, text, str(len(learned)), used=[result])


@dataclass(frozen=True)
class GradientErrorArgmin:
    """Paper 004's gradient-error study: the horizon at which the mean (over seeds) L1 error of the MAAC gradient
    with ``dynamics`` is smallest (exact: one number from the means); "first falling, then rising" puts it
    strictly inside the horizons studied."""

    dynamics: str = "learned_dynamics"
    benchmark: str = "maac_gradient_error"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        result = _most_seeds(found, self.benchmark, {"runs", "horizons"}, "runs")
        if result is None:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result")
        horizons = result.data["horizons"]
        means = np.array([run[self.dynamics] for run in result.data["runs"]], dtype=float).mean(0)
        h = horizons[int(means.argmin())]
        curve = ", ".join(f"{m:.3f}" for m in means)
        return Measured(Estimate("exact", h, h, h, len(result.data["runs"])),
                        f"H = {h} (mean error by H = {horizons[0]}..{horizons[-1]}: {curve})",
                        str(len(result.data["runs"])), used=[result])




@dataclass(frozen=True)
class TabularAbove:
    """Paper 003's two-state MDP (``benchmarks.omd_tabular``): at each of Figure 2's kappas below ``below``, the
    per-seed difference of the returns ``J`` of OMD and MLE (both start from the seed's parameters), with its
    interval; the estimate is the share of those kappas whose interval lies above 0 (exact: one verdict per kappa)."""

    below: float = 3.0
    benchmark: str = "omd_tabular"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        result = _most_seeds(found, self.benchmark, {"runs", "kappas", "seeds"}, "seeds")
        if result is None:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result")
        data = result.data
        kappas = [i for i in data["figure2_indices"] if data["kappas"][i] < self.below]
        omd, mle = (np.asarray(data["runs"][a]["returns"], dtype=float) for a in ("omd", "mle"))
        cells = []
        for i in kappas:
            est = stats.estimate(omd[i] - mle[i], "mean", reps=reps, seed=seed)
            cells.append((data["kappas"][i], est))
        share = sum(e.low > 0 for _, e in cells) / len(cells)
        text = "; ".join(f"kappa {k:.2f}: {e.format(3)}" for k, e in cells)
        return Measured(Estimate("exact", share, share, share, len(cells)), f"{share:.0%} of kappas: {text}",
                        f"{len(data['seeds'])}", used=[result])


@dataclass(frozen=True)
class TabularFractionOfOptimal:
    """Paper 003's two-state MDP: OMD's return ``J`` at kappa index ``index`` over the optimal ``J``, mean over
    seeds with its interval."""

    index: int = 16
    agent: str = "omd"
    benchmark: str = "omd_tabular"
    recipes: tuple[str, ...] = ()

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        result = _most_seeds(found, self.benchmark, {"runs", "kappas", "seeds"}, "seeds")
        if result is None:
            return Measured(None, "—", "0", missing=f"no {self.benchmark} result")
        returns = np.asarray(result.data["runs"][self.agent]["returns"][self.index], dtype=float)
        est = stats.estimate(returns / result.data["optimal_return"], "mean", reps=reps, seed=seed)
        kappa = result.data["kappas"][self.index]
        return Measured(est, f"{est.format(4)} of optimal at kappa {kappa:.2f}", str(len(returns)), used=[result])


@dataclass(frozen=True)
class ScoreGap:
    """Per seed, ``recipe``'s mean return over its evaluations from ``from_frames`` to ``frames`` minus
    ``baseline``'s on the same seed (paired); ``statistic`` over seeds. A seed counts once both runs have
    evaluated at ``frames``."""

    recipe: str
    baseline: str
    from_frames: int
    frames: int
    seeds: int
    statistic: str = "mean"
    evaluator: str = "policy"

    @property
    def recipes(self) -> tuple[str, ...]:
        return (self.recipe, self.baseline)

    def score(self, run: Run) -> float | None:
        curve = run.curves.get(self.evaluator, {})
        if not curve or max(curve) < self.frames:
            return None
        values = [v for f, v in curve.items() if self.from_frames <= f <= self.frames]
        return float(np.mean(values)) if values else None

    def measure(self, found: Found, reps: int, seed: int) -> Measured:
        a = {r.seed: r for r in found.runs.get(self.recipe, [])}
        b = {r.seed: r for r in found.runs.get(self.baseline, [])}
        pairs = [(a[s], b[s]) for s in sorted(set(a) & set(b))
                 if self.score(a[s]) is not None and self.score(b[s]) is not None]
        used = [run for pair in pairs for run in pair]
        if len(pairs) < self.seeds:
            return Measured(None, "—", str(len(pairs)), used=used or [*a.values(), *b.values()],
                            missing=f"{len(pairs)} of {self.seeds} seeds with {self.recipe} and {self.baseline} "
                                    f"both evaluated at {self.frames:,} frames")
        ours = np.array([self.score(x) for x, _ in pairs])
        theirs = np.array([self.score(y) for _, y in pairs])
        est = stats.estimate(ours - theirs, self.statistic, reps=reps, seed=seed)
        text = f"{est.format(0)} ({self.recipe} {ours.mean():.0f}, {self.baseline} {theirs.mean():.0f})"
        return Measured(est, text, str(len(pairs)), used=used, groups={self.baseline: theirs, self.recipe: ours})


# ============================================================================================ rules
@dataclass(frozen=True)
class Rule:
    """When a claim agrees: ``text`` says it, ``decide`` checks it on the measured estimate."""

    text: str
    decide: Callable[[Estimate], bool]


def at_most(x: float, what: str) -> Rule:
    return Rule(f"upper end <= {what}", lambda e: e.high <= x)


def at_least(x: float, what: str) -> Rule:
    return Rule(f"lower end >= {what}", lambda e: e.low >= x)


def above(x: float, what: str) -> Rule:
    return Rule(f"lower end > {what}", lambda e: e.low > x)


def below(x: float, what: str) -> Rule:
    return Rule(f"upper end < {what}", lambda e: e.high < x)


def overlaps(low: float, high: float, what: str) -> Rule:
    return Rule(f"interval meets {what}", lambda e: e.low <= high and e.high >= low)


def contains(x: float, what: str) -> Rule:
    return Rule(f"interval contains {what}", lambda e: e.contains(x))


# ============================================================================================ claims
PAPERS = {
    "001": "The Benefits of Model-Based Generalization in Reinforcement Learning (Young, Ramesh, Kirsch and "
           "Schmidhuber 2023)",
    "002": "MBPO: When to Trust Your Model: Model-Based Policy Optimization (Janner et al. 2019)",
    "000": "BOOTS / MBSAC: On the Expressivity of Neural Networks for Deep Reinforcement Learning "
           "(Dong, Luo, Yu, Finn and Ma 2020)",
    "003": "OMD: Control-Oriented Model-Based Reinforcement Learning with Implicit Differentiation "
           "(Nikishin, Abachi, Agarwal and Bacon 2022)",
    "004": "MAAC: Model-Augmented Actor-Critic: Backpropagating through Paths (Clavera, Fu and Abbeel 2020)",
}


@dataclass(frozen=True)
class Claim:
    """One row of the report. ``jobs``: the :data:`JOBS` that make its runs; ``scale``: the smallest runner
    scale whose budgets can decide it."""

    paper: str
    name: str
    text: str
    paper_value: str
    measure: Measure
    rule: Rule
    jobs: tuple[str, ...]
    scale: str = "reduced"

    def command(self) -> str:
        scale = "" if self.scale == "reduced" else f" --scale {self.scale}"
        return f"python -m benchmarks.reproduce{scale} --only {self.name}"


_IP_MBPO = FramesTo("mbpo_invertedpendulum", threshold=950, budget=5_000, seeds=5)
_IP_SAC = FramesTo("sac_invertedpendulum", threshold=950, budget=15_000, seeds=5)
_IP_MAAC = FramesTo("maac_invertedpendulum", threshold=950, budget=3_000, seeds=3)

CLAIMS: tuple[Claim, ...] = (
    # ---------------------------------------------------------------- paper 001, model-based generalization
    Claim("001", "grid3x3_all_evaluation",
          "3x3 grid, All-Evaluation data: ER-DQN and the simple model with 1- and 10-step rollouts all pass",
          "all agents pass (Figure 1, 30 seeds)",
          PredictionsHold("all_evaluation"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_path_to_goal",
          "3x3 grid, Path-to-Goal data: ER-DQN fails, both model agents pass",
          "ER fails, model-1 and model-10 pass (Figure 1, 30 seeds)",
          PredictionsHold("path_to_goal"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_single_cell",
          "3x3 grid, Single-Cell data: only the 10-step model passes",
          "only model-10 passes (Figure 1, 30 seeds)",
          PredictionsHold("single_cell"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_no_evaluation",
          "3x3 grid, No-Evaluation data: every agent fails",
          "all agents fail (Figure 1, 30 seeds)",
          PredictionsHold("no_evaluation"), at_least(1.0, "every agent as predicted"), ("generalization_3x3",)),
    Claim("001", "grid3x3_model_near_perfect",
          "3x3 grid, Path-to-Goal data: the simple model predicts the next agent cell of every evaluation-layout "
          "transition (mean over seeds)",
          "near perfect (footnote 3)",
          ModelPositionAccuracy("path_to_goal"), at_least(0.95, "95%"), ("generalization_3x3",)),
    Claim("001", "panflute_reward_smoothing_simple",
          "9-pipe PanFlute, models after 10k steps: the simple model predicts more reward with 8 pipe-ends lit "
          "than with none, though the true reward of both is 0 (8 lit minus none, mean over seeds)",
          "smoothed reward rising with the lit pipe-ends (Figure 4 left)",
          SmoothingRise("simple", "reward_by_ends_now"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute_reward_smoothing_gaussian",
          "9-pipe PanFlute, models after 10k steps: the Gaussian latent model predicts more reward with 8 "
          "pipe-ends lit than with none (true reward 0 in both)",
          "smoothed reward rising with the lit pipe-ends (Figure 4 left)",
          SmoothingRise("gaussian", "reward_by_ends_now"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute_dynamics_smoothing_gaussian",
          "9-pipe PanFlute: the Gaussian latent model gives 'all pipe-ends lit next' more probability when 8 "
          "will be lit than when none will (true probability 0 in both)",
          "appreciable probability when only most will be lit (Figure 4 left)",
          SmoothingRise("gaussian", "p_all_next_by_ends_next"), above(0.0, "0"), ("panflute_smoothing",)),
    Claim("001", "panflute5_intermediate_model_fastest",
          "5-pipe PanFlute (reduced): Q learned from scratch on a simple model frozen after 3,000 model steps is "
          "near-optimal sooner than on one frozen after 7,000 (env steps, later minus earlier, paired by seed)",
          "an intermediately trained model is most useful (Figure 4 right, 9 pipes)",
          FrozenModelGap(3_000, 7_000), above(0.0, "0"), ("panflute_frozen_model",)),
    Claim("001", "panflute6_simple_above_perfect",
          "6-pipe PanFlute, high data, 10k steps (reduced): Dyna-DQN with the learned simple model ends above the "
          "perfect model (final greedy reward rate, paired by seed)",
          "learned models above the perfect model on harder PanFlute instances (Figure 3)",
          OnlineGap("gridworld/panflute-6", "simple", "perfect"), above(0.0, "0"), ("generalization_online",)),
    Claim("001", "panflute6_gaussian_above_perfect",
          "6-pipe PanFlute, high data, 10k steps (reduced): the Gaussian latent model ends above the perfect model",
          "learned models above the perfect model on harder PanFlute instances (Figure 3)",
          OnlineGap("gridworld/panflute-6", "gaussian", "perfect"), above(0.0, "0"), ("generalization_online",)),
    Claim("001", "procmaze3_low_simple_above_er",
          "ProcMaze of size 3, low data (10 updates per step), 1.5k steps (reduced): the simple model ends above "
          "ER-DQN (final greedy return, paired by seed)",
          "simple model above ER, more so in low data (Figure 3)",
          OnlineGap("gridworld/procmaze-3", "simple", "er"), above(0.0, "0"), ("generalization_online",)),
    # ---------------------------------------------------------------- paper 004, MAAC
    Claim("004", "maac_vs_sac_invertedpendulum",
          "SAC needs at least 3x the frames MAAC needs to reach 950 on InvertedPendulum-v5 (known reward; the "
          "MBPO test's protocol; tests/learning/test_maac_invertedpendulum.py)",
          "MAAC far more sample-efficient than model-free SAC (Figure 2)",
          FramesRatio(_IP_SAC, _IP_MAAC), at_least(3.0, "3x"), ("maac_invertedpendulum", "sac_invertedpendulum")),
    Claim("004", "maac_mpc_keeps_return",
          "Test-time MPC (policy-seeded CEM on MAAC's ensemble, terminal Q) does not lower the trained MAAC "
          "policy's InvertedPendulum-v5 return at 3k frames (MPC minus policy, mean of 3 seeds)",
          "MPC raises the return (Table 1)",
          Gain("maac_invertedpendulum", 3_000, evaluator="mpc", statistic="mean", seeds=3), at_least(-10.0, "-10"),
          ("maac_invertedpendulum",)),
    Claim("004", "maac_halfcheetah_50k",
          "MAAC's HalfCheetah (MBBL variant) return reaches about 10k within about 50 rollouts (here: at 55k "
          "frames, the 5k random ones included; mean of the code's 4 seeds)",
          "10k return in 50 trajectories (Section 1; Figure 2)",
          ReturnAt("maac_halfcheetah", 55_000, seeds=4), at_least(9_000.0, "9,000 (10k - 10%)"),
          ("maac_halfcheetah",), scale="paper"),
    Claim("004", "maac_halfcheetah_table1",
          "MAAC's converged HalfCheetah (MBBL variant) return at the code's 205k frames matches Table 1 (mean of "
          "the code's 4 seeds)",
          "1.07e4 +- 253 (Table 1, maac)",
          ReturnAt("maac_halfcheetah", 205_000, seeds=4), overlaps(10_447, 10_953, "1.07e4 +- 253"),
          ("maac_halfcheetah",), scale="paper"),
    Claim("004", "maac_gradient_true_below_learned",
          "Double integrator, MAAC gradient at H = 10: the L1 error against the oracle is larger with the learned "
          "model than with the true dynamics (learned minus true, paired by seed)",
          "true dynamics lower (Figure 3, H up to 10)",
          GradientErrorGap(10), above(0.0, "0"), ("maac_gradient_error",)),
    Claim("004", "maac_gradient_learned_u_shape",
          "Double integrator: the learned-model gradient error first falls, then rises with H (its smallest mean "
          "error at an H strictly between 0 and 10)",
          "falls, then rises (Figure 3)",
          GradientErrorArgmin(), overlaps(1, 9, "1 <= H <= 9"), ("maac_gradient_error",)),
    # ---------------------------------------------------------------- paper 002, MBPO
    Claim("002", "mbpo_invertedpendulum_950",
          "MBPO reaches return 950 on InvertedPendulum-v5 within ~5k frames (10 deterministic episodes every 250)",
          "~5k frames (Figure 2; read from figure, approximate)",
          _IP_MBPO, at_most(5_000, "5,000 frames"), ("mbpo_invertedpendulum",)),
    Claim("002", "mbpo_vs_sac_invertedpendulum",
          "SAC needs far more frames than MBPO to reach 950 on InvertedPendulum-v5 (here: at least 3x)",
          "far more (Figure 2; read from figure)",
          FramesRatio(_IP_SAC, _IP_MBPO), at_least(3.0, "3x"), ("mbpo_invertedpendulum", "sac_invertedpendulum")),
    Claim("002", "mbpo_hopper_100k",
          "MBPO's Hopper-v5 return at 100k frames matches the paper's curve (mean of 5 seeds)",
          "~3,000 at 100k frames (Figure 2; read from figure, approximate)",
          ReturnAt("mbpo_hopper", 100_000, seeds=5), overlaps(2_700, 3_300, "3,000 +- 10%"), ("mbpo_hopper",),
          scale="paper"),
    Claim("002", "mbpo_halfcheetah_400k",
          "MBPO's HalfCheetah-v5 return at 400k frames matches the paper's curve (mean of 5 seeds)",
          "~9,000-10,000 at 400k frames (Figure 2; read from figure, approximate)",
          ReturnAt("mbpo_halfcheetah", 400_000, seeds=5), overlaps(9_000, 10_000, "[9,000, 10,000]"),
          ("mbpo_halfcheetah",), scale="paper"),
    # ---------------------------------------------------------------- paper 000, BOOTS
    Claim("000", "theorem_4_2_pieces",
          "Theorem 4.2: the optimal policy of the Definition 4.1 MDP has 2^(H+1) pieces for H = 4..6 (exact solver; "
          "the paper assumes H > 3, docs/piecewise_linear.md)",
          "2^(H+1); 32 for H = 4 (Theorem 4.2, Figure 2)",
          BenchmarkExact("pwl_def41", "policy_pieces", "theorem_4_2_policy_pieces"), at_least(1.0, "100% match"),
          ("pwl_def41",)),
    Claim("000", "rand_pieces",
          "Share of 1,000 RAND MDPs (horizon 10) whose optimal policy has more than 100 pieces",
          "8.6% (Section 5.1)",
          BenchmarkShare("pwl_stats", "rand", "fraction_policy_pieces_gt_100"), contains(0.086, "8.6%"),
          ("pwl_stats",)),
    Claim("000", "semi_rand_pieces",
          "Share of 1,000 SEMI-RAND MDPs (horizon 10) whose optimal policy has more than 1,000 pieces",
          "68.7% (Section 5.1; the generators' Appendix D.1 is not available, docs/piecewise_linear.md)",
          BenchmarkShare("pwl_stats", "semi-rand", "fraction_policy_pieces_gt_1000"), contains(0.687, "68.7%"),
          ("pwl_stats",)),
    Claim("000", "dqn_below_optimal",
          "A small DQN (2 x 32) stays below the optimal return on SEMI-RAND MDP 0 (30k frames, IQM of 3 seeds)",
          "DQN does not reach the optimum (Figures 3 and 5)",
          FractionOfOptimal("dqn_pwl", 30_000, "policy"), below(0.99, "0.99 of optimal"), ("dqn_pwl",)),
    Claim("000", "boots_dqn_k3_near_optimal",
          "BOOTS-DQN with k = 3 (exhaustive search) is near-optimal on SEMI-RAND MDP 0 (30k frames, IQM of 3 seeds)",
          "near-optimal with k = 3 (Figure 5)",
          FractionOfOptimal("dqn_pwl", 30_000, "boots_k3"), at_least(0.98, "0.98 of optimal"), ("dqn_pwl",)),
    Claim("000", "boots_sac_pendulum",
          "BOOTS (k = 4) over a small SAC (16 x 16, 8k frames) raises the Pendulum-v1 return (mean of 4 evaluations)",
          "BOOTS-SAC above SAC (Figure 4, on Ant and Humanoid; Pendulum is a miniature of it)",
          Gain("sac_pendulum_boots", 8_000), above(0.0, "0"), ("sac_pendulum_boots",)),
    Claim("000", "boots_mbsac_humanoid_50k",
          "BOOTS (k = 4) raises MBSAC's Humanoid-v5 return, at 50k frames (as far as a 2-core CPU goes; 2 seeds)",
          "BOOTS-MBSAC above MBSAC, most of all on Humanoid (Figure 4; curves only, no numbers)",
          Gain("mbsac_humanoid", 50_000, statistic="mean", seeds=2), above(0.0, "0"), ("mbsac_humanoid",)),
    Claim("000", "boots_mbsac_humanoid_400k",
          "BOOTS (k = 4) raises MBSAC's Humanoid-v5 return over 400k frames (mean over evaluations, 5 seeds)",
          "BOOTS-MBSAC above MBSAC, most of all on Humanoid (Figure 4; curves only, no numbers)",
          Gain("mbsac_humanoid", 400_000, statistic="mean", seeds=5), above(0.0, "0"), ("mbsac_humanoid",),
          scale="paper"),
    # ---------------------------------------------------------------- paper 003, OMD
    Claim("003", "omd_tabular_above_mle",
          "Two-state MDP: OMD's return J is above MLE's at each of Figure 2's kappas below 3 (model class too "
          "small; paired by seed)",
          "OMD outperforms MLE when the model's capacity is limited (Figure 2, 10 seeds)",
          TabularAbove(), at_least(1.0, "every such kappa"), ("omd_tabular",)),
    Claim("003", "omd_tabular_largest_kappa",
          "Two-state MDP: OMD at Figure 2's largest kappa (5.05) is within 1% of the optimal return",
          "near the optimum at large kappa (Figure 2; read from figure)",
          TabularFractionOfOptimal(), at_least(0.99, "0.99 of optimal"), ("omd_tabular",)),
    Claim("003", "omd_cartpole_hidden3",
          "CartPole, model 3 x 3, the code's settings: OMD's return above MLE's (mean of the evaluations at 40k-60k "
          "frames, paired by seed; the paper's budget is 200k)",
          "OMD above MLE at small model sizes (Figure 4 left, 10 seeds; read from figure)",
          ScoreGap("omd_cartpole_h3", "mle_cartpole_h3", 40_000, 60_000, seeds=5), above(0.0, "0"),
          ("omd_cartpole_h3", "mle_cartpole_h3")),
    Claim("003", "omd_cartpole_hidden3_qlr1e-3",
          "CartPole, model 3 x 3, both agents' Q learning rate 1e-3 (the paper's sweep's middle value): OMD's return "
          "above MLE's (mean of the evaluations at 40k-60k frames, paired by seed)",
          "OMD above MLE at small model sizes (Figure 4 left, 10 seeds; read from figure)",
          ScoreGap("omd_cartpole_h3_qlr1e-3", "mle_cartpole_h3_qlr1e-3", 40_000, 60_000, seeds=5), above(0.0, "0"),
          ("omd_cartpole_h3_qlr1e-3", "mle_cartpole_h3_qlr1e-3")),
)


@dataclass
class Row:
    claim: Claim
    measured: Measured
    verdict: str
    commit: str


def verdict(claim: Claim, measured: Measured) -> str:
    """``agree`` / ``disagree`` / ``not run (<why>)``; never a verdict without complete runs."""
    if measured.missing is not None or measured.estimate is None:
        return f"not run ({measured.missing or 'nothing measured'})"
    return "agree" if claim.rule.decide(measured.estimate) else "disagree"


def git_commit(root: Path = REPO) -> str | None:
    """``git rev-parse --short HEAD`` of ``root``, ``-dirty`` with uncommitted changes to tracked files outside
    ``benchmarks/results``: what the benchmarks and the runner write there (results, runs' evidence) is output, not
    code, so a runner's own evidence does not mark its later runs dirty."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=root,
                               capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def commit_cell(used: list, head: Callable[[], str | None]) -> str:
    if not used:
        return "—"
    commits = sorted({c for item in used for c in item.commits})
    if commits and all(item.commits for item in used):
        return ", ".join(commits)
    now = head() or "unknown"
    return f"{now} (HEAD now; not recorded by the runs)" if not commits else (
        f"{', '.join(commits)}; others: {now} (HEAD now; not recorded)")


def evaluate(found: Found, claims: Sequence[Claim] = CLAIMS, *, reps: int = stats.REPS, seed: int = stats.SEED,
             head: Callable[[], str | None] = git_commit) -> list[Row]:
    """Measure and judge every claim."""
    rows, cached_head = [], []

    def head_once() -> str | None:
        if not cached_head:
            cached_head.append(head())
        return cached_head[0]

    for claim in claims:
        measured = claim.measure.measure(found, reps, seed)
        rows.append(Row(claim, measured, verdict(claim, measured), commit_cell(measured.used, head_once)))
    return rows


# ============================================================================================ jobs
@dataclass(frozen=True)
class Cost:
    """What the cost estimate of one seed needs: the loop's kind (``mbpo``, ``sac``, ``mbsac``, or
    ``cartpole_loop``: paper 003's CartPole loop of agent ``loop`` as timed whole), its updates per frame after
    ``random_frames``, and BOOTS evaluations of Humanoid size (``boots_evals`` x ``boots_episodes``
    episodes of 1,000 steps)."""

    kind: str
    updates_per_frame: int
    random_frames: int
    boots_evals: int = 0
    boots_episodes: int = 0
    loop: str = ""  # kind "cartpole_loop": the agent whose measured CartPole loop (omd_update.json) it is
    precision: str = ""  # the runs' --trainer.precision when the job sets it ("": the recipes' default here)


@dataclass(frozen=True)
class Job:
    """How the runs of one recipe (the folder the runs go to, ``name``) are made, per scale.

    A recipe job runs ``python -m <module> fit <args> --model.seed N`` for ``seeds[scale]`` seeds, each for
    ``frames[scale]`` env frames; a benchmark job runs ``python -m <module> <variant args>`` once per entry
    of ``variants`` and keeps its JSON output. A scale missing from ``args`` means the job has none."""

    name: str
    module: str
    args: dict[str, tuple[str, ...]]
    seeds: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    variants: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    cost: dict[str, Cost] = field(default_factory=dict)
    checkpoint_every: int = 0  # frames between checkpoints of the runner's runs (0: the recipe's default)
    # per scale, variants whose result is committed in benchmarks/results (file name): made by the variant's
    # command outside the runner, it is what the report reads, so the runner counts the variant as done
    committed: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def is_benchmark(self) -> bool:
        return bool(self.variants)

    def committed_result(self, scale: str, unit: str) -> Path | None:
        """The committed ``benchmarks/results`` file that variant ``unit`` at ``scale`` made, if any."""
        name = self.committed.get(scale, {}).get(unit)
        return None if name is None else RESULTS / name

    def units(self, scale: str) -> list[str]:
        """The runs of this job at ``scale``: ``seed_N`` folders or variant names."""
        if scale not in self.args:
            return []
        return list(self.variants[scale]) if self.is_benchmark else [f"seed_{s}" for s in range(self.seeds[scale])]

    def command(self, scale: str, unit: str, root: Path | None = None) -> list[str]:
        """The argv (after ``python``) of one run; with ``root``, placed in ``root/<name>/<unit>`` as the runner
        places it (checkpoints on, no progress bar)."""
        if self.is_benchmark:
            return ["-m", self.module, *self.args[scale], *self.variants[scale][unit]]
        argv = ["-m", self.module, "fit", *self.args[scale], f"--model.seed={unit.removeprefix('seed_')}"]
        if root is not None:
            argv += [f"--trainer.default_root_dir={root / self.name}", f"--trainer.logger.init_args.version={unit}",
                     "--trainer.enable_progress_bar=false"]
            if self.checkpoint_every:
                argv.append(f"--checkpoint.every_frames={self.checkpoint_every}")
        return argv

    def display(self, scale: str, unit: str, root: Path | None = None) -> str:
        return shlex.join(["python", *self.command(scale, unit, root)])


_IP_EVAL = ("--eval.every_frames=250", "--eval.episodes=10")
_DQN_REDUCED = (  # tests/learning/test_boots_dqn_pwl.py's protocol, with the optimum logged and k = 3 named
    "--model.max_frames=30000", "--eval.every_frames=30000", "--eval.episodes=200", "--trainer.callbacks=[]",
    "--trainer.callbacks+=callbacks.OptimalReturn", "--trainer.callbacks.every_frames=30000",
    "--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=30000",
    "--trainer.callbacks.episodes=200", "--trainer.callbacks.horizon=3", "--trainer.callbacks.name=boots_k3",
)
_BOOTS_PENDULUM = (  # tests/learning/test_boots_pendulum.py's protocol
    "--model.hidden=[16, 16]", "--model.max_frames=8000", "--model.init_random_frames=1000",
    "--eval.every_frames=2000", "--eval.episodes=10", "--trainer.callbacks+=callbacks.BootsEval",
    "--trainer.callbacks.every_frames=2000", "--trainer.callbacks.episodes=10",
    "--trainer.callbacks.own_model_steps=3000",
)
_PWL = "lightning_mbrl.envs.piecewise_linear"
_DEF41 = {f"H={h}": ("solve", "--method", "def41", "--H", str(h)) for h in range(4, 7)}  # the theorem's H > 3
_PIECE_STATS = {m: ("stats", "--method", m, "--n", "1000", "--horizon", "10", "--seed", "0")
                for m in ("rand", "semi-rand")}

JOBS: tuple[Job, ...] = (
    Job("pwl_def41", _PWL, {"reduced": (), "paper": ()}, variants={"reduced": _DEF41, "paper": _DEF41}),
    Job("pwl_stats", _PWL, {"reduced": (), "paper": ()}, variants={"reduced": _PIECE_STATS, "paper": _PIECE_STATS}),
    # docs/generalization.md: All- and No-Evaluation at 2,000 Q updates, Path-to-Goal and Single-Cell at 5,000;
    # Path-to-Goal also with the paper's 30 seeds (the claims read the result with the most seeds)
    Job("generalization_3x3", "benchmarks.generalization_3x3", {"reduced": (), "paper": ()},
        variants={"reduced": {
            "seeds10_2000": ("--seeds", "10", "--updates", "2000", "--only", "all_evaluation", "no_evaluation",
                             "--timing_updates", "0", "--stdout"),
            "seeds10_5000": ("--seeds", "10", "--updates", "5000", "--only", "path_to_goal", "single_cell",
                             "--timing_updates", "0", "--stdout"),
            "seeds30_path_to_goal": ("--seeds", "30", "--updates", "5000", "--only", "path_to_goal",
                                     "--timing_updates", "0", "--stdout")},
                  "paper": {"seeds30": ("--seeds", "30", "--updates", "1000000", "--timing_updates", "0", "--stdout")}},
        committed={"reduced": {"seeds10_2000": "generalization_3x3.json", "seeds10_5000": "generalization_3x3.json",
                               "seeds30_path_to_goal": "generalization_3x3_seeds30.json"}}),
    Job("maac_gradient_error", "benchmarks.maac_gradient_error", {"reduced": (), "paper": ()},
        variants={"reduced": {"seeds5": ("--seeds", "5", "--stdout")}, "paper": {"seeds5": ("--seeds", "5", "--stdout")}},
        committed={s: {"seeds5": "maac_gradient_error.json"} for s in SCALES}),
    Job("generalization_online", "benchmarks.generalization_online", {"reduced": ()},
        variants={"reduced": {
            "panflute6_high": ("--envs", "gridworld/panflute-6", "--agents", "er", "simple", "perfect", "gaussian",
                               "--regime", "high", "--steps", "10000", "--seeds", "5", "--stdout"),
            "procmaze3_low": ("--envs", "gridworld/procmaze-3", "--agents", "er", "simple", "perfect", "--regime",
                              "low", "--steps", "1500", "--learning_starts", "500", "--seeds", "5", "--stdout")}},
        committed={"reduced": {v: "generalization_online.json" for v in ("panflute6_high", "procmaze3_low")}}),
    Job("panflute_frozen_model", "benchmarks.panflute_frozen_model", {"reduced": ()},
        variants={"reduced": {"pipes5": ("--stdout",)}}, committed={"reduced": {"pipes5": "panflute_frozen_model.json"}}),
    Job("panflute_smoothing", "benchmarks.panflute_smoothing", {"reduced": (), "paper": ()},
        variants={"reduced": {"seeds10": ("--seeds", "10", "--stdout")},
                  "paper": {"seeds30": ("--seeds", "30", "--stdout")}},
        committed={"reduced": {"seeds10": "panflute_smoothing.json"}}),
    Job("sac_pendulum_boots", "recipes.sac_pendulum", {"reduced": _BOOTS_PENDULUM, "paper": _BOOTS_PENDULUM},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 8_000, "paper": 8_000}, checkpoint_every=2_000),
    # tests/learning/test_mbpo_invertedpendulum.py's protocol; SAC is the plain SAC there (sac_pendulum's YAML
    # holds SAC's defaults but for the env, budget, warm-up and evaluation, all given here)
    Job("mbpo_invertedpendulum", "recipes.mbpo_invertedpendulum",
        {s: ("--model.max_frames=5000", *_IP_EVAL) for s in SCALES},
        seeds={"reduced": 5, "paper": 5}, frames={"reduced": 5_000, "paper": 5_000}, checkpoint_every=1_000),
    # tests/learning/test_maac_invertedpendulum.py's protocol: MAAC to 3k frames, MPC evaluated at the end
    Job("maac_invertedpendulum", "recipes.maac_invertedpendulum",
        {s: ("--model.max_frames=3000", *_IP_EVAL, "--trainer.callbacks+=callbacks.MPCEval",
             "--trainer.callbacks.every_frames=3000", "--trainer.callbacks.episodes=10") for s in SCALES},
        seeds={"reduced": 3, "paper": 3}, frames={"reduced": 3_000, "paper": 3_000}, checkpoint_every=1_000),
    Job("sac_invertedpendulum", "recipes.sac_pendulum",
        {s: ("--model.env=InvertedPendulum-v5", "--model.max_frames=15000", "--model.init_random_frames=500",
             *_IP_EVAL) for s in SCALES},
        seeds={"reduced": 5, "paper": 5}, frames={"reduced": 15_000, "paper": 15_000}, checkpoint_every=2_500),
    Job("dqn_pwl", "recipes.dqn_pwl", {"reduced": _DQN_REDUCED, "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 30_000, "paper": 50_000}, checkpoint_every=10_000),
    # the recipe is the code's schedule (5k random frames, then 200 x 1,000; MPC every 50k); on the CPU one seed
    # to 15k frames, evaluated every 1,000 (5 episodes)
    Job("maac_halfcheetah", "recipes.maac_halfcheetah",
        {"reduced": ("--model.max_frames=15000", "--eval.every_frames=1000", "--eval.episodes=5"), "paper": ()},
        seeds={"reduced": 1, "paper": 4}, frames={"reduced": 15_000, "paper": 205_000}, checkpoint_every=1_000,
        cost={s: Cost("maac", 8, 5_000) for s in SCALES}),
    Job("mbpo_hopper", "recipes.mbpo_hopper", {"reduced": ("--model.max_frames=15000",), "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 15_000, "paper": 125_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 20, 5_000), "paper": Cost("mbpo", 20, 5_000)}),
    # the same in 32-true (the recipe's default is bf16-mixed on a CPU with bf16 units): issue 20's MuJoCo curve in
    # both precisions, drawn by benchmarks.precision_curve; no claim reads it
    Job("mbpo_hopper_fp32", "recipes.mbpo_hopper",
        {"reduced": ("--model.max_frames=15000", "--trainer.precision=32-true")},
        seeds={"reduced": 1}, frames={"reduced": 15_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 20, 5_000, precision="32-true")}),
    Job("mbpo_halfcheetah", "recipes.mbpo_halfcheetah", {"reduced": ("--model.max_frames=10000",), "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 10_000, "paper": 400_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 40, 5_000), "paper": Cost("mbpo", 40, 5_000)}),
    # BOOTS at 50k frames only on the CPU (5 episodes, the recipe's); the paper's schedule on a GPU
    Job("mbsac_humanoid", "recipes.mbsac_humanoid",
        {"reduced": ("--model.max_frames=50000",),
         "paper": ("--trainer.callbacks.every_frames=10000", "--trainer.callbacks.episodes=10")},
        seeds={"reduced": 2, "paper": 5}, frames={"reduced": 50_000, "paper": 400_000}, checkpoint_every=10_000,
        cost={"reduced": Cost("mbsac", 1, 10_000, boots_evals=1, boots_episodes=5),
              "paper": Cost("mbsac", 1, 10_000, boots_evals=40, boots_episodes=10)}),
    # tests/learning/test_omd_cartpole.py's protocol (the test builds its runs from these jobs), at the code's
    # inner learning rate 3e-4 and at 1e-3 (the paper sweeps 3e-4, 1e-3, 3e-3); paper scale: the paper's 200k
    # frames and 10 seeds (the claims read the same 40k-60k window)
    *(Job(f"{agent}_cartpole_h3{suffix}", f"recipes.{agent}_cartpole",
          {s: ("--model.model_hidden=3", f"--model.q_lr={q_lr}", f"--model.max_frames={frames}",
               "--eval.every_frames=5000", "--eval.episodes=10") for s, frames in (("reduced", 60_000), ("paper", 200_000))},
          seeds={"reduced": 5, "paper": 10}, frames={"reduced": 60_000, "paper": 200_000}, checkpoint_every=20_000,
          cost={s: Cost("cartpole_loop", 1, 1_000, loop=agent) for s in SCALES})
      for q_lr, suffix in (("3e-4", ""), ("1e-3", "_qlr1e-3")) for agent in ("omd", "mle")),
    Job("omd_tabular", "benchmarks.omd_tabular", {"reduced": (), "paper": ()},
        variants={"reduced": {"seeds10": ("--stdout",)}, "paper": {"seeds10": ("--stdout",)}},
        committed={s: {"seeds10": "omd_tabular.json"} for s in SCALES}),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}

# Assumptions of the GPU estimates (no GPU timing is in benchmarks/results yet): one SAC update of 2 x 256
# networks at batch 256 is launch-bound on a GPU at about 2 ms in eager PyTorch; model fits, rollouts and
# planners (batched GEMMs) run about 10x faster than on the 2-core CPU.
GPU_UPDATE_MS = 2.0
GPU_SPEEDUP = 10.0
# MBSAC has no loop benchmark: README/docs/mbsac.md put 400k Humanoid frames at ~4 hours of training on the
# 2-core CPU, ~36 ms a frame, of which one SAC update.
MBSAC_CPU_MS_PER_FRAME = 36.0


def _load(name: str) -> dict:
    try:
        return json.loads((RESULTS / name).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def estimate_cost(cost: Cost, frames: int) -> tuple[float, float, str] | None:
    """``(cpu_hours, gpu_hours, basis)`` of one seed, from ``benchmarks/results`` timings (``None`` without them).
    CPU: the 2-core development machine; GPU: the CPU parts scaled by the assumptions above. Estimates only."""
    bf16 = (cost.precision or default_precision()) == "bf16-mixed"  # the runs' precision on this machine
    mbpo_file = "mbpo_loop_bf16.json" if bf16 and _load("mbpo_loop_bf16.json") else "mbpo_loop.json"
    mbpo = _load(mbpo_file)
    sac, planners = _load("sac_update.json"), _load("planners.json")
    sac_key = "library_bf16-mixed_ms" if bf16 else "library_32-true_ms"
    policy_frames = max(frames - cost.random_frames, 0)
    updates = cost.updates_per_frame * policy_frames
    if cost.kind == "mbpo":
        if not mbpo:
            return None
        per_1000 = mbpo["in_loop_s_per_1000_frames"]
        window = mbpo["window"]
        update_s = per_1000["sac_updates"] / (window["sac_updates"] * 1000 / window["frames"])  # per 1,000 frames
        other_s = (mbpo["whole_s_per_1000_frames"] - per_1000["sac_updates"]) * policy_frames / 1000
        cpu, gpu = updates * update_s + other_s, updates * GPU_UPDATE_MS / 1000 + other_s / GPU_SPEEDUP
        basis = (f"{mbpo_file}: {update_s * 1000:.1f} ms/update, "
                 f"{other_s / policy_frames * 1000:.0f} s/1k frames else")
    elif cost.kind == "mbsac":
        if not sac:
            return None
        update_s = next(u.get(sac_key, u.get("library_ms")) for u in sac["updates"] if u["hidden"] == 256) / 1000
        other_s = (MBSAC_CPU_MS_PER_FRAME / 1000 - update_s) * policy_frames
        cpu, gpu = updates * update_s + other_s, updates * GPU_UPDATE_MS / 1000 + other_s / GPU_SPEEDUP
        basis = f"sac_update.json {update_s * 1000:.1f} ms/update; {MBSAC_CPU_MS_PER_FRAME:.0f} ms/frame (README)"
    elif cost.kind == "sac":
        if not sac:
            return None
        update_s = next(u.get(sac_key, u.get("library_ms")) for u in sac["updates"] if u["hidden"] == 256) / 1000
        cpu, gpu = updates * update_s, updates * GPU_UPDATE_MS / 1000
        basis = f"sac_update.json: {update_s * 1000:.1f} ms/update"
    elif cost.kind == "maac":
        update = _load("maac_update.json").get("update")
        if not update:
            return None
        update_s = update["maac_ms"] / 1000
        cpu = updates * update_s
        gpu = updates * GPU_UPDATE_MS * update["maac_over_sac"] / 1000  # launch-bound: ~ops, as SAC's ratio
        basis = (f"maac_update.json: {update['maac_ms']:.0f} ms/update, updates only (model fits and rollouts not "
                 f"counted); GPU update assumed {update['maac_over_sac']:.1f}x SAC's")
    elif cost.kind == "cartpole_loop":
        loop = _load("omd_update.json").get("cartpole_loop", {}).get(cost.loop)
        if not loop:
            return None
        cpu = loop["ms_per_frame"] * policy_frames / 1000 + loop["random_frames_s"]
        gpu = cpu  # networks of 3-32 units: launch-bound, no faster on a GPU (an assumption, not measured)
        basis = f"omd_update.json: the {cost.loop} CartPole loop {loop['ms_per_frame']:.1f} ms/frame; GPU assumed no faster"
    else:
        raise ValueError(f"unknown cost kind {cost.kind!r}")
    if cost.boots_evals:
        case = planners.get("cases", {}).get("boots/humanoid/E10")
        if case is None:
            return None
        boots_s = cost.boots_evals * 1000 * case["ms_per_action"] / 1000 * cost.boots_episodes / 10
        cpu, gpu = cpu + boots_s, gpu + boots_s / GPU_SPEEDUP
        basis += f"; planners.json BOOTS {case['ms_per_action'] / 1000:.1f} s/step for 10 Humanoid episodes"
    return cpu / 3600, gpu / 3600, basis


def paper_scale_jobs() -> list[Job]:
    """The jobs whose paper-scale runs are longer than (or absent from) the reduced scale."""
    return [job for job in JOBS if not job.is_benchmark and "paper" in job.args and (
        "reduced" not in job.args or job.frames["paper"] > job.frames["reduced"]
        or job.args["paper"] != job.args["reduced"])]


# ============================================================================================ rendering
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _runs_of(found: Found, claims: Sequence[Claim]) -> dict[str, list[Run]]:
    recipes = dict.fromkeys(r for c in claims for r in c.measure.recipes)
    return {r: found.runs[r] for r in recipes if r in found.runs}


def curves_figure(runs: dict[str, list[Run]], path: Path, title: str, *, reps: int, seed: int) -> Path:
    """Learning curves of each recipe (a panel each), one line per evaluator, mean over seeds with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), dpi=110, squeeze=False)
    for ax, (recipe, seeds) in zip(axes.flat, runs.items()):
        lines = plot.summarize_seeds({recipe: [r.curves for r in seeds]}, reps=reps, seed=seed)
        plot.draw(ax, lines, label_recipe=False)
        ax.set_title(f"{recipe} ({len(seeds)} seed{'s' * (len(seeds) != 1)})", fontsize=9)
        ax.set_ylabel("eval return")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def profiles_figure(rows: list[Row], path: Path, title: str, *, reps: int, seed: int) -> Path:
    """Performance profiles (rliable) of the per-seed scores of each claim that compares groups (BOOTS and the
    policy, MBPO and SAC), a panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(rows), 3)
    fig, axes = plt.subplots(math.ceil(len(rows) / cols), cols, figsize=(5 * cols, 3.6 * math.ceil(len(rows) / cols)),
                             dpi=110, squeeze=False)
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows):
        m = row.measured
        values = np.concatenate(list(m.groups.values()))
        lo, hi = float(values.min()), float(values.max())
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1.0)
        taus = np.linspace(lo - pad, hi + pad, 41)
        profiles = stats.performance_profile(m.groups, taus, higher_is_better=m.higher_is_better, reps=reps,
                                             seed=seed)
        for name, p in profiles.items():
            (line,) = ax.plot(p.tau, p.fraction, label=f"{name} (n={p.n})")
            ax.fill_between(p.tau, p.low, p.high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(row.claim.name, fontsize=9)
        ax.set_xlabel(f"score tau ({m.unit or 'return'})")
        ax.set_ylabel("share of seeds " + ("> tau" if m.higher_is_better else "<= tau"))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def render(found: Found, rows: list[Row], out: Path, sources: Sequence[Path], *, reps: int, seed: int) -> Path:
    """Write ``<out>.md`` and its figures in ``<out>/``; returns the markdown's path."""
    md_path, fig_dir = (out, out.with_suffix("")) if out.suffix == ".md" else (out.with_suffix(".md"), out)
    fig_dir.mkdir(parents=True, exist_ok=True)
    n_runs, n_results = found.count()
    command = shlex.join(["python", "-m", "lightning_mbrl.report", *map(str, sources), "--out", str(out)])
    lines = [
        "# Reproduction report",
        "",
        f"Made by `{command}` from {n_runs} runs and {n_results} "
        "benchmark results; `python -m benchmarks.reproduce` re-creates the runs and this file.",
        "",
        "Ours: the statistic named in the claim (IQM, the interquartile mean, or the mean over seeds) with a 95% "
        f"stratified-bootstrap interval (rliable; {reps:,} resamples, seed {seed}). Verdicts: `agree` when the "
        "interval satisfies the rule in *agree when*, `disagree` when it does not, `not run` when runs are "
        "missing, short (not evaluated at the frames the claim reads: still running, or killed) or fewer than "
        "the seeds the claim needs; then ours, if shown, is at the frames every seed reached. Paper values "
        "read from figures are approximate.",
        "",
    ]
    for paper, title in PAPERS.items():
        paper_rows = [r for r in rows if r.claim.paper == paper]
        if not paper_rows:
            continue
        lines += [f"## Paper {paper}: {title}", "",
                  "| claim | paper | ours (95% interval) | seeds | agree when | verdict | command | commit |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in paper_rows:
            lines.append("| " + " | ".join(_cell(c) for c in (
                f"{r.claim.text} (`{r.claim.name}`)", r.claim.paper_value, r.measured.text, r.measured.seeds,
                r.claim.rule.text, r.verdict, f"`{r.claim.command()}`", r.commit)) + " |")
        lines.append("")
        runs = _runs_of(found, [r.claim for r in paper_rows])
        if runs:
            png = curves_figure(runs, fig_dir / f"paper_{paper}_curves.png", f"Paper {paper}: learning curves",
                                reps=reps, seed=seed)
            lines += [f"![Paper {paper}: learning curves]({fig_dir.name}/{png.name})", ""]
        grouped = [r for r in paper_rows if len(r.measured.groups) > 1 and r.measured.missing is None]
        if grouped:
            png = profiles_figure(grouped, fig_dir / f"paper_{paper}_profiles.png",
                                  f"Paper {paper}: performance profiles over seeds", reps=reps, seed=seed)
            lines += [f"![Paper {paper}: performance profiles]({fig_dir.name}/{png.name})", ""]
        if not runs and not grouped:
            lines += ["No runs of this paper's recipes yet: no figures.", ""]
    lines += _paper_scale_section()
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines))
    return md_path


def _paper_scale_section() -> list[str]:
    lines = ["## Not run here at paper scale", "",
             "The runs whose paper-scale budgets exceed the reduced ones (`python -m benchmarks.reproduce` runs the "
             "reduced budgets on a 2-core CPU). Each command is one seed "
             "(`--model.seed N`); `python -m benchmarks.reproduce --scale paper --only JOB` runs every seed, "
             "resumably. Costs are **estimates**: CPU from the timings in `benchmarks/results/*.json` (2 cores); "
             f"GPU assumes a SAC update takes {GPU_UPDATE_MS:g} ms and model fits, rollouts and planners run "
             f"{GPU_SPEEDUP:g}x faster than on the CPU (no GPU timing is recorded yet).", "",
             "| job | command (seed 0) | seeds | frames | CPU, all seeds (estimate) | GPU, all seeds (estimate) "
             "| basis |", "|---|---|---|---|---|---|---|"]
    for job in paper_scale_jobs():
        cost = job.cost.get("paper")
        est = estimate_cost(cost, job.frames["paper"]) if cost else None
        seeds = job.seeds["paper"]
        cpu, gpu, basis = ((f"{est[0] * seeds:,.0f} h", f"{est[1] * seeds:,.1f} h", est[2]) if est
                           else ("not estimated", "not estimated", "no timing of this loop in benchmarks/results"))
        lines.append("| " + " | ".join(_cell(c) for c in (
            job.name, f"`{job.display('paper', 'seed_0')}`", str(seeds), f"{job.frames['paper']:,}", cpu, gpu,
            basis)) + " |")
    return lines + [""]


# ============================================================================================ CLI
def write_report(paths: Sequence[Path], out: Path, *, claims: Sequence[Claim] = CLAIMS, reps: int = stats.REPS,
                 seed: int = stats.SEED, head: Callable[[], str | None] = git_commit) -> tuple[Path, list[Row]]:
    found = discover(paths)
    rows = evaluate(found, claims, reps=reps, seed=seed, head=head)
    return render(found, rows, out, paths, reps=reps, seed=seed), rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbrl.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help="run folders or folders above them (e.g. benchmarks/results/reproduce), benchmark JSON files")
    parser.add_argument("--out", type=Path, default=Path("docs/reproduction"),
                        help="writes <out>.md and the figures in <out>/ (default docs/reproduction)")
    parser.add_argument("--reps", type=int, default=stats.REPS, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=stats.SEED, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    try:
        md, rows = write_report(args.runs, args.out, reps=args.reps, seed=args.seed)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = defaultdict(int)
    for row in rows:
        counts[row.verdict.split(" (")[0]] += 1
    print(f"wrote {md}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
