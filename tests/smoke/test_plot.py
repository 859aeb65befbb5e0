"""T1 smoke for ``python -m lightning_mbrl.plot``: numbers against a hand computation, a valid PNG from
a real tiny run, and a clear error for a folder that is not a run.

The intervals are rliable's percentile bootstrap of the mean over seeds. For 3 seeds they are known
exactly: each seed alone is drawn in 1/27 = 3.7% of the resamples (more than the 2.5% tail), so the 95%
interval of the mean is [lowest seed, highest seed]; for 4 seeds a seed alone is 1/256 of the
resamples, so the interval lies strictly inside the range."""

import pathlib

import pytest

from lightning_mbrl import plot
from tests.smoke.test_recipes import fit

HEADER = "epoch,eval/return,eval/boots/return,eval/optimal_return,step\n"


def fake_run(root: pathlib.Path, version: int, rows: list[str]) -> pathlib.Path:
    run = root / "runs" / "dqn_pwl" / f"version_{version}"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(HEADER + "".join(rows))
    return run


def test_means_intervals_and_table_match_a_hand_computation(in_tmp):
    runs = [
        fake_run(in_tmp, 0, ["0,1.0,,,100\n", "0,,2.0,,100\n", "0,3.0,4.0,6.5,200\n"]),
        fake_run(in_tmp, 1, ["0,2.0,,,100\n", "0,5.0,6.0,6.5,200\n", "0,9.0,,,300\n"]),
        fake_run(in_tmp, 2, ["0,3.0,,,100\n", "0,4.0,5.0,6.5,200\n"]),
    ]
    lines = plot.summarize(runs)
    policy = lines[("dqn_pwl", "policy")]
    assert [p.frames for p in policy] == [100, 200]  # 300 is not evaluated by every seed
    # frames 100: values 1, 2, 3 -> mean 2, interval [1, 3]; frames 200: 3, 5, 4 -> mean 4, interval [3, 5]
    assert policy == [(100, pytest.approx(2.0), 1.0, 3.0, 3), (200, pytest.approx(4.0), 3.0, 5.0, 3)]
    assert lines[("dqn_pwl", "boots")] == [(200, pytest.approx(5.0), 4.0, 6.0, 3)]  # 2 and 6 at 100: not common
    assert lines[("dqn_pwl", "optimal")] == [(200, 6.5, 6.5, 6.5, 3)]
    assert plot.summarize(runs) == lines  # seeded: the same runs give the same intervals
    assert plot.main([*map(str, runs), "--out", str(in_tmp / "out")]) == 0
    table = (in_tmp / "out" / "final_returns.md").read_text()
    assert "| recipe | evaluator | frames | mean return | 95% interval | seeds |" in table
    assert "| dqn_pwl | policy | 200 | 4.00 | [3.00, 5.00] | 3 |" in table


def test_four_seeds_give_the_mean_with_an_interval_inside_their_range_and_one_seed_a_point(in_tmp):
    runs = [fake_run(in_tmp, i, [f"0,{v},,,100\n"]) for i, v in enumerate([0.0, 10.0, 20.0, 50.0])]
    lines = plot.summarize(runs)
    ((frames, mean, low, high, n),) = lines[("dqn_pwl", "policy")]
    assert (frames, mean, n) == (100, 20.0, 4)  # the mean (the interquartile mean would be 15)
    assert 0.0 < low < 10.0 and 20.0 < high < 50.0  # each seed alone: 1/256 of the resamples, under 2.5%
    assert plot.summarize(runs) == lines  # seeded: the same runs give the same interval
    assert plot.summarize(runs[:1])[("dqn_pwl", "policy")] == [(100, 0.0, 0.0, 0.0, 1)]


def test_renders_a_valid_png_from_a_tiny_run(in_tmp):
    import matplotlib.image

    cli = fit("sac_pendulum")
    run = pathlib.Path(cli.trainer.loggers[0].log_dir)
    assert plot.main([str(run), "--out", str(in_tmp / "plots"), "--title", "tiny"]) == 0
    png = in_tmp / "plots" / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert "| sac_pendulum | policy | 200 |" in (in_tmp / "plots" / "final_returns.md").read_text()


def test_a_folder_without_metrics_is_a_clear_error(in_tmp, capsys):
    assert plot.main([str(in_tmp)]) == 2
    assert "no metrics.csv" in capsys.readouterr().err


def test_a_parent_folder_finds_the_runs_below_it_grouped_by_recipe(in_tmp, capsys):
    fake_run(in_tmp, 0, ["0,1.0,,,100\n", "0,3.0,,,200\n"])
    fake_run(in_tmp, 1, ["0,5.0,,,100\n", "0,7.0,,,200\n", "0,9.0,"])  # a row still being written
    other = in_tmp / "runs" / "sac_pendulum" / "version_0"
    other.mkdir(parents=True)
    (other / "metrics.csv").write_text(HEADER + "0,-100.0,,,100\n")
    (in_tmp / "runs" / "sac_pendulum" / "version_0" / "checkpoints").mkdir()
    assert plot.main(["runs", "--out", "out"]) == 0
    table = (in_tmp / "out" / "final_returns.md").read_text()
    assert "| dqn_pwl | policy | 200 | 5.00 |" in table and "| sac_pendulum | policy | 100 | -100.00 |" in table
    assert len(plot.find_runs([in_tmp / "runs", other])) == 3  # a run named twice counts once


def test_a_folder_with_no_runs_below_it_is_one_line(in_tmp, capsys):
    (in_tmp / "empty" / "sub").mkdir(parents=True)
    assert plot.main(["empty"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: empty: no metrics.csv in it or below it")
    assert plot.main(["missing"]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
