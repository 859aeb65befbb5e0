"""What a claim reads from the runs and results (measures), and the rules that judge the measured interval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lightning_mbrl import stats
from lightning_mbrl.stats import Estimate

from lightning_mbrl.report.runs import Found, Result, Run


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
    is shown at the largest frame count every run has evaluated. Subclasses define ``value`` and
    ``last_evaluated``, and may define ``groups`` (for the performance profiles)."""

    unit = ""

    def reached(self, run: Run, frames: int) -> bool:
        last = self.last_evaluated(run)
        return last is not None and last >= frames

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
            return Measured(None, "—", "0",
                            missing=f"no {self.benchmark} runs frozen after {self.early} and {self.late}")
        early, late = runs[self.early], runs[self.late]
        if None in early or None in late:
            never = sum(x is None for x in early) + sum(x is None for x in late)
            return Measured(None, "—", str(len(early)), used=[result],
                            missing=f"{never} seed runs never near-optimal (the gap needs every seed)")
        est = stats.estimate(np.subtract(late, early, dtype=float), "mean", reps=reps, seed=seed)
        text = (f"{est.format(0)} steps (after {self.early}: {np.mean(early):,.0f}; "
                f"after {self.late}: {np.mean(late):,.0f})")
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
            both = self.agent in runs and self.baseline in runs
            if both and runs[self.agent]["seeds"] == runs[self.baseline]["seeds"]:
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
