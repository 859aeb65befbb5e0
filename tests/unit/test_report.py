"""T0: ``python -m lightning_mbrl.report`` on tiny fake runs: the table's numbers and verdicts against hand
computations, valid PNGs, and ``not run`` (never ``agree``) for missing, short and killed runs.

Fake runs are written as the CSV logger writes them: ``metrics.csv`` with the sorted keys as header and env
frames in ``step``, training rows between evaluation rows, and ``hparams.yaml`` with the seed and budget.
With 2 seeds the 95% bootstrap interval of the mean is [lowest, highest] (each seed alone is 1/4 of the
resamples, far more than the 2.5% tail).
"""

import json
import pathlib
import subprocess

import matplotlib.image
import numpy as np
import pytest

from lightning_mbrl import report
from lightning_mbrl.report import (BenchmarkExact, BenchmarkShare, Claim, FramesRatio, FramesTo, Gain, ReturnAt,
                                   above, at_least, at_most, below, contains, overlaps)
from lightning_mbrl.stats import Estimate

HEADER = ["episodes", "eval/boots/return", "eval/return", "eval/return_std", "step", "train/loss_critic"]
PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(root: pathlib.Path, recipe: str, name: str, seed: int, max_frames: int,
             evals: dict[int, tuple[float | None, float | None]], cut: bool = False) -> pathlib.Path:
    """A run folder ``root/recipe/name``: a training row every 50 frames up to the last evaluation, and
    ``evals[frames] = (policy return, BOOTS return)``; ``cut``: killed while writing a row."""
    run = root / recipe / name
    run.mkdir(parents=True)
    lines = [",".join(HEADER)]
    for frames in range(50, max(evals) + 1, 50):
        lines.append(f"{frames // 50}.0,,,,{frames},0.5")
        if frames in evals:
            policy, boots = evals[frames]
            lines.append(f",{'' if boots is None else boots},{'' if policy is None else policy},1.0,{frames},")
    text = "\n".join(lines) + "\n"
    if cut:
        text += f"{len(lines)}.0,,,,{max(evals) + 50}"  # the row being written when the run was killed
    (run / "metrics.csv").write_text(text)
    (run / "hparams.yaml").write_text(f"env: Pendulum-v1\nseed: {seed}\nmax_frames: {max_frames}\n")
    return run


def toy_runs(root: pathlib.Path) -> None:
    fake_run(root, "toy", "seed_0", 0, 300, {100: (1.0, 2.0), 200: (3.0, 6.0), 300: (5.0, 9.0)})
    fake_run(root, "toy", "seed_1", 1, 300, {100: (2.0, 2.0), 200: (5.0, 9.0), 300: (6.0, 8.0)})


def head() -> str:
    return "abc1234"


def write(paths, out, claims):
    return report.write_report(paths, out, claims=claims, reps=500, head=head)


def row_of(md: str, name: str) -> str:
    (line,) = [line for line in md.splitlines() if f"(`{name}`)" in line]
    return line


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_two_tiny_runs_give_the_table_and_valid_pngs(tmp_path):
    toy_runs(tmp_path / "runs")
    claims = [
        Claim("002", "toy_at_200", "toy policy at 200 frames", "4 (Figure 0)",
              ReturnAt("toy", 200, seeds=2, digits=2), overlaps(3.5, 4.5, "4 +- 0.5"), ("toy",)),
        Claim("002", "toy_far_off", "toy policy at 200 frames is near 100", "100",
              ReturnAt("toy", 200, seeds=2, digits=2), overlaps(90.0, 110.0, "[90, 110]"), ("toy",)),
        Claim("002", "toy_boots_gain", "BOOTS above the policy", "above",
              Gain("toy", 300, statistic="mean", seeds=2, digits=2), above(0.0, "0"), ("toy",)),
        Claim("002", "toy_frames", "policy reaches 3 within 250 frames", "~200",
              FramesTo("toy", threshold=3.0, budget=300, statistic="mean", seeds=2), at_most(250, "250"), ("toy",)),
    ]
    md_path, rows = write([tmp_path / "runs"], tmp_path / "docs" / "reproduction", claims)
    assert md_path == tmp_path / "docs" / "reproduction.md"
    md = md_path.read_text()
    assert [r.verdict for r in rows] == ["agree", "disagree", "agree", "agree"]
    # frames 200: policy 3 and 5 -> mean 4, interval [3, 5]
    assert cells(row_of(md, "toy_at_200"))[1:7] == [
        "4 (Figure 0)", "4.00 [3.00, 5.00]", "2", "interval meets 4 +- 0.5", "agree",
        "`python -m benchmarks.reproduce --only toy_at_200`"]
    assert cells(row_of(md, "toy_far_off"))[5] == "disagree"
    # BOOTS - policy per seed, mean over 100..300: seed 0 (1 + 3 + 4) / 3 = 8/3, seed 1 (0 + 4 + 2) / 3 = 2
    gain = rows[2].measured.estimate
    assert (gain.value, gain.low, gain.high) == (pytest.approx(7 / 3), 2.0, pytest.approx(8 / 3))
    assert cells(row_of(md, "toy_boots_gain"))[2] == "2.33 [2.00, 2.67]"
    # first evaluation >= 3: seed 0 at 200, seed 1 at 200 -> 200 frames
    assert cells(row_of(md, "toy_frames"))[2] == "200 [200, 200] frames"
    assert "abc1234 (HEAD now; not recorded by the runs)" in row_of(md, "toy_at_200")
    assert "![Paper 002: learning curves](reproduction/paper_002_curves.png)" in md
    for name in ("paper_002_curves.png", "paper_002_profiles.png"):
        png = tmp_path / "docs" / "reproduction" / name
        assert png.read_bytes()[:8] == PNG
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 100 and image.shape[1] > 100 and image[..., :3].std() > 0  # not a blank canvas
    assert "## Not run here at paper scale" in md and "mbpo_halfcheetah" in md
    again = report.evaluate(report.discover([tmp_path / "runs"]), claims, reps=500, head=head)
    assert [r.measured.text for r in again] == [r.measured.text for r in rows]  # seeded: the same numbers


def test_missing_short_and_killed_runs_are_not_run(tmp_path):
    runs = tmp_path / "runs"
    toy_runs(runs)
    fake_run(runs, "killed", "seed_0", 0, 300, {100: (1.0, None), 200: (3.0, None), 300: (5.0, None)})
    fake_run(runs, "killed", "seed_1", 1, 300, {100: (2.0, None)}, cut=True)
    claims = [
        Claim("000", "absent", "a recipe nobody ran", "1", ReturnAt("absent", 100), overlaps(0, 9, "any"), ("x",)),
        Claim("000", "killed_return", "return at 300", "3", ReturnAt("killed", 300, seeds=2, digits=2),
              overlaps(0.0, 100.0, "[0, 100]"), ("x",)),
        Claim("000", "killed_frames", "reaches 3 within 300", "300",
              FramesTo("killed", threshold=3.0, budget=300, seeds=2), at_most(300, "300"), ("x",)),
        Claim("000", "too_few_seeds", "needs 3 seeds", "4", ReturnAt("toy", 300, seeds=3, digits=2),
              overlaps(0.0, 100.0, "[0, 100]"), ("x",)),
        Claim("000", "short_ratio", "ratio", "3", FramesRatio(FramesTo("killed", 3.0, 300, seeds=2),
                                                              FramesTo("toy", 3.0, 300, seeds=2)),
              at_least(0.0, "0"), ("x",)),
        Claim("000", "frames_too_few_seeds", "needs 3 seeds", "300",
              FramesTo("toy", threshold=3.0, budget=300, seeds=3), at_most(300, "300"), ("x",)),
    ]
    md_path, rows = write([runs], tmp_path / "report", claims)
    md = md_path.read_text()
    assert all(r.verdict.startswith("not run (") for r in rows), [r.verdict for r in rows]
    assert "agree" not in " ".join(cells(row_of(md, c.name))[5] for c in claims)
    assert rows[0].verdict == "not run (no runs of absent)"
    # the killed seed stopped at 150 frames, its last evaluation at 100: ours at 100 frames, every seed
    assert rows[1].verdict == ("not run (1 of 2 seeds of killed evaluated at 300 frames; "
                               "seed_1 at 150 of 300 frames)")
    assert cells(row_of(md, "killed_return"))[2:4] == ["1.50 [1.00, 2.00] at 100 frames", "2 (short)"]
    assert rows[2].verdict.startswith("not run (1 of 2 seeds of killed reached 3 or ran 300 frames")
    assert rows[3].verdict == "not run (2 of 3 seeds of toy evaluated at 300 frames; 1 not started)"
    assert rows[4].verdict.startswith("not run (1 of 2 seeds of killed")
    assert rows[5].verdict == "not run (2 of 3 seeds of toy reached 3 or ran 300 frames; 1 not started)"


def test_benchmark_results_are_the_runs_of_exact_claims(tmp_path):
    results = tmp_path / "runs" / "pwl_def41"
    results.mkdir(parents=True)
    for h, pieces in ((1, 4), (2, 8), (3, 16)):
        (results / f"H={h}.json").write_text(json.dumps({
            "benchmark": "pwl_def41", "variant": f"H={h}", "commit": "feed123", "policy_pieces": pieces,
            "theorem_4_2_policy_pieces": 2 ** (h + 1)}))
    stats_dir = tmp_path / "runs" / "pwl_stats"
    stats_dir.mkdir()
    (stats_dir / "rand.json").write_text(json.dumps({"benchmark": "pwl_stats", "variant": "rand", "n": 1000,
                                                     "fraction_policy_pieces_gt_100": 0.095, "commit": "feed123"}))
    (stats_dir / "semi-rand.json").write_text('{"benchmark": "pwl_stats", "vari')  # still being written: skipped
    claims = [
        Claim("000", "pieces", "2^(H+1) pieces", "2^(H+1)",
              BenchmarkExact("pwl_def41", "policy_pieces", "theorem_4_2_policy_pieces"), at_least(1.0, "100%"),
              ("pwl_def41",)),
        Claim("000", "rand", "RAND > 100 pieces", "8.6%", BenchmarkShare("pwl_stats", "rand",
                                                                         "fraction_policy_pieces_gt_100"),
              contains(0.086, "8.6%"), ("pwl_stats",)),
        Claim("000", "rand_far", "RAND > 100 pieces", "20%", BenchmarkShare("pwl_stats", "rand",
                                                                            "fraction_policy_pieces_gt_100"),
              contains(0.2, "20%"), ("pwl_stats",)),
        Claim("000", "semi", "SEMI-RAND", "68.7%",
              BenchmarkShare("pwl_stats", "semi-rand", "fraction_policy_pieces_gt_1000"), contains(0.687, "68.7%"),
              ("pwl_stats",)),
    ]
    md_path, rows = write([tmp_path / "runs"], tmp_path / "report", claims)
    assert [r.verdict for r in rows] == ["agree", "agree", "disagree", "not run (no pwl_stats result (semi-rand))"]
    md = md_path.read_text()
    assert cells(row_of(md, "pieces"))[2:4] == ["100% match: 4, 8, 16 (H=1, H=2, H=3)", "3 (exact)"]
    assert cells(row_of(md, "rand"))[3] == "1,000 MDPs" and cells(row_of(md, "rand"))[7] == "feed123"
    wrong = tmp_path / "runs" / "pwl_def41" / "H=2.json"
    wrong.write_text(wrong.read_text().replace('"policy_pieces": 8', '"policy_pieces": 7'))
    _, rows = write([tmp_path / "runs"], tmp_path / "report", claims[:1])
    assert rows[0].verdict == "disagree" and "H=2: 7 (expected 8)" in rows[0].measured.text


def test_commits_recorded_by_the_runner_and_seeds_counted_once(tmp_path):
    toy_runs(tmp_path / "a")
    for seed in (0, 1):
        (tmp_path / "a" / "toy" / f"seed_{seed}" / "reproduce.json").write_text(json.dumps({"commits": ["c0ffee1"]}))
    fake_run(tmp_path / "b", "toy", "version_0", 0, 300, {100: (50.0, None)})  # seed 0 again, fewer frames
    found = report.discover([tmp_path / "a", tmp_path / "b"])
    assert [r.path.name for r in found.runs["toy"]] == ["seed_0", "seed_1"]
    claim = Claim("002", "c", "c", "c", ReturnAt("toy", 100, seeds=2), overlaps(0, 9, "x"), ("toy",))
    (row,) = report.evaluate(found, [claim], reps=100, head=head)
    assert row.commit == "c0ffee1" and row.measured.estimate.value == 1.5


def test_git_commit_is_dirty_for_code_changes_not_for_benchmark_output(tmp_path):
    """A runner writes its runs' evidence into the checkout (tracked under ``benchmarks/results``): that must not mark
    the code it runs as dirty, while a change to any other tracked file must."""
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results" / "reproduce").mkdir(parents=True)
    evidence = tmp_path / "benchmarks" / "results" / "reproduce" / "metrics.csv"
    code = tmp_path / "algo.py"
    evidence.write_text("step\n")
    code.write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "untracked.txt").write_text("scratch\n")
    evidence.write_text("step\n1\n")
    assert report.git_commit(tmp_path) == head
    code.write_text("x = 2\n")
    assert report.git_commit(tmp_path) == head + "-dirty"


def test_the_registry_renders_every_claim_as_not_run_without_runs(tmp_path, capsys):
    assert report.main(["--out", str(tmp_path / "reproduction"), "--reps", "50"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{len(report.CLAIMS)} not run")
    md = (tmp_path / "reproduction.md").read_text()
    for claim in report.CLAIMS:
        line = row_of(md, claim.name)
        assert cells(line)[5].startswith("not run (") and f"`{claim.command()}`" in line
        assert set(claim.jobs) <= set(report.JOBS_BY_NAME) and set(claim.measure.recipes) <= set(claim.jobs)
    assert len({c.name for c in report.CLAIMS}) == len(report.CLAIMS)
    assert "--scale paper --only mbpo_halfcheetah_400k" in md
    section = md.split("## Not run here at paper scale")[1]
    assert "`python -m recipes.mbpo_halfcheetah fit --model.seed=0`" in section and "estimate" in section


def test_errors_are_one_line(tmp_path, capsys):
    assert report.main([str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'missing'}: no such file or folder"
    (tmp_path / "notes.txt").write_text("x")
    assert report.main([str(tmp_path / "notes.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "notes.txt: neither a run folder's metrics.csv nor a benchmark result" in capsys.readouterr().err


def test_rules_judge_the_interval_not_the_point():
    est = Estimate("mean", 2.0, 1.0, 3.0, 5)  # 2 [1, 3]
    assert at_most(3.0, "3").decide(est) and not at_most(2.5, "2.5").decide(est)
    assert at_least(1.0, "1").decide(est) and not at_least(1.5, "1.5").decide(est)
    assert above(0.9, "0.9").decide(est) and not above(1.0, "1").decide(est)
    assert below(3.1, "3.1").decide(est) and not below(3.0, "3").decide(est)
    assert overlaps(3.0, 9.0, "x").decide(est) and not overlaps(3.5, 9.0, "x").decide(est)
    assert contains(1.0, "1").decide(est) and not contains(3.5, "3.5").decide(est)


def _grid_run(coverage, agent, passes, predicted, min_cell, accuracy=None):
    cells = [{"layout": 0, "cell": c, "correct_action": 0, "fraction_correct": 1.0} for c in range(11)]
    cells.append({"layout": 1, "cell": 8, "correct_action": 2, "fraction_correct": min_cell})
    return {"coverage": coverage, "agent": agent, "seeds": 4, "updates": 2000, "passes": passes,
            "predicted_pass": predicted, "cells": cells, "model_position_accuracy": accuracy}


def test_paper_001_predictions_and_model_accuracy(tmp_path):
    from lightning_mbrl.report import ModelPositionAccuracy, PredictionsHold

    folder = tmp_path / "runs" / "generalization_3x3"
    folder.mkdir(parents=True)
    runs = [_grid_run("path_to_goal", "er", False, False, 0.0),
            _grid_run("path_to_goal", "model-1", True, True, 0.75, [1.0, 1.0, 0.98, 0.98]),
            _grid_run("path_to_goal", "model-10", True, True, 0.5, [1.0, 1.0, 0.98, 0.98]),
            _grid_run("single_cell", "er", False, False, 0.0),
            _grid_run("single_cell", "model-1", True, False, 0.5)]  # predicted to fail, passes
    (folder / "seeds4.json").write_text(json.dumps({"benchmark": "generalization_3x3", "variant": "seeds4",
                                                    "commit": "feed123", "runs": runs}))
    claims = [Claim("001", name, name, "x", PredictionsHold(coverage), at_least(1.0, "all"), ("generalization_3x3",))
              for name, coverage in (("ptg", "path_to_goal"), ("single", "single_cell"), ("none", "no_evaluation"))]
    claims.append(Claim("001", "acc", "acc", "x", ModelPositionAccuracy("path_to_goal"), at_least(0.95, "95%"),
                        ("generalization_3x3",)))
    md_path, rows = write([tmp_path / "runs"], tmp_path / "report", claims)
    assert [r.verdict for r in rows] == ["agree", "disagree", "not run (no generalization_3x3 result for no_evaluation)",
                                         "agree"]
    assert rows[0].measured.text == ("100% as predicted: er fail (min cell 0.00), model-1 pass (min cell 0.75), "
                                     "model-10 pass (min cell 0.50)")
    assert rows[1].measured.estimate.value == 0.5 and rows[0].measured.seeds == "4 x 3 agents (2,000 updates)"
    # mean of 1, 1, 0.98, 0.98; with 4 seeds the interval's lower end is above 0.95 (the rule judges it)
    assert rows[3].measured.estimate.value == pytest.approx(0.99) and rows[3].measured.estimate.low >= 0.98
    assert cells(row_of(md_path.read_text(), "ptg"))[7] == "feed123"
    # a later result with more seeds decides both rows, and its commit is the one shown
    more = [{**_grid_run("path_to_goal", agent, agent != "er", agent != "er", 0.6, acc), "seeds": 6}
            for agent, acc in (("er", None), ("model-1", [1.0] * 6), ("model-10", [1.0] * 6))]
    (folder / "seeds6.json").write_text(json.dumps({"benchmark": "generalization_3x3", "variant": "seeds6",
                                                    "commit": "beef456", "runs": more}))
    md_path, rows = write([tmp_path / "runs"], tmp_path / "report", claims)
    assert rows[0].measured.seeds == "6 x 3 agents (2,000 updates)" and rows[3].measured.seeds == "6"
    assert rows[3].measured.estimate.value == 1.0
    assert cells(row_of(md_path.read_text(), "ptg"))[7] == cells(row_of(md_path.read_text(), "acc"))[7] == "beef456"


def test_paper_001_smoothing_rise_and_online_gap(tmp_path):
    from lightning_mbrl.report import OnlineGap, SmoothingRise

    folder = tmp_path / "runs"
    folder.mkdir()
    # [bin][seed] for 3 pipes (bins 0..3): the rise is bin 2 minus bin 0, per seed
    reward = [[0.0, 0.1, 0.0], [0.1, 0.1, 0.1], [0.3, 0.4, 0.5], [0.9, 1.0, 1.0]]
    flat = [[0.2, 0.1, 0.3], [0.2, 0.1, 0.3], [0.2, 0.1, 0.3], [0.9, 0.9, 0.9]]
    (folder / "smooth.json").write_text(json.dumps({"benchmark": "panflute_smoothing", "pipes": 3, "agents": [
        {"agent": "simple", "reward_by_ends_now": reward, "p_all_next_by_ends_next": flat}]}))
    final = {"er": [0.1, 0.2, 0.3], "simple": [0.3, 0.3, 0.6], "perfect": [0.1, 0.2]}
    (folder / "online.json").write_text(json.dumps({"benchmark": "generalization_online", "runs": [
        {"env": "gridworld/panflute-5", "agent": a, "seeds": len(f), "final": f, "regime": "high", "steps": 100}
        for a, f in final.items()]}))
    claims = [Claim("001", "rise", "rise", "x", SmoothingRise("simple", "reward_by_ends_now"), above(0.0, "0"), ()),
              Claim("001", "flat", "flat", "x", SmoothingRise("simple", "p_all_next_by_ends_next"), above(0.0, "0"), ()),
              Claim("001", "none", "none", "x", SmoothingRise("gaussian", "reward_by_ends_now"), above(0.0, "0"), ()),
              Claim("001", "gap", "gap", "x", OnlineGap("gridworld/panflute-5", "simple", "er"), above(0.0, "0"), ()),
              Claim("001", "unpaired", "unpaired", "x", OnlineGap("gridworld/panflute-5", "perfect", "er"),
                    above(0.0, "0"), ())]
    _, rows = write([folder], tmp_path / "report", claims)
    assert [r.verdict.split(" (")[0] for r in rows] == ["agree", "disagree", "not run", "agree", "not run"]
    assert rows[0].measured.estimate.value == pytest.approx(np.mean([0.3, 0.3, 0.5]))
    assert rows[1].measured.estimate.value == pytest.approx(0.0)
    assert rows[3].measured.estimate.value == pytest.approx(np.mean([0.2, 0.1, 0.3]))
    assert rows[3].measured.estimate.low > 0 and rows[3].measured.seeds == "3"


def test_paper_003_tabular_and_paired_score_gap(tmp_path):
    from lightning_mbrl.report import ScoreGap, TabularAbove, TabularFractionOfOptimal

    folder = tmp_path / "runs" / "omd_tabular"
    folder.mkdir(parents=True)
    kappas = [0.0, 1.0, 2.0, 2.5, 5.0]
    # [kappa][seed]: OMD above at kappa 1, below at kappa 2, above on average at 2.5 but not on every seed
    omd = [[0.0, 0.0], [0.5, 0.7], [0.2, 0.1], [0.5, 0.0], [1.0, 0.98]]
    mle = [[0.0, 0.0], [0.1, 0.2], [0.3, 0.3], [0.2, 0.1], [1.0, 1.0]]
    (folder / "seeds2.json").write_text(json.dumps({
        "benchmark": "omd_tabular", "variant": "seeds2", "commit": "beef123", "kappas": kappas, "seeds": [1, 2],
        "figure2_indices": [1, 2, 3, 4], "optimal_return": 1.0,
        "runs": {"omd": {"returns": omd}, "mle": {"returns": mle}}}))
    # the paired gap: per seed, the mean of the evaluations from 200 to 300 frames; seed 2 has only the omd run
    fake_run(tmp_path / "runs", "a", "seed_0", 0, 300, {100: (0.0, None), 200: (10.0, None), 300: (20.0, None)})
    fake_run(tmp_path / "runs", "a", "seed_1", 1, 300, {100: (0.0, None), 200: (30.0, None), 300: (30.0, None)})
    fake_run(tmp_path / "runs", "a", "seed_2", 2, 300, {100: (0.0, None), 200: (99.0, None), 300: (99.0, None)})
    fake_run(tmp_path / "runs", "b", "seed_0", 0, 300, {100: (50.0, None), 200: (5.0, None), 300: (5.0, None)})
    fake_run(tmp_path / "runs", "b", "seed_1", 1, 300, {100: (50.0, None), 200: (10.0, None), 300: (20.0, None)})
    claims = [Claim("003", "above", "above", "x", TabularAbove(), at_least(1.0, "all"), ("omd_tabular",)),
              Claim("003", "optimal", "optimal", "x", TabularFractionOfOptimal(index=4), at_least(0.99, "0.99"),
                    ("omd_tabular",)),
              Claim("003", "gap", "gap", "x", ScoreGap("a", "b", 200, 300, seeds=2), above(0.0, "0"), ("a", "b")),
              Claim("003", "gap3", "gap3", "x", ScoreGap("a", "b", 200, 300, seeds=3), above(0.0, "0"), ("a", "b"))]
    _, rows = write([tmp_path / "runs"], tmp_path / "report", claims)
    above_row, optimal_row, gap_row, gap3_row = rows
    # kappas below 3 among figure2_indices: 1.0 (OMD above on both seeds), 2.0 (below) and 2.5 (mean gap 0.1, its
    # interval [-0.1, 0.3] reaches below 0): only the first counts
    assert above_row.measured.estimate.value == pytest.approx(1 / 3) and above_row.verdict == "disagree"
    assert above_row.measured.text.startswith("33% of kappas: kappa 1.00: 0.450 [0.400, 0.500]")
    # kappa 5: 1.0 and 0.98 of optimal; with 2 seeds the interval is [0.98, 1.0], so the rule's lower end fails
    assert optimal_row.measured.estimate.value == pytest.approx(0.99)
    assert optimal_row.measured.estimate.low == pytest.approx(0.98) and optimal_row.verdict == "disagree"
    # seed 0: (10 + 20) / 2 - 5 = 10; seed 1: 30 - 15 = 15; the unpaired seed 2 is left out
    assert gap_row.measured.estimate.value == pytest.approx(12.5) and gap_row.measured.seeds == "2"
    assert (gap_row.measured.estimate.low, gap_row.measured.estimate.high) == (10.0, 15.0) and gap_row.verdict == "agree"
    assert gap3_row.verdict.startswith("not run (2 of 3 seeds with a and b both evaluated at 300 frames")


def test_cartpole_loop_cost_is_the_measured_loop_times_the_frames(monkeypatch):
    from lightning_mbrl.report import Cost, estimate_cost

    timing = {"cartpole_loop": {"omd": {"ms_per_frame": 8.0, "random_frames_s": 2.0}}}
    monkeypatch.setattr(report.jobs, "_load", lambda name: timing if name == "omd_update.json" else {})
    cpu, gpu, basis = estimate_cost(Cost("cartpole_loop", 1, 1_000, loop="omd"), 201_000)
    assert cpu == pytest.approx((8.0 * 200_000 / 1000 + 2.0) / 3600) and gpu == cpu
    assert "8.0 ms/frame" in basis
    assert estimate_cost(Cost("cartpole_loop", 1, 1_000, loop="mle"), 201_000) is None  # no timing: not estimated
    with pytest.raises(ValueError, match="unknown cost kind"):
        estimate_cost(Cost("nope", 1, 0), 10)


def test_maac_cost_is_its_measured_update_times_the_updates(monkeypatch):
    from lightning_mbrl.report import GPU_UPDATE_MS, Cost, estimate_cost

    timing = {"update": {"maac_ms": 50.0, "maac_over_sac": 6.0}}
    monkeypatch.setattr(report.jobs, "_load", lambda name: timing if name == "maac_update.json" else {})
    cpu, gpu, basis = estimate_cost(Cost("maac", 8, 5_000), 15_000)  # 8 x 10k updates after the random frames
    assert cpu == pytest.approx(80_000 * 0.050 / 3600)
    assert gpu == pytest.approx(80_000 * GPU_UPDATE_MS * 6.0 / 1000 / 3600)
    assert "50 ms/update" in basis and "not counted" in basis
    monkeypatch.setattr(report.jobs, "_load", lambda name: {})
    assert estimate_cost(Cost("maac", 8, 5_000), 15_000) is None  # no timing: not estimated


def test_paper_004_gradient_error_gap_and_argmin(tmp_path):
    from lightning_mbrl.report import GradientErrorArgmin, GradientErrorGap

    folder = tmp_path / "runs"
    folder.mkdir()
    runs = [{"learned_dynamics": [0.3, 0.1, 0.2], "true_dynamics": [0.3, 0.05, 0.1]},
            {"learned_dynamics": [0.5, 0.2, 0.4], "true_dynamics": [0.5, 0.1, 0.1]},
            {"learned_dynamics": [0.4, 0.3, 0.3], "true_dynamics": [0.4, 0.2, 0.2]}]
    (folder / "g.json").write_text(json.dumps({"benchmark": "maac_gradient_error", "horizons": [0, 1, 2], "runs": runs}))
    claims = [Claim("004", "gap", "gap", "x", GradientErrorGap(2), above(0.0, "0"), ()),
              Claim("004", "gap0", "gap0", "x", GradientErrorGap(0), above(0.0, "0"), ()),
              Claim("004", "far", "far", "x", GradientErrorGap(7), above(0.0, "0"), ()),
              Claim("004", "u", "u", "x", GradientErrorArgmin(), overlaps(1, 1, "H = 1"), ()),
              Claim("004", "u_true", "u_true", "x", GradientErrorArgmin("true_dynamics"), overlaps(1, 1, "H = 1"), ())]
    _, rows = write([folder], tmp_path / "report", claims)
    assert [r.verdict.split(" (")[0] for r in rows] == ["agree", "disagree", "not run", "agree", "agree"]
    assert rows[0].measured.estimate.value == pytest.approx(np.mean([0.1, 0.3, 0.1]))  # learned minus true, paired
    assert rows[1].measured.estimate.value == 0.0
    assert rows[3].measured.estimate.value == 1  # mean learned error by H: 0.4, 0.2, 0.3


def test_paper_001_frozen_model_gap_is_paired_and_needs_every_seed(tmp_path):
    from lightning_mbrl.report import FrozenModelGap

    folder = tmp_path / "runs"
    folder.mkdir()
    runs = [{"model_updates": 0, "steps_to_near_optimal": [None, 900]},
            {"model_updates": 10, "steps_to_near_optimal": [200, 300]},
            {"model_updates": 20, "steps_to_near_optimal": [400, 700]}]
    (folder / "f.json").write_text(json.dumps({"benchmark": "panflute_frozen_model", "runs": runs}))
    claims = [Claim("001", "gap", "gap", "x", FrozenModelGap(10, 20), above(0.0, "0"), ()),
              Claim("001", "never", "never", "x", FrozenModelGap(0, 20), above(0.0, "0"), ()),
              Claim("001", "absent", "absent", "x", FrozenModelGap(10, 30), above(0.0, "0"), ())]
    _, rows = write([folder], tmp_path / "report", claims)
    assert [r.verdict.split(" (")[0] for r in rows] == ["agree", "not run", "not run"]
    assert rows[0].measured.estimate.value == pytest.approx(300.0)  # (200 + 400) / 2, later minus earlier
    assert "never near-optimal" in rows[1].verdict
