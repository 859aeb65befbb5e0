"""T0: ``lightning_mbrl.stats``, the rliable statistics of the report and the plots, against hand computations.

Known values used below:
- IQM is the 25% trimmed mean over all runs and tasks: of 1..8 it drops 1, 2, 7, 8 and is 4.5.
- The percentile-bootstrap interval of the mean of 3 runs is [lowest, highest]: each run alone is all three
  draws of 1/27 = 3.7% of the resamples, more than the 2.5% tail (same for 2 runs: 1/4).
- A stratified bootstrap resamples runs within each task: runs that agree within every task give a
  zero-width interval however different the tasks are.
"""

import numpy as np
import pytest
import scipy.stats
from rliable import library as rly
from rliable import metrics

from lightning_mbrl import stats


def test_iqm_is_the_25_percent_trimmed_mean_over_runs_and_tasks():
    x = np.arange(1.0, 9.0)
    assert stats.estimate(x, "iqm").value == 4.5 == scipy.stats.trim_mean(x, 0.25)
    # (runs, tasks): flattened 1, 2, 3, 4, 10, 20, 30, 40 -> (3 + 4 + 10 + 20) / 4
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    assert stats.estimate(scores, "iqm").value == 9.25
    assert stats.estimate(scores, "mean").value == pytest.approx((2.5 + 25.0) / 2)
    # rliable's median is over tasks of each task's mean over runs: with one task, the mean
    assert stats.estimate([1.0, 2.0, 9.0], "median").value == 4.0


def test_the_interval_matches_rliables_documented_call_and_is_seeded():
    x = np.random.default_rng(3).normal(size=(10, 1))
    est = stats.estimate(x, "iqm", reps=500, seed=7)
    # get_interval_estimates's docstring: func = lambda x: np.array([metrics.aggregate_iqm(x)])
    np.random.seed(7)
    points, intervals = rly.get_interval_estimates({"x": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=500)
    assert est.value == points["x"][0] and (est.low, est.high) == tuple(intervals["x"][:, 0])
    assert est.low < est.value < est.high and est.n == 10
    assert stats.estimate(x, "iqm", reps=500, seed=7) == est
    assert stats.estimate(x, "iqm", reps=500, seed=8) != est  # the seed is what makes it reproducible
    # pinned: 1..8, 2,000 resamples, seed 0 (rliable 1.2 draws from NumPy's legacy global generator)
    assert stats.estimate(np.arange(1.0, 9.0), "iqm") == stats.Estimate("iqm", 4.5, 2.5, 6.5, 8)


def test_the_callers_global_random_state_is_left_alone():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    stats.estimate(np.arange(5.0), "mean", reps=50, seed=0)
    assert np.array_equal(np.random.rand(3), expected)


def test_known_intervals_of_few_runs_and_the_stratification():
    assert stats.estimate([3.0, 5.0, 4.0], "mean") == stats.Estimate("mean", 4.0, 3.0, 5.0, 3)
    assert stats.estimate([3.0, 5.0], "mean") == stats.Estimate("mean", 4.0, 3.0, 5.0, 2)
    assert stats.estimate([7.0], "iqm") == stats.Estimate("iqm", 7.0, 7.0, 7.0, 1)
    # 3 runs x 2 tasks: within a task the runs agree; resampling across tasks would mix 0s and 10s
    assert stats.estimate([[0.0, 10.0]] * 3, "iqm") == stats.Estimate("iqm", 5.0, 5.0, 5.0, 3)
    # 4 runs: a run alone is 1/256 of the resamples, so the interval lies strictly inside the range
    est = stats.estimate([0.0, 10.0, 20.0, 30.0], "mean")
    assert est.value == 15.0 and 0.0 < est.low < 10.0 and 20.0 < est.high < 30.0
    assert est.format(1) == f"15.0 [{est.low:,.1f}, {est.high:,.1f}]"


def test_a_share_of_independent_trials_gets_about_the_binomial_interval():
    outcomes = stats.proportion_scores(0.095, 1000)
    assert outcomes.sum() == 95 and len(outcomes) == 1000
    est = stats.estimate(outcomes, "mean")
    half = 1.96 * np.sqrt(0.095 * 0.905 / 1000)  # 0.0182, the normal approximation
    assert est.value == pytest.approx(0.095)
    assert est.low == pytest.approx(0.095 - half, abs=0.004) and est.high == pytest.approx(0.095 + half, abs=0.004)
    assert est.contains(0.086) and not est.contains(0.12)


def test_ratio_of_two_independent_sets_of_runs():
    sac, mbpo = [9000.0, 15000.0, 12000.0], [2000.0, 2250.0, 2000.0]
    est = stats.ratio_estimate(sac, mbpo, "iqm")
    assert est.value == pytest.approx(12000.0 / (6250.0 / 3))
    assert est.low < est.value < est.high and est.n == 3
    # the extremes: the fewest SAC frames over the most MBPO frames, and the other way round
    assert 9000.0 / 2250.0 <= est.low and est.high <= 15000.0 / 2000.0
    assert stats.ratio_estimate([6.0, 6.0], [2.0, 2.0], "mean") == stats.Estimate("mean", 3.0, 3.0, 3.0, 2)
    with pytest.raises(ValueError, match="denominator: its mean is 0"):
        stats.ratio_estimate([1.0], [0.0, 0.0], "mean")


@pytest.mark.parametrize("statistic", ["iqm", "mean", "median"])
def test_curve_points_are_rliables_statistic_at_each_point(statistic):
    scores = np.random.default_rng(0).normal(size=(5, 2, 7))  # runs, tasks, points
    curve = stats.curve(scores, statistic, reps=200)
    by_point = [stats.STATISTICS[statistic](scores[:, :, t]) for t in range(7)]
    np.testing.assert_allclose(curve.value, by_point)
    assert np.all(curve.low <= curve.value) and np.all(curve.value <= curve.high) and curve.n == 5


def test_curve_intervals_are_seeded():
    scores = np.random.default_rng(1).normal(size=(10, 4))
    first, again, other = (stats.curve(scores, "mean", reps=300, seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(first.low, again.low)
    np.testing.assert_array_equal(first.high, again.high)
    assert not np.array_equal(first.low, other.low)


def test_curve_of_three_seeds_spans_them_at_every_point():
    curve = stats.curve([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [5.0, 9.0, 7.0]], "mean")
    np.testing.assert_allclose(curve.value, [3.0, 5.0, 5.0])
    np.testing.assert_array_equal(curve.low, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(curve.high, [5.0, 9.0, 7.0])


def test_performance_profiles_count_runs_above_or_within_tau():
    taus = [0.0, 2.5, 10.0]
    profiles = stats.performance_profile({"a": [1.0, 2.0, 3.0, 4.0], "b": [3.0, 3.0, 4.0, 5.0]}, taus, reps=300)
    np.testing.assert_allclose(profiles["a"].fraction, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(profiles["b"].fraction, [1.0, 1.0, 0.0])
    assert np.all(profiles["a"].low <= profiles["a"].fraction) and np.all(profiles["a"].fraction <= profiles["a"].high)
    assert profiles["b"].low[1] == profiles["b"].high[1] == 1.0  # every resample of b is above 2.5
    frames = stats.performance_profile({"mbpo": [2000.0, 2250.0, 3000.0]}, [1000.0, 2500.0, 5000.0],
                                       higher_is_better=False, reps=300)["mbpo"]
    np.testing.assert_allclose(frames.fraction, [0.0, 2 / 3, 1.0])  # share of seeds at 950 within tau frames
    assert stats.performance_profile({"a": [1.0, 2.0]}, taus, reps=300, seed=4)["a"].low.tolist() == \
        stats.performance_profile({"a": [1.0, 2.0]}, taus, reps=300, seed=4)["a"].low.tolist()


@pytest.mark.parametrize("bad, message", [
    ([], "scores: no runs"),
    ([1.0, float("nan")], "scores: non-finite scores"),
    (3.0, "scores: expected an array of runs"),
])
def test_bad_scores_are_one_line_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        stats.estimate(bad)


def test_an_unknown_statistic_names_the_choices():
    with pytest.raises(ValueError, match="statistic must be one of iqm, mean, median, got 'max'"):
        stats.estimate([1.0, 2.0], "max")
