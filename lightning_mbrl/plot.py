"""Learning curves and a table of final returns from run folders.

    python -m lightning_mbrl.plot runs/mbsac_halfcheetah/version_0 runs/mbsac_halfcheetah/version_1 ...
        [--out plots] [--title TEXT]
    python -m lightning_mbrl.plot runs            # every run below a folder, as tensorboard --logdir takes

Takes run folders or folders above them (every folder holding a ``metrics.csv`` at or below a given one
is a run), reads each run's ``metrics.csv`` (the CSV logger's; env frames in the ``step`` column; rows
are appended as they are logged, so a running, killed or resumed run works too) and groups runs by their
recipe (the run folder's parent, e.g. ``mbsac_halfcheetah``): the runs of one recipe are its seeds. For
every evaluator that logged a return (``eval/return`` of the policy, ``eval/<name>/return`` of BOOTS,
MPC, ...) it draws, against env frames, at the frames every seed evaluated:

- the **mean over seeds**, as the papers' learning curves are (MBPO's Figure 2 is the mean of five
  trials), so a line compares with their figures; the interquartile mean would drop two of five seeds
  and equals the mean for three;
- its **95% interval** by rliable's stratified percentile bootstrap (``lightning_mbrl.stats.curve``:
  the seeds are resampled 2,000 times at each frame, with a fixed seed, so the same runs give the same
  numbers). With few seeds it spans about the range of the seeds (the bootstrap cannot see beyond its
  data: with 2 or 3 seeds the interval of the mean is exactly [lowest, highest], as every seed alone is
  drawn in more than 2.5% of the resamples), and it is a single point for one seed.

It writes:

- ``<out>/curves.png``: one line per (recipe, evaluator), ``eval/optimal_return`` dashed if logged;
- ``<out>/final_returns.md``: the last common evaluation of each line: mean, 95% interval, seeds.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from lightning_mbrl import stats

RETURN_KEY = re.compile(r"^eval/(?:(?P<name>[^/]+)/)?return$")
STATISTIC = "mean"

Curves = dict[str, dict[int, float]]  # {evaluator: {frames: return}} of one run


class Point(NamedTuple):
    """One point of a line: the statistic over ``seeds`` runs at ``frames``, with its 95% interval."""

    frames: int
    value: float
    low: float
    high: float
    seeds: int


def read_run(run: Path) -> Curves:
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


def recipe_of(run: Path) -> str:
    """The recipe of a run folder: the name of the folder it is in (``runs/<recipe>/version_N``)."""
    return run.resolve().parent.name


def summarize(runs: list[Path], *, reps: int = stats.REPS,
              seed: int = stats.SEED) -> dict[tuple[str, str], list[Point]]:
    """``{(recipe, evaluator): [Point, ...]}``: the mean over the recipe's seeds at the frames every seed
    evaluated, with its 95% bootstrap interval."""
    by_recipe: dict[str, list[Curves]] = defaultdict(list)
    for run in runs:
        by_recipe[recipe_of(run)].append(read_run(run))
    return summarize_seeds(by_recipe, reps=reps, seed=seed)


def summarize_seeds(by_recipe: dict[str, list[Curves]], *, statistic: str = STATISTIC, reps: int = stats.REPS,
                    seed: int = stats.SEED) -> dict[tuple[str, str], list[Point]]:
    """:func:`summarize` of curves already read and grouped: ``{recipe: [curves of each seed]}``."""
    lines = {}
    for recipe, seeds in by_recipe.items():
        for evaluator in sorted({e for s in seeds for e in s}):
            curves = [s[evaluator] for s in seeds if evaluator in s]
            frames = sorted(set.intersection(*(set(c) for c in curves)))
            if not frames:
                continue
            est = stats.curve([[c[fr] for fr in frames] for c in curves], statistic, reps=reps, seed=seed)
            lines[(recipe, evaluator)] = [Point(fr, float(v), float(lo), float(hi), est.n)
                                          for fr, v, lo, hi in zip(frames, est.value, est.low, est.high)]
    return lines


def draw(ax, lines: dict[tuple[str, str], list[Point]], label_recipe: bool = True) -> None:
    """One line per (recipe, evaluator) on the matplotlib axes ``ax``, its interval shaded; ``optimal`` dashed."""
    for (recipe, evaluator), points in sorted(lines.items()):
        frames = [p.frames for p in points]
        name = f"{recipe}: {evaluator}" if label_recipe else evaluator
        if evaluator == "optimal":
            ax.plot(frames, [p.value for p in points], "k--", linewidth=1, label=name)
            continue
        (line,) = ax.plot(frames, [p.value for p in points], label=f"{name} (n={points[-1].seeds})")
        ax.fill_between(frames, [p.low for p in points], [p.high for p in points], color=line.get_color(), alpha=0.2,
                        linewidth=0)
    ax.set_xlabel("env frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def plot(lines: dict[tuple[str, str], list[Point]], out: Path, title: str | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    draw(ax, lines)
    ax.set_ylabel("eval return (mean over seeds, 95% bootstrap interval)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    png = out / "curves.png"
    fig.savefig(png)
    plt.close(fig)

    table = ["| recipe | evaluator | frames | mean return | 95% interval | seeds |", "|---|---|---|---|---|---|"]
    for (recipe, evaluator), points in sorted(lines.items()):
        p = points[-1]
        interval = f"[{p.low:.2f}, {p.high:.2f}]"
        table.append(f"| {recipe} | {evaluator} | {p.frames} | {p.value:.2f} | {interval} | {p.seeds} |")
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
