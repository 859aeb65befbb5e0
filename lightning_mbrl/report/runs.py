"""Reading the RUN_DIRs: run folders (``metrics.csv``, ``hparams.yaml``, the runner's marker) and benchmark
results."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from lightning_mbrl import plot




REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
MARKER = "reproduce.json"  # what benchmarks.reproduce writes into each run folder it makes
SCALES = ("reduced", "paper")


@dataclass
class Run:
    """One run folder: its recipe, seed, evaluation curves, the last env frame it logged and its budget."""

    path: Path
    recipe: str
    seed: str
    curves: plot.Curves
    frames: int
    max_frames: int | None
    commits: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    def state(self) -> str:
        """``"3,000 of 5,000 frames"`` (or ``"3,000 frames"`` when the budget is unknown)."""
        return f"{self.frames:,} of {self.max_frames:,} frames" if self.max_frames else f"{self.frames:,} frames"


@dataclass
class Result:
    """One benchmark result (a JSON object with a ``"benchmark"`` key)."""

    path: Path
    benchmark: str
    variant: str | None
    data: dict
    commits: tuple[str, ...]


@dataclass
class Found:
    """Everything the RUN_DIRs hold: ``runs[recipe]`` (one run per seed) and ``results[benchmark]``."""

    runs: dict[str, list[Run]] = field(default_factory=dict)
    results: dict[str, list[Result]] = field(default_factory=dict)

    def count(self) -> tuple[int, int]:
        return sum(map(len, self.runs.values())), sum(map(len, self.results.values()))


def last_frame(run: Path) -> int:
    """The largest env frame count (``step``) in a run's ``metrics.csv``; 0 if none (a cut last row is skipped)."""
    path = run / "metrics.csv"
    if not path.is_file():
        return 0
    frames = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = plot._number(row.get("step"))
            frames = max(frames, step) if step is not None else frames
    return frames


def _marker_commits(data: dict) -> tuple[str, ...]:
    commits = data.get("commits") or ([data["commit"]] if data.get("commit") else [])
    return tuple(str(c) for c in commits)


def read_run(path: Path) -> Run:
    hparams = {}
    if (path / "hparams.yaml").is_file():
        try:
            hparams = yaml.safe_load((path / "hparams.yaml").read_text()) or {}
        except yaml.YAMLError:
            hparams = {}
    marker = {}
    if (path / MARKER).is_file():
        try:
            marker = json.loads((path / MARKER).read_text())
        except json.JSONDecodeError:
            marker = {}
    max_frames = hparams.get("max_frames")
    return Run(path=path, recipe=plot.recipe_of(path),
               seed=str(hparams["seed"]) if "seed" in hparams else path.name,
               curves=plot.read_run(path), frames=last_frame(path),
               max_frames=int(max_frames) if isinstance(max_frames, (int, float)) else None,
               commits=_marker_commits(marker))


def read_result(path: Path) -> Result | None:
    """A benchmark result, or ``None`` for a JSON file that is not one (or is still being written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("benchmark"), str):
        return None
    return Result(path, data["benchmark"], data.get("variant"), data, _marker_commits(data))


def discover(paths: Sequence[Path]) -> Found:
    """The runs and benchmark results at or below each path. A path that does not exist, or a file that is
    neither a ``metrics.csv`` nor a benchmark JSON, is a ``FileNotFoundError`` naming it."""
    run_paths: dict[Path, Path] = {}
    results: dict[Path, Result] = {}
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if path.is_file():
            if path.name == "metrics.csv":
                run_paths.setdefault(path.parent.resolve(), path.parent)
            elif path.suffix == ".json" and (result := read_result(path)) is not None:
                results.setdefault(path.resolve(), result)
            else:
                raise FileNotFoundError(f"{path}: neither a run folder's metrics.csv nor a benchmark result "
                                        "(a JSON object with a \"benchmark\" key)")
            continue
        for metrics in sorted(path.rglob("metrics.csv")):
            run_paths.setdefault(metrics.parent.resolve(), metrics.parent)
        for candidate in sorted(path.rglob("*.json")):
            if candidate.name != MARKER and (result := read_result(candidate)) is not None:
                results.setdefault(candidate.resolve(), result)
    found = Found()
    by_seed: dict[tuple[str, str], Run] = {}
    for run_path in run_paths.values():
        run = read_run(run_path)
        key = (run.recipe, run.seed)
        if key not in by_seed or run.frames > by_seed[key].frames:
            by_seed[key] = run
    for (recipe, _), run in sorted(by_seed.items()):
        found.runs.setdefault(recipe, []).append(run)
    for result in results.values():
        found.results.setdefault(result.benchmark, []).append(result)
    return found
