"""How each claim's runs are made, at the reduced and paper scales, and what they cost."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightning_mbrl.precision import default_precision

from lightning_mbrl.report.runs import RESULTS, SCALES


@dataclass(frozen=True)
class Cost:
    """What the cost estimate of one seed needs: the loop's kind (``mbpo``, ``sac``, ``mbsac``, or
    ``cartpole_loop``: paper 003's CartPole loop of agent ``loop`` as timed whole), its updates per frame after
    ``random_frames``, and BOOTS evaluations of Humanoid size (``boots_evals`` x ``boots_episodes``
    episodes of 1,000 steps)."""

    kind: str
    updates_per_frame: int
    random_frames: int
    boots_evals: int = 0
    boots_episodes: int = 0
    loop: str = ""  # kind "cartpole_loop": the agent whose measured CartPole loop (omd_update.json) it is
    precision: str = ""  # the runs' --trainer.precision when the job sets it ("": the recipes' default here)


@dataclass(frozen=True)
class Job:
    """How the runs of one recipe (the folder the runs go to, ``name``) are made, per scale.

    A recipe job runs ``python -m <module> fit <args> --model.seed N`` for ``seeds[scale]`` seeds, each for
    ``frames[scale]`` env frames; a benchmark job runs ``python -m <module> <variant args>`` once per entry
    of ``variants`` and keeps its JSON output. A scale missing from ``args`` means the job has none."""

    name: str
    module: str
    args: dict[str, tuple[str, ...]]
    seeds: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    variants: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    cost: dict[str, Cost] = field(default_factory=dict)
    checkpoint_every: int = 0  # frames between checkpoints of the runner's runs (0: the recipe's default)
    # per scale, variants whose result is committed in benchmarks/results (file name): made by the variant's
    # command outside the runner, it is what the report reads, so the runner counts the variant as done
    committed: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def is_benchmark(self) -> bool:
        return bool(self.variants)

    def committed_result(self, scale: str, unit: str) -> Path | None:
        """The committed ``benchmarks/results`` file that variant ``unit`` at ``scale`` made, if any."""
        name = self.committed.get(scale, {}).get(unit)
        return None if name is None else RESULTS / name

    def units(self, scale: str) -> list[str]:
        """The runs of this job at ``scale``: ``seed_N`` folders or variant names."""
        if scale not in self.args:
            return []
        return list(self.variants[scale]) if self.is_benchmark else [f"seed_{s}" for s in range(self.seeds[scale])]

    def command(self, scale: str, unit: str, root: Path | None = None) -> list[str]:
        """The argv (after ``python``) of one run; with ``root``, placed in ``root/<name>/<unit>`` as the runner
        places it (checkpoints on, no progress bar)."""
        if self.is_benchmark:
            return ["-m", self.module, *self.args[scale], *self.variants[scale][unit]]
        argv = ["-m", self.module, "fit", *self.args[scale], f"--model.seed={unit.removeprefix('seed_')}"]
        if root is not None:
            argv += [f"--trainer.default_root_dir={root / self.name}", f"--trainer.logger.init_args.version={unit}",
                     "--trainer.enable_progress_bar=false"]
            if self.checkpoint_every:
                argv.append(f"--checkpoint.every_frames={self.checkpoint_every}")
        return argv

    def display(self, scale: str, unit: str, root: Path | None = None) -> str:
        return shlex.join(["python", *self.command(scale, unit, root)])


_IP_EVAL = ("--eval.every_frames=250", "--eval.episodes=10")
_DQN_REDUCED = (  # tests/learning/test_boots_dqn_pwl.py's protocol, with the optimum logged and k = 3 named
    "--model.max_frames=30000", "--eval.every_frames=30000", "--eval.episodes=200", "--trainer.callbacks=[]",
    "--trainer.callbacks+=callbacks.OptimalReturn", "--trainer.callbacks.every_frames=30000",
    "--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=30000",
    "--trainer.callbacks.episodes=200", "--trainer.callbacks.horizon=3", "--trainer.callbacks.name=boots_k3",
)
_BOOTS_PENDULUM = (  # tests/learning/test_boots_pendulum.py's protocol
    "--model.hidden=[16, 16]", "--model.max_frames=8000", "--model.init_random_frames=1000",
    "--eval.every_frames=2000", "--eval.episodes=10", "--trainer.callbacks+=callbacks.BootsEval",
    "--trainer.callbacks.every_frames=2000", "--trainer.callbacks.episodes=10",
    "--trainer.callbacks.own_model_steps=3000",
)
_PWL = "lightning_mbrl.envs.piecewise_linear"
_DEF41 = {f"H={h}": ("solve", "--method", "def41", "--H", str(h)) for h in range(4, 7)}  # the theorem's H > 3
_PIECE_STATS = {m: ("stats", "--method", m, "--n", "1000", "--horizon", "10", "--seed", "0")
                for m in ("rand", "semi-rand")}

JOBS: tuple[Job, ...] = (
    Job("pwl_def41", _PWL, {"reduced": (), "paper": ()}, variants={"reduced": _DEF41, "paper": _DEF41}),
    Job("pwl_stats", _PWL, {"reduced": (), "paper": ()}, variants={"reduced": _PIECE_STATS, "paper": _PIECE_STATS}),
    # docs/generalization.md: All- and No-Evaluation at 2,000 Q updates, Path-to-Goal and Single-Cell at 5,000;
    # each also with the paper's 30 seeds (the claims read the result with the most seeds)
    Job("generalization_3x3", "benchmarks.generalization_3x3", {"reduced": (), "paper": ()},
        variants={"reduced": {
            "seeds10_2000": ("--seeds", "10", "--updates", "2000", "--only", "all_evaluation", "no_evaluation",
                             "--timing_updates", "0", "--stdout"),
            "seeds10_5000": ("--seeds", "10", "--updates", "5000", "--only", "path_to_goal", "single_cell",
                             "--timing_updates", "0", "--stdout"),
            "seeds30_path_to_goal": ("--seeds", "30", "--updates", "5000", "--only", "path_to_goal",
                                     "--timing_updates", "0", "--stdout"),
            "seeds30_2000": ("--seeds", "30", "--updates", "2000", "--only", "all_evaluation", "no_evaluation",
                             "--timing_updates", "0", "--stdout"),
            "seeds30_single_cell": ("--seeds", "30", "--updates", "5000", "--only", "single_cell",
                                    "--timing_updates", "0", "--stdout")},
                  "paper": {"seeds30": ("--seeds", "30", "--updates", "1000000", "--timing_updates", "0", "--stdout")}},
        committed={"reduced": {"seeds10_2000": "generalization_3x3.json", "seeds10_5000": "generalization_3x3.json",
                               **{v: "generalization_3x3_seeds30.json"
                                  for v in ("seeds30_path_to_goal", "seeds30_2000", "seeds30_single_cell")}}}),
    Job("maac_gradient_error", "benchmarks.maac_gradient_error", {"reduced": (), "paper": ()},
        variants={s: {"seeds5": ("--seeds", "5", "--stdout")} for s in SCALES},
        committed={s: {"seeds5": "maac_gradient_error.json"} for s in SCALES}),
    Job("generalization_online", "benchmarks.generalization_online", {"reduced": ()},
        variants={"reduced": {
            "panflute6_high": ("--envs", "gridworld/panflute-6", "--agents", "er", "simple", "perfect", "gaussian",
                               "--regime", "high", "--steps", "10000", "--seeds", "5", "--stdout"),
            "procmaze3_low": ("--envs", "gridworld/procmaze-3", "--agents", "er", "simple", "perfect", "--regime",
                              "low", "--steps", "1500", "--learning_starts", "500", "--seeds", "5", "--stdout"),
            # the instance picked by an ER-only probe (4 seeds, 1.5k low-data steps): ER on ButtonGrid 3-2 rose
            # from the random rate, on 4-3 it had not moved (docs/generalization.md)
            "buttongrid3_low": ("--envs", "gridworld/buttongrid-3-2", "--agents", "er", "simple", "perfect",
                                "--regime", "low", "--steps", "1500", "--learning_starts", "500", "--seeds", "5",
                                "--stdout")}},
        committed={"reduced": {v: "generalization_online.json" for v in ("panflute6_high", "procmaze3_low")}}),
    Job("panflute_frozen_model", "benchmarks.panflute_frozen_model", {"reduced": ()},
        variants={"reduced": {"pipes5": ("--stdout",)}},
        committed={"reduced": {"pipes5": "panflute_frozen_model.json"}}),
    Job("panflute_smoothing", "benchmarks.panflute_smoothing", {"reduced": (), "paper": ()},
        variants={"reduced": {"seeds10": ("--seeds", "10", "--stdout")},
                  "paper": {"seeds30": ("--seeds", "30", "--stdout")}},
        committed={"reduced": {"seeds10": "panflute_smoothing.json"}}),
    Job("sac_pendulum_boots", "recipes.sac_pendulum", {"reduced": _BOOTS_PENDULUM, "paper": _BOOTS_PENDULUM},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 8_000, "paper": 8_000}, checkpoint_every=2_000),
    # tests/learning/test_mbpo_invertedpendulum.py's protocol; SAC is the plain SAC there (sac_pendulum's YAML
    # holds SAC's defaults but for the env, budget, warm-up and evaluation, all given here)
    Job("mbpo_invertedpendulum", "recipes.mbpo_invertedpendulum",
        {s: ("--model.max_frames=5000", *_IP_EVAL) for s in SCALES},
        seeds={"reduced": 5, "paper": 5}, frames={"reduced": 5_000, "paper": 5_000}, checkpoint_every=1_000),
    # tests/learning/test_maac_invertedpendulum.py's protocol: MAAC to 3k frames, MPC evaluated at the end
    Job("maac_invertedpendulum", "recipes.maac_invertedpendulum",
        {s: ("--model.max_frames=3000", *_IP_EVAL, "--trainer.callbacks+=callbacks.MPCEval",
             "--trainer.callbacks.every_frames=3000", "--trainer.callbacks.episodes=10") for s in SCALES},
        seeds={"reduced": 3, "paper": 3}, frames={"reduced": 3_000, "paper": 3_000}, checkpoint_every=1_000),
    Job("sac_invertedpendulum", "recipes.sac_pendulum",
        {s: ("--model.env=InvertedPendulum-v5", "--model.max_frames=15000", "--model.init_random_frames=500",
             *_IP_EVAL) for s in SCALES},
        seeds={"reduced": 5, "paper": 5}, frames={"reduced": 15_000, "paper": 15_000}, checkpoint_every=2_500),
    Job("dqn_pwl", "recipes.dqn_pwl", {"reduced": _DQN_REDUCED, "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 30_000, "paper": 50_000}, checkpoint_every=10_000),
    # the recipe is the code's schedule (5k random frames, then 200 x 1,000; MPC every 50k); on the CPU one seed
    # to 15k frames, evaluated every 1,000 (5 episodes)
    Job("maac_halfcheetah", "recipes.maac_halfcheetah",
        {"reduced": ("--model.max_frames=15000", "--eval.every_frames=1000", "--eval.episodes=5"), "paper": ()},
        seeds={"reduced": 1, "paper": 4}, frames={"reduced": 15_000, "paper": 205_000}, checkpoint_every=1_000,
        cost={s: Cost("maac", 8, 5_000) for s in SCALES}),
    Job("mbpo_hopper", "recipes.mbpo_hopper", {"reduced": ("--model.max_frames=15000",), "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 15_000, "paper": 125_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 20, 5_000), "paper": Cost("mbpo", 20, 5_000)}),
    # the same in 32-true (the recipe's default is bf16-mixed on a CPU with bf16 units): issue 20's MuJoCo curve in
    # both precisions, drawn by benchmarks.precision_curve; no claim reads it
    Job("mbpo_hopper_fp32", "recipes.mbpo_hopper",
        {"reduced": ("--model.max_frames=15000", "--trainer.precision=32-true")},
        seeds={"reduced": 1}, frames={"reduced": 15_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 20, 5_000, precision="32-true")}),
    Job("mbpo_halfcheetah", "recipes.mbpo_halfcheetah", {"reduced": ("--model.max_frames=10000",), "paper": ()},
        seeds={"reduced": 3, "paper": 5}, frames={"reduced": 10_000, "paper": 400_000}, checkpoint_every=5_000,
        cost={"reduced": Cost("mbpo", 40, 5_000), "paper": Cost("mbpo", 40, 5_000)}),
    # BOOTS at 50k frames only on the CPU (5 episodes, the recipe's); the paper's schedule on a GPU
    Job("mbsac_humanoid", "recipes.mbsac_humanoid",
        {"reduced": ("--model.max_frames=50000",),
         "paper": ("--trainer.callbacks.every_frames=10000", "--trainer.callbacks.episodes=10")},
        seeds={"reduced": 2, "paper": 5}, frames={"reduced": 50_000, "paper": 400_000}, checkpoint_every=10_000,
        cost={"reduced": Cost("mbsac", 1, 10_000, boots_evals=1, boots_episodes=5),
              "paper": Cost("mbsac", 1, 10_000, boots_evals=40, boots_episodes=10)}),
    # tests/learning/test_omd_cartpole.py's protocol (the test builds its runs from these jobs), at the code's
    # inner learning rate 3e-4 and at 1e-3 (the paper sweeps 3e-4, 1e-3, 3e-3); paper scale: the paper's 200k
    # frames and 10 seeds (the claims read the same 40k-60k window)
    *(Job(f"{agent}_cartpole_h3{suffix}", f"recipes.{agent}_cartpole",
          {s: ("--model.model_hidden=3", f"--model.q_lr={q_lr}", f"--model.max_frames={frames}",
               "--eval.every_frames=5000", "--eval.episodes=10")
              for s, frames in (("reduced", 60_000), ("paper", 200_000))},
          seeds={"reduced": 5, "paper": 10}, frames={"reduced": 60_000, "paper": 200_000}, checkpoint_every=20_000,
          cost={s: Cost("cartpole_loop", 1, 1_000, loop=agent) for s in SCALES})
      for q_lr, suffix in (("3e-4", ""), ("1e-3", "_qlr1e-3")) for agent in ("omd", "mle")),
    Job("omd_tabular", "benchmarks.omd_tabular", {"reduced": (), "paper": ()},
        variants={"reduced": {"seeds10": ("--stdout",)}, "paper": {"seeds10": ("--stdout",)}},
        committed={s: {"seeds10": "omd_tabular.json"} for s in SCALES}),
)
JOBS_BY_NAME = {job.name: job for job in JOBS}

# Assumptions of the GPU estimates (no GPU timing is in benchmarks/results yet): one SAC update of 2 x 256
# networks at batch 256 is launch-bound on a GPU at about 2 ms in eager PyTorch; model fits, rollouts and
# planners (batched GEMMs) run about 10x faster than on the 2-core CPU.
GPU_UPDATE_MS = 2.0
GPU_SPEEDUP = 10.0
# MBSAC has no loop benchmark: README/docs/mbsac.md put 400k Humanoid frames at ~4 hours of training on the
# 2-core CPU, ~36 ms a frame, of which one SAC update.
MBSAC_CPU_MS_PER_FRAME = 36.0


def _load(name: str) -> dict:
    try:
        return json.loads((RESULTS / name).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def estimate_cost(cost: Cost, frames: int) -> tuple[float, float, str] | None:
    """``(cpu_hours, gpu_hours, basis)`` of one seed, from ``benchmarks/results`` timings (``None`` without them).
    CPU: the 2-core development machine; GPU: the CPU parts scaled by the assumptions above. Estimates only."""
    bf16 = (cost.precision or default_precision()) == "bf16-mixed"  # the runs' precision on this machine
    mbpo_file = "mbpo_loop_bf16.json" if bf16 and _load("mbpo_loop_bf16.json") else "mbpo_loop.json"
    mbpo = _load(mbpo_file)
    sac, planners = _load("sac_update.json"), _load("planners.json")
    sac_key = "library_bf16-mixed_ms" if bf16 else "library_32-true_ms"
    policy_frames = max(frames - cost.random_frames, 0)
    updates = cost.updates_per_frame * policy_frames
    if cost.kind == "mbpo":
        if not mbpo:
            return None
        per_1000 = mbpo["in_loop_s_per_1000_frames"]
        window = mbpo["window"]
        update_s = per_1000["sac_updates"] / (window["sac_updates"] * 1000 / window["frames"])  # per 1,000 frames
        other_s = (mbpo["whole_s_per_1000_frames"] - per_1000["sac_updates"]) * policy_frames / 1000
        cpu, gpu = updates * update_s + other_s, updates * GPU_UPDATE_MS / 1000 + other_s / GPU_SPEEDUP
        basis = (f"{mbpo_file}: {update_s * 1000:.1f} ms/update, "
                 f"{other_s / policy_frames * 1000:.0f} s/1k frames else")
    elif cost.kind == "mbsac":
        if not sac:
            return None
        update_s = next(u.get(sac_key, u.get("library_ms")) for u in sac["updates"] if u["hidden"] == 256) / 1000
        other_s = (MBSAC_CPU_MS_PER_FRAME / 1000 - update_s) * policy_frames
        cpu, gpu = updates * update_s + other_s, updates * GPU_UPDATE_MS / 1000 + other_s / GPU_SPEEDUP
        basis = f"sac_update.json {update_s * 1000:.1f} ms/update; {MBSAC_CPU_MS_PER_FRAME:.0f} ms/frame (README)"
    elif cost.kind == "sac":
        if not sac:
            return None
        update_s = next(u.get(sac_key, u.get("library_ms")) for u in sac["updates"] if u["hidden"] == 256) / 1000
        cpu, gpu = updates * update_s, updates * GPU_UPDATE_MS / 1000
        basis = f"sac_update.json: {update_s * 1000:.1f} ms/update"
    elif cost.kind == "maac":
        update = _load("maac_update.json").get("update")
        if not update:
            return None
        update_s = update["maac_ms"] / 1000
        cpu = updates * update_s
        gpu = updates * GPU_UPDATE_MS * update["maac_over_sac"] / 1000  # launch-bound: ~ops, as SAC's ratio
        basis = (f"maac_update.json: {update['maac_ms']:.0f} ms/update, updates only (model fits and rollouts not "
                 f"counted); GPU update assumed {update['maac_over_sac']:.1f}x SAC's")
    elif cost.kind == "cartpole_loop":
        loop = _load("omd_update.json").get("cartpole_loop", {}).get(cost.loop)
        if not loop:
            return None
        cpu = loop["ms_per_frame"] * policy_frames / 1000 + loop["random_frames_s"]
        gpu = cpu  # networks of 3-32 units: launch-bound, no faster on a GPU (an assumption, not measured)
        basis = (f"omd_update.json: the {cost.loop} CartPole loop {loop['ms_per_frame']:.1f} ms/frame; "
                 "GPU assumed no faster")
    else:
        raise ValueError(f"unknown cost kind {cost.kind!r}")
    if cost.boots_evals:
        case = planners.get("cases", {}).get("boots/humanoid/E10")
        if case is None:
            return None
        boots_s = cost.boots_evals * 1000 * case["ms_per_action"] / 1000 * cost.boots_episodes / 10
        cpu, gpu = cpu + boots_s, gpu + boots_s / GPU_SPEEDUP
        basis += f"; planners.json BOOTS {case['ms_per_action'] / 1000:.1f} s/step for 10 Humanoid episodes"
    return cpu / 3600, gpu / 3600, basis


def paper_scale_jobs() -> list[Job]:
    """The jobs whose paper-scale runs are longer than (or absent from) the reduced scale."""
    return [job for job in JOBS if not job.is_benchmark and "paper" in job.args and (
        "reduced" not in job.args or job.frames["paper"] > job.frames["reduced"]
        or job.args["paper"] != job.args["reduced"])]
