"""Before/after timing of a change: benchmarks of a base commit and of the working tree, back to back.

    python -m benchmarks.before_after --base 0aaee0d sac_update world_model planners
    python -m benchmarks.before_after --summarize /tmp/benchres     # only re-read saved runs

The base commit is checked out in a temporary git worktree; each repetition runs every named
benchmark first at the base, then here (``python -m benchmarks.<name>`` with its defaults, on an
otherwise idle machine: do not run anything else meanwhile), keeping each side's results JSON as
``<name>.<before|after>.<rep>.json`` in ``--out``. The summary (``benchmarks/results/before_after.json``)
gives, for the headline time of each benchmark, both sides' median over the repetitions and
their ratio (after / before; above 1 is slower).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import write

ROOT = Path(__file__).resolve().parent.parent


def headline_times(name: str, result: dict) -> dict[str, float]:
    """The times a benchmark is judged by (seconds or milliseconds, lower is better)."""
    if name == "sac_update":
        return {f"update_ms/hidden{u['hidden']}/{p}": u[key] for u in result["updates"]
                for p, key in (("fp32", "library_32-true_ms"), ("bf16", "library_bf16-mixed_ms"), ("fp32", "library_ms"))
                if key in u}
    if name == "world_model":
        return {
            "train_epoch_s": result["train_epoch"]["seconds"],
            "rollout_100k_s": result["rollout"]["seconds"],
            "model_step_100k_s": result["rollout"]["model_step_seconds"],
        }
    if name == "planners":
        return {f"{c}_ms_per_action": v["ms_per_action"] for c, v in flat_cases(result["cases"]).items()}
    raise ValueError(f"no headline times for benchmark {name!r}")


def flat_cases(cases: dict, prefix: str = "") -> dict[str, dict]:
    out = {}
    for key, value in cases.items():
        if isinstance(value, dict) and "ms_per_action" in value:
            out[prefix + key] = value
        elif isinstance(value, dict):
            out.update(flat_cases(value, f"{prefix}{key}/"))
    return out


def run(base: str, names: list[str], reps: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix="before_")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), base], check=True)
    try:
        for rep in range(1, reps + 1):
            for name in names:
                for side, where in (("before", tree), ("after", ROOT)):
                    result = where / "benchmarks" / "results" / f"{name}.json"
                    saved = result.read_bytes() if result.exists() else None
                    subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=where, check=True,
                                   stdout=subprocess.DEVNULL)
                    shutil.copy(result, out / f"{name}.{side}.{rep}.json")
                    if saved is not None:  # leave the committed results as they were
                        result.write_bytes(saved)
                    print(f"{name} {side} rep {rep} done", flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def summarize(out: Path, base: str | None) -> dict:
    table: dict[str, dict] = {}
    for path in sorted(out.glob("*.before.*.json")):
        name = path.name.split(".")[0]
        if name in table:
            continue
        sides = {}
        for side in ("before", "after"):
            runs = [json.loads(p.read_text()) for p in sorted(out.glob(f"{name}.{side}.*.json"))]
            times = [headline_times(name, r) for r in runs]
            sides[side] = {k: statistics.median(t[k] for t in times) for k in times[0]}
            sides[f"{side}_commit"] = runs[0].get("commit")
            sides["repetitions"] = len(runs)
        table[name] = {
            key: {"before": sides["before"][key], "after": sides["after"][key],
                  "after_over_before": sides["after"][key] / sides["before"][key]}
            for key in sides["before"]
        } | {"commits": [sides["before_commit"], sides["after_commit"]], "repetitions": sides["repetitions"]}
    return {"base": base, "benchmarks": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=["sac_update", "world_model", "planners"])
    parser.add_argument("--base", help="the commit to compare against")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "before_after")
    parser.add_argument("--summarize", type=Path, help="only summarise the runs saved in this folder")
    args = parser.parse_args()
    if args.summarize is None:
        if not args.base:
            parser.error("--base is required unless --summarize is given")
        run(args.base, args.names, args.reps, args.out)
    summary = summarize(args.summarize or args.out, args.base)
    for name, rows in summary["benchmarks"].items():
        for key, row in rows.items():
            if isinstance(row, dict):
                print(f"{name:12s} {key:40s} {row['before']:10.4f} {row['after']:10.4f}  x{row['after_over_before']:.3f}")
    write("before_after", summary)


if __name__ == "__main__":
    main()
