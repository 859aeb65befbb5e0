"""One recipe's learning curve in ``bf16-mixed`` beside ``32-true``: issue 20's learning evidence on MuJoCo.

    python -m benchmarks.reproduce --only mbpo_hopper mbpo_hopper_fp32   # the runs (resumable; 2 runners share them)
    python -m benchmarks.precision_curve                                 # the JSON and the figure from their evidence

It makes no runs itself: the reproduction runner makes them (the recipe's default precision, which is ``bf16-mixed``
on a CPU with bf16 matrix units, and the ``*_fp32`` job, the same command with ``--trainer.precision=32-true``) and
keeps each run's ``metrics.csv``, ``hparams.yaml``, ``config.yaml`` and marker below
``benchmarks/results/reproduce/<scale>/<job>/seed_N``. This reads them, takes each run's precision from its
``config.yaml`` (the configuration the run really used, not the job's name), and writes
``benchmarks/results/precision_curve_<first job>.{json,png}``:

- every run's policy-evaluation curve (return against env frames), one line per run, a colour per precision;
- per run, the mean return of its evaluations in the last ``--window`` frames the runs of both precisions reached;
- ``within_fp32_spread``: whether every bf16 run's value lies in ``[min, max]`` of the fp32 runs' (the issue's
  test), or ``null`` with fewer than two fp32 runs: one run per precision is a curve to look at, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

from benchmarks.common import RESULTS, commit
from lightning_mbrl import plot

EVIDENCE = RESULTS / "reproduce"
PRECISIONS = ("bf16-mixed", "32-true")


def precision_of(run: Path) -> str:
    """The ``trainer.precision`` a run used, from the ``config.yaml`` LightningCLI saved into its folder."""
    path = run / "config.yaml"
    if not path.is_file():
        raise SystemExit(f"{run}: no config.yaml, so its precision is unknown (runs kept before the runner kept "
                         "config.yaml: run them again with `python -m benchmarks.reproduce --only ...`)")
    precision = str((yaml.safe_load(path.read_text()) or {}).get("trainer", {}).get("precision"))
    if precision not in PRECISIONS:
        raise SystemExit(f"{path}: trainer.precision is {precision!r}; this compares {' and '.join(PRECISIONS)}")
    return precision


def read_runs(folders: list[Path]) -> dict[str, dict[str, dict[int, float]]]:
    """``{precision: {seed folder: {frames: policy return}}}`` of every ``seed_N`` run below ``folders``."""
    runs: dict[str, dict[str, dict[int, float]]] = {p: {} for p in PRECISIONS}
    for folder in folders:
        seeds = sorted(p for p in folder.glob("seed_*") if (p / "metrics.csv").is_file())
        if not seeds:
            raise SystemExit(f"{folder}: no runs (seed_N folders with a metrics.csv); make them with "
                             f"`python -m benchmarks.reproduce --only {folder.name}`")
        for run in seeds:
            curve = plot.read_run(run).get("policy", {})
            if curve:
                runs[precision_of(run)][f"{folder.name}/{run.name}"] = curve
    for precision, found in runs.items():
        if not found:
            raise SystemExit(f"no {precision} run with an evaluation below {', '.join(map(str, folders))}")
    return runs


def summarize(runs: dict[str, dict[str, dict[int, float]]], window: int) -> dict:
    """Per run, the mean of its evaluations in the last ``window`` frames that every run reached; the spread test."""
    reached = min(max(curve) for found in runs.values() for curve in found.values())
    start = reached - window
    for found in runs.values():
        for name, curve in found.items():
            if not any(start < f <= reached for f in curve):
                raise SystemExit(f"{name}: no evaluation in frames {start:,}-{reached:,}; widen --window")
    late = {p: {name: statistics.fmean(v for f, v in curve.items() if start < f <= reached)
                for name, curve in found.items()} for p, found in runs.items()}
    fp32 = list(late["32-true"].values())
    within = (all(min(fp32) <= v <= max(fp32) for v in late["bf16-mixed"].values()) if len(fp32) >= 2 else None)
    return {"frames_every_run_reached": reached, "window": [start, reached], "late_mean_return": late,
            "within_fp32_spread": within}


def figure(runs: dict[str, dict[str, dict[int, float]]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"bf16-mixed": "tab:orange", "32-true": "tab:blue"}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for precision, found in runs.items():
        for i, (name, curve) in enumerate(sorted(found.items())):
            frames = sorted(curve)
            ax.plot(frames, [curve[f] for f in frames], color=colours[precision], alpha=0.85,
                    label=precision if i == 0 else None)
    ax.set_xlabel("env frames")
    ax.set_ylabel("evaluation return (policy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", default=["mbpo_hopper", "mbpo_hopper_fp32"],
                        help="the reproduction jobs whose runs are compared (a run's config.yaml says its precision)")
    parser.add_argument("--scale", default="reduced", choices=("reduced", "paper"))
    parser.add_argument("--evidence-dir", type=Path, default=EVIDENCE)
    parser.add_argument("--window", type=int, default=5_000, help="frames at the end whose evaluations are averaged")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON (the figure goes beside it, as .png); default: "
                             "benchmarks/results/precision_curve_<first job>.json")
    args = parser.parse_args(argv)
    if args.window <= 0:
        parser.error(f"--window must be a positive number of frames, got {args.window}")

    runs = read_runs([args.evidence_dir / args.scale / job for job in args.jobs])
    path = args.out or RESULTS / f"precision_curve_{args.jobs[0]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    png = figure(runs, path.with_suffix(".png"), f"{args.jobs[0]}: bf16-mixed and 32-true ({args.scale})")
    result = {"benchmark": "precision_curve", "commit": commit(), "jobs": args.jobs, "scale": args.scale,
              **summarize(runs, args.window),
              "curves": {p: {n: {str(f): v for f, v in sorted(c.items())} for n, c in found.items()}
                         for p, found in runs.items()},
              "figure": png.name}
    path.write_text(json.dumps(result, indent=2) + "\n")
    late = result["late_mean_return"]
    for precision in PRECISIONS:
        print(f"{precision}: " + ", ".join(f"{n} {v:,.0f}" for n, v in sorted(late[precision].items())))
    print(f"frames {result['window'][0]:,}-{result['window'][1]:,}; within fp32 spread: {result['within_fp32_spread']}")
    print(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
