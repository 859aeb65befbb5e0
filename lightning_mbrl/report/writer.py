"""Judging the claims and writing the report: the table, the figures, the paper-scale section, the CLI."""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_mbrl import plot, stats

from lightning_mbrl.report.runs import Found, REPO, Run, discover
from lightning_mbrl.report.measures import Measured
from lightning_mbrl.report.claims import CLAIMS, Claim, PAPERS
from lightning_mbrl.report.jobs import GPU_SPEEDUP, GPU_UPDATE_MS, estimate_cost, paper_scale_jobs

DESCRIPTION = "Reproduction report: every paper's claims, measured from runs, with 95% intervals."


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


def write_report(paths: Sequence[Path], out: Path, *, claims: Sequence[Claim] = CLAIMS, reps: int = stats.REPS,
                 seed: int = stats.SEED, head: Callable[[], str | None] = git_commit) -> tuple[Path, list[Row]]:
    found = discover(paths)
    rows = evaluate(found, claims, reps=reps, seed=seed, head=head)
    return render(found, rows, out, paths, reps=reps, seed=seed), rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightning_mbrl.report", description=DESCRIPTION)
    parser.add_argument("runs", nargs="*", type=Path,
                        help="run folders or folders above them (e.g. benchmarks/results/reproduce), "
                             "benchmark JSON files")
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

