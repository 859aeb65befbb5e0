"""Learning curves and a table of final returns from run folders.

    python -m lightning_mbrl.plot runs/mbsac_halfcheetah/version_0 runs/mbsac_halfcheetah/version_1 ...
        [--out plots] [--title TEXT]
    python -m lightning_mbrl.plot runs            # every run below a folder, as tensorboard --logdir takes

Takes run folders or folders above them (every folder holding a ``metrics.csv`` at or below a given one
is a run), reads each run's ``metrics.csv`` (the CSV logger's; env frames in the ``step`` column; rows
are appended as they are logged, so a running, killed or resumed run works too) and groups runs by their
recipe (the run folder's parent, e.g. ``mbsac_halfcheetah``): the runs of one recipe are its seeds. For
every evaluator that logged a return (``eval/return`` of the policy, ``eval/<name>/return`` of BOOTS,
MPC, ...) it draws the mean over seeds against env frames with a 95% interval (Student t over the seeds,
at the frames every seed evaluated), and writes:

- ``<out>/curves.png``: one line per (recipe, evaluator), ``eval/optimal_return`` dashed if logged;
- ``<out>/final_returns.md``: the last common evaluation of each line: mean, 95% half-width, seeds.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

# two-sided 95% Student t quantiles for 1..30 degrees of freedom
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
RETURN_KEY = re.compile(r"^eval/(?:(?P<name>[^/]+)/)?return$")


def t95(n: int) -> float:
    """Half-width factor of a 95% interval of a mean of ``n`` samples (0 for one sample)."""
    return 0.0 if n < 2 else (T95[n - 2] if n - 1 <= len(T95) else 1.96)


def read_run(run: Path) -> dict[str, dict[int, float]]:
    """``{evaluator: {frames: return}}`` of one run (``policy`` for ``eval/return``) plus ``optimal``.
    A row still being written by a running run (or cut by a kill) is skipped."""
    path = run / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no metrics.csv (expected a run folder such as runs/<recipe>/version_0)")
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            frames = _number(row.get("step"))
            if frames is None:
                continue
            for key, value in row.items():
                if not isinstance(key, str) or (number := _number(value, float)) is None:
                    continue
                match = RETURN_KEY.match(key)
                if match:
                    curves[match["name"] or "policy"][frames] = number
                elif key == "eval/optimal_return":
                    curves["optimal"][frames] = number
    return dict(curves)


def _number(text: object, kind: type = int) -> float | int | None:
    try:
        return kind(float(text)) if isinstance(text, str) and text else None
    except ValueError:
        return None


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders (holding ``metrics.csv``) at or below each path, in order, without repeats."""
    runs: dict[Path, Path] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file():
            if path.name != "metrics.csv":
                raise FileNotFoundError(f"{path}: not a run folder or its metrics.csv")
            found = [path.parent]
        elif (path / "metrics.csv").is_file():
            found = [path]
        else:
            found = sorted(m.parent for m in path.rglob("metrics.csv"))
        if not found:
            raise FileNotFoundError(f"{path}: no metrics.csv in it or below it (expected a run folder such as "
                                    "runs/<recipe>/version_0, or a folder above run folders such as runs)")
        for run in found:
            runs.setdefault(run.resolve(), run)
    return list(runs.values())


def summarize(runs: list[Path]) -> dict[tuple[str, str], list[tuple[int, float, float, int]]]:
    """``{(recipe, evaluator): [(frames, mean, half_width_95, n_seeds), ...]}`` at the frames every
    seed of the recipe evaluated."""
    by_recipe: dict[str, list[dict[str, dict[int, float]]]] = defaultdict(list)
    for run in runs:
        by_recipe[run.resolve().parent.name].append(read_run(run))
    lines = {}
    for recipe, seeds in by_recipe.items():
        for evaluator in sorted({e for s in seeds for e in s}):
            curves = [s[evaluator] for s in seeds if evaluator in s]
            frames = sorted(set.intersection(*(set(c) for c in curves)))
            points = []
            for fr in frames:
                values = [c[fr] for c in curves]
                n = len(values)
                mean = sum(values) / n
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
                points.append((fr, mean, t95(n) * sd / math.sqrt(n), n))
            if points:
                lines[(recipe, evaluator)] = points
    return lines


def plot(lines: dict, out: Path, title: str | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for (recipe, evaluator), points in sorted(lines.items()):
        frames = [p[0] for p in points]
        mean = [p[1] for p in points]
        label = f"{recipe}: {evaluator} (n={points[-1][3]})"
        if evaluator == "optimal":
            ax.plot(frames, mean, "k--", linewidth=1, label=f"{recipe}: optimal")
            continue
        (line,) = ax.plot(frames, mean, label=label)
        ax.fill_between(frames, [m - p[2] for m, p in zip(mean, points)], [m + p[2] for m, p in zip(mean, points)],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("env frames")
    ax.set_ylabel("eval return (mean, 95% interval over seeds)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = out / "curves.png"
    fig.savefig(png)
    plt.close(fig)

    table = ["| recipe | evaluator | frames | final return | 95% +- | seeds |", "|---|---|---|---|---|---|"]
    for (recipe, evaluator), points in sorted(lines.items()):
        frames, mean, half, n = points[-1]
        table.append(f"| {recipe} | {evaluator} | {frames} | {mean:.2f} | {half:.2f} | {n} |")
    md = out / "final_returns.md"
    md.write_text("\n".join(table) + "\n")
    return png, md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbrl.plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run folders (holding metrics.csv) or folders above them, e.g. runs")
    parser.add_argument("--out", type=Path, default=Path("plots"))
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    try:
        lines = summarize(find_runs(args.runs))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not lines:
        print("error: no eval/*return rows in these runs (evaluation disabled or never reached?)", file=sys.stderr)
        return 2
    png, md = plot(lines, args.out, args.title)
    print(f"wrote {png} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
