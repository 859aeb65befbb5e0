"""``benchmarks.precision_curve``: the runs' precision comes from their ``config.yaml``, the late-window means and
the spread test are computed as documented, and bad evidence gets one line."""

from __future__ import annotations

import json
import pathlib

import pytest

from benchmarks import precision_curve

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(root: pathlib.Path, job: str, seed: int, precision: str, curve: dict[int, float]) -> None:
    run = root / "reduced" / job / f"seed_{seed}"
    run.mkdir(parents=True)
    rows = "".join(f"{f},{v}\n" for f, v in curve.items())
    (run / "metrics.csv").write_text("step,eval/return\n" + rows)
    (run / "config.yaml").write_text(f"trainer:\n  precision: {precision}\nmodel:\n  seed: {seed}\n")


def main(tmp_path: pathlib.Path, *extra: str) -> dict:
    out = tmp_path / "out" / "pc.json"
    assert precision_curve.main(["--evidence-dir", str(tmp_path / "ev"), "--jobs", "a", "b", "--window", "2000",
                                 "--out", str(out), *extra]) == 0
    assert out.with_suffix(".png").read_bytes().startswith(PNG)
    return json.loads(out.read_text())


def test_late_means_and_the_spread_test(tmp_path):
    ev = tmp_path / "ev"
    fake_run(ev, "a", 0, "bf16-mixed", {1000: 0.0, 2000: 10.0, 3000: 20.0, 4000: 30.0})
    fake_run(ev, "a", 1, "bf16-mixed", {1000: 0.0, 2000: 12.0, 3000: 22.0, 4000: 24.0, 5000: 99.0})
    fake_run(ev, "b", 0, "32-true", {1000: 0.0, 2000: 8.0, 3000: 20.0, 4000: 28.0})
    fake_run(ev, "b", 1, "32-true", {1000: 0.0, 2000: 8.0, 3000: 26.0, 4000: 30.0})
    doc = main(tmp_path)
    # every run reached 4,000 frames (seed 1's 5,000 is beyond): the window is (2,000, 4,000], two evaluations
    assert doc["frames_every_run_reached"] == 4000 and doc["window"] == [2000, 4000]
    assert doc["late_mean_return"] == {"bf16-mixed": {"a/seed_0": 25.0, "a/seed_1": 23.0},
                                       "32-true": {"b/seed_0": 24.0, "b/seed_1": 28.0}}
    assert doc["within_fp32_spread"] is False  # 23 < 24
    assert doc["curves"]["bf16-mixed"]["a/seed_1"]["5000"] == 99.0 and doc["benchmark"] == "precision_curve"

    (ev / "reduced" / "b" / "seed_0" / "metrics.csv").write_text("step,eval/return\n1000,0\n2000,8\n3000,20\n4000,26\n")
    assert main(tmp_path)["within_fp32_spread"] is True  # fp32 now spans [23, 28]


def test_the_precision_is_the_runs_not_the_jobs(tmp_path):
    """A run's config.yaml decides (a job's name could say fp32 while its runs used the default); one fp32 run has
    no spread, so the test is not made."""
    ev = tmp_path / "ev"
    fake_run(ev, "a", 0, "bf16-mixed", {1000: 1.0})
    fake_run(ev, "b", 0, "32-true", {1000: 2.0})
    fake_run(ev, "b", 1, "bf16-mixed", {1000: 3.0})
    doc = main(tmp_path)
    assert doc["late_mean_return"] == {"bf16-mixed": {"a/seed_0": 1.0, "b/seed_1": 3.0}, "32-true": {"b/seed_0": 2.0}}
    assert doc["within_fp32_spread"] is None


@pytest.mark.parametrize("case, message", [
    ("no_config", "no config.yaml, so its precision is unknown"),
    ("other_precision", "trainer.precision is '16-mixed'; this compares bf16-mixed and 32-true"),
    ("no_fp32", "no 32-true run with an evaluation below"),
    ("no_runs", "b: no runs (seed_N folders with a metrics.csv)"),
])
def test_bad_evidence_is_one_line(tmp_path, case, message):
    ev = tmp_path / "ev"
    fake_run(ev, "a", 0, "bf16-mixed", {1000: 1.0})
    if case != "no_runs":
        fake_run(ev, "b", 0, "bf16-mixed" if case == "no_fp32" else "32-true", {1000: 2.0})
    else:
        (ev / "reduced" / "b").mkdir(parents=True)
    if case == "no_config":
        (ev / "reduced" / "b" / "seed_0" / "config.yaml").unlink()
    if case == "other_precision":
        (ev / "reduced" / "b" / "seed_0" / "config.yaml").write_text("trainer:\n  precision: 16-mixed\n")
    with pytest.raises(SystemExit) as exit_info:
        precision_curve.main(["--evidence-dir", str(ev), "--jobs", "a", "b", "--out", str(tmp_path / "x.json")])
    assert message in str(exit_info.value) and "\n" not in str(exit_info.value)


def test_a_run_with_no_evaluation_in_the_window_is_one_line(tmp_path):
    ev = tmp_path / "ev"
    fake_run(ev, "a", 0, "bf16-mixed", {1000: 1.0, 4000: 2.0})  # evaluated beyond the 3,000 both reached, not in it
    fake_run(ev, "b", 0, "32-true", {1000: 1.0, 2000: 2.0, 3000: 3.0})
    with pytest.raises(SystemExit, match=r"a/seed_0: no evaluation in frames 2,500-3,000; widen --window"):
        precision_curve.main(["--evidence-dir", str(ev), "--jobs", "a", "b", "--window", "500",
                              "--out", str(tmp_path / "x.json")])
