"""Aggregate scores of runs with 95% intervals, by rliable (Agarwal et al. 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice"). Pure NumPy, no Lightning.

A score array is ``(runs, tasks)`` (a 1-D array is one task: ``(runs,)`` becomes ``(runs, 1)``); the
runs of one task are its seeds. The statistics are rliable's:

- ``iqm``: interquartile mean, the 25% trimmed mean over all runs and tasks together
  (``rliable.metrics.aggregate_iqm``, i.e. ``scipy.stats.trim_mean(scores, 0.25, axis=None)``);
- ``mean``: the mean over tasks of each task's mean over runs (``aggregate_mean``);
- ``median``: the median over tasks of each task's mean over runs (``aggregate_median``); with one
  task this is the mean over runs, not the median run.

Intervals are rliable's stratified percentile bootstrap (``rliable.library.get_interval_estimates``):
runs are resampled with replacement within each task, never across tasks, ``reps`` times, and the
interval is the central ``confidence`` share of the statistic over the resamples. With one run there
is nothing to resample and the interval is the point itself. Performance profiles (the share of runs
whose score exceeds each threshold tau, with the same intervals) are
``rliable.library.create_performance_profile``.

Every function is deterministic for a given ``seed``: rliable 1.2's ``StratifiedBootstrap`` draws its
resampling indices from NumPy's global generator (``np.random.choice`` in ``update_indices``) and
ignores the ``random_state`` it is given, so :func:`seeded` seeds the global generator for the call
and restores its state afterwards (callers' randomness is untouched).

``reps`` defaults to 2,000: the Monte-Carlo error of a percentile endpoint is then a small fraction of
the interval's width for the handful of seeds RL runs have (rliable's own default, 50,000, is for
publication figures; pass it where the extra seconds do not matter).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from rliable import library as rly
from rliable import metrics

STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "iqm": metrics.aggregate_iqm,
    "mean": metrics.aggregate_mean,
    "median": metrics.aggregate_median,
}
REPS = 2_000
SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A statistic of ``n`` runs with its ``confidence`` interval ``[low, high]``."""

    statistic: str
    value: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def format(self, digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
        """``"4.00 [3.00, 5.00]"`` (values times ``scale``, ``unit`` after each)."""
        f = (lambda v: f"{v * scale:,.{digits}f}{unit}")
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}]"


@dataclass(frozen=True)
class Curve:
    """A statistic over runs at each of ``len(value)`` points (e.g. evaluation frames), with pointwise intervals."""

    statistic: str
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int


@dataclass(frozen=True)
class Profile:
    """A performance profile: at each ``tau``, the share of runs scoring above it (``higher_is_better``) or at
    most it (lower is better, e.g. frames to a threshold), with pointwise intervals."""

    tau: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int
    higher_is_better: bool


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (which rliable's bootstrap draws from) and restore its state on exit."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def score_matrix(scores: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    """``scores`` as a float ``(runs, tasks, ...)`` array; a 1-D array is one task. Empty, non-finite or
    0-d input is a ``ValueError`` naming ``name``."""
    array = np.asarray(scores, dtype=float)
    if array.ndim == 0:
        raise ValueError(f"{name}: expected an array of runs, got the scalar {array.item()!r}")
    if array.ndim == 1:
        array = array[:, None]
    if array.size == 0 or array.shape[0] == 0:
        raise ValueError(f"{name}: no runs (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: non-finite scores ({np.count_nonzero(~np.isfinite(array))} of {array.size})")
    return array


def _aggregate(statistic: str) -> Callable[[np.ndarray], float]:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    return STATISTICS[statistic]


def estimate(scores: Sequence[float] | np.ndarray, statistic: str = "iqm", *, reps: int = REPS, seed: int = SEED,
             confidence: float = CONFIDENCE) -> Estimate:
    """``statistic`` of ``scores`` ``(runs, tasks)`` with its stratified-bootstrap interval."""
    aggregate = _aggregate(statistic)
    array = score_matrix(scores)
    value = float(aggregate(array))
    if array.shape[0] == 1:
        return Estimate(statistic, value, value, value, 1, confidence)
    with seeded(seed):
        _, intervals = rly.get_interval_estimates({"x": array}, lambda x: np.array([aggregate(x)]), reps=reps,
                                                  confidence_interval_size=confidence)
    low, high = intervals["x"][:, 0]
    return Estimate(statistic, value, float(low), float(high), array.shape[0], confidence)


def ratio_estimate(numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray,
                   statistic: str = "iqm", *, reps: int = REPS, seed: int = SEED,
                   confidence: float = CONFIDENCE) -> Estimate:
    """``statistic(numerator) / statistic(denominator)`` of two independent sets of runs (e.g. SAC's frames to a
    threshold over MBPO's), each resampled on its own within tasks (rliable's ``StratifiedIndependentBootstrap``,
    what ``get_interval_estimates`` does with a list of arrays). ``n`` is the smaller number of runs."""
    aggregate = _aggregate(statistic)
    num, den = score_matrix(numerator, "numerator"), score_matrix(denominator, "denominator")
    if num.shape[1:] != den.shape[1:]:
        raise ValueError(f"numerator and denominator need the same tasks, got shapes {num.shape} and {den.shape}")
    if aggregate(den) == 0:
        raise ValueError(f"denominator: its {statistic} is 0, the ratio is undefined")

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.array([aggregate(a) / aggregate(b)])

    value = float(ratio(num, den)[0])
    if num.shape[0] == 1 and den.shape[0] == 1:
        return Estimate(statistic, value, value, value, 1, confidence)
    with np.errstate(divide="ignore"), seeded(seed):  # a resample of the denominator may aggregate to 0: inf
        _, intervals = rly.get_interval_estimates({"x": [num, den]}, ratio, reps=reps,
                                                  confidence_interval_size=confidence)
    low, high = intervals["x"][:, 0]
    return Estimate(statistic, value, float(low), float(high), min(num.shape[0], den.shape[0]), confidence)


def _per_point(statistic: str) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic of ``(runs, tasks, points)`` at every point at once: the same numbers as the rliable
    function on each ``[:, :, t]`` slice (tested), one vectorised call per bootstrap resample instead of
    one per point."""
    _aggregate(statistic)
    if statistic == "iqm":
        return lambda x: scipy.stats.trim_mean(x.reshape(-1, x.shape[-1]), 0.25, axis=0)
    if statistic == "mean":
        return lambda x: x.mean(axis=0).mean(axis=0)
    return lambda x: np.median(x.mean(axis=0), axis=0)


def curve(scores: Sequence[Sequence[float]] | np.ndarray, statistic: str = "mean", *, reps: int = REPS,
          seed: int = SEED, confidence: float = CONFIDENCE) -> Curve:
    """Pointwise ``statistic`` over runs of ``scores`` ``(runs, points)`` (one task) or ``(runs, tasks, points)``,
    e.g. the evaluation returns of each seed at common frames, with pointwise stratified-bootstrap intervals
    (each point's runs are resampled independently)."""
    array = np.asarray(scores, dtype=float)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise ValueError(f"scores: expected (runs, points) or (runs, tasks, points), got shape {array.shape}")
    array = score_matrix(array)
    per_point = _per_point(statistic)
    value = per_point(array)
    if array.shape[0] == 1:
        return Curve(statistic, value, value.copy(), value.copy(), 1)
    with seeded(seed):
        _, intervals = rly.get_interval_estimates({"x": array}, per_point, reps=reps,
                                                  confidence_interval_size=confidence)
    return Curve(statistic, value, intervals["x"][0], intervals["x"][1], array.shape[0])


def performance_profile(score_dict: Mapping[str, Sequence[float] | np.ndarray], taus: Sequence[float] | np.ndarray,
                        *, higher_is_better: bool = True, reps: int = REPS, seed: int = SEED,
                        confidence: float = CONFIDENCE) -> dict[str, Profile]:
    """Performance profiles of each entry of ``score_dict`` (``(runs, tasks)`` scores) at thresholds ``taus``:
    rliable's score distribution, the share of all runs and tasks scoring above tau, or, with
    ``higher_is_better=False``, at most tau (the share of seeds that reached a return within tau frames)."""
    taus = np.asarray(taus, dtype=float)
    arrays = {name: score_matrix(scores, name) for name, scores in score_dict.items()}
    custom = None if higher_is_better else (lambda x, t: np.array([np.mean(x <= tau) for tau in t]))
    with seeded(seed):
        fractions, intervals = rly.create_performance_profile(arrays, taus, custom_profile_func=custom, reps=reps,
                                                              confidence_interval_size=confidence)
    return {name: Profile(taus, np.asarray(fractions[name], dtype=float), intervals[name][0], intervals[name][1],
                          arrays[name].shape[0], higher_is_better) for name in arrays}


def proportion_scores(fraction: float, n: int) -> np.ndarray:
    """The 0/1 scores of ``n`` independent trials of which ``fraction`` succeeded (``round(fraction * n)`` ones),
    so that a share reported by a benchmark (e.g. 95 of 1,000 random MDPs) gets its interval from the same
    bootstrap as everything else: ``estimate(proportion_scores(f, n), "mean")``."""
    if not 0 <= fraction <= 1 or n < 1:
        raise ValueError(f"need 0 <= fraction <= 1 and n >= 1, got fraction {fraction!r} and n {n!r}")
    ones = int(round(fraction * n))
    return np.concatenate([np.ones(ones), np.zeros(n - ones)])
