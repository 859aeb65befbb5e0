"""T2 learning (slow): MAAC on InvertedPendulum-v5 (known reward and termination) reaches 950 within
3,000 env frames, in at most a third of the frames SAC needs on the same seed, and test-time MPC on the
trained policy does not lower its return (paper 004, Table 1's direction); 3 seeds.

Protocol: the MBPO learning test's (``test_mbpo_invertedpendulum.py``): both agents start from 500
random frames and are evaluated every 250 frames with 10 deterministic episodes (maximum return
1000). SAC runs to 3x the frames MAAC needed on the same seed (at most 9,000): the claim is only that
it has not reached 950 by then. MAAC runs ``recipes/maac_invertedpendulum`` (the MAAC code's values, and MBPO's for what that
sweep lacks: 500 random frames, epochs of 250 frames, Polyak after every update; target entropy
-|A| as in the MAAC code, since MBPO's -0.05 made the temperature run away, docs/maac.md), with ``callbacks.MPCEval`` (CEM seeded
by the policy on MAAC's ensemble, terminal min-Q) on the same 10 evaluation starts at 3,000 frames.

The statistical argument: a 3x ratio on every seed. Measured: MAAC seed 0 at 1,750 frames; SAC
needs 10,250-12,250 on seeds 0-2 (the MBPO test), so each seed passes with a margin near 2x over
the 3x bar, while a MAAC that learns at SAC's pace fails every seed. Across the 3 seeds, all MAAC
runs below all SAC runs has exact one-sided Mann-Whitney p = 1 / C(6, 3) = 0.05. MPC: its mean
return at 3,000 frames must be at least the policy's minus 10 (one episode failing early costs
~100 of a 10-episode mean).
"""

import csv
import pathlib

import pytest

import recipes.maac_invertedpendulum as maac_recipe
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.cli import run_recipe

THRESHOLD = 950.0
MAAC_FRAMES = 3_000
MPC_TOLERANCE = 10.0
COMMON = ["--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
          "--eval.every_frames=250", "--eval.episodes=10"]


def curve_of(cli, key: str = "eval/return") -> list[tuple[int, float]]:
    with open(pathlib.Path(cli.trainer.loggers[0].log_dir) / "metrics.csv") as f:
        return [(int(float(r["step"])), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


def frames_to_threshold(curve: list[tuple[int, float]]) -> int | None:
    return next((frame for frame, ret in curve if ret >= THRESHOLD), None)


@pytest.mark.slow
@pytest.mark.timeout(5400)  # a seed (MAAC 3k frames with MPC, then SAC <= 9k) takes ~25 min alone on a core
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maac_beats_threshold_and_sac_and_mpc_keeps_the_return(seed, in_tmp, precision_args):
    maac = maac_recipe.main([
        "fit", *precision_args, f"--model.seed={seed}", f"--model.max_frames={MAAC_FRAMES}", *COMMON,
        "--trainer.callbacks+=callbacks.MPCEval", f"--trainer.callbacks.every_frames={MAAC_FRAMES}",
        "--trainer.callbacks.episodes=10",
    ])
    maac_curve, mpc_curve = curve_of(maac), curve_of(maac, "eval/mpc/return")
    maac_hit = frames_to_threshold(maac_curve)
    assert maac_hit is not None and maac_hit <= MAAC_FRAMES, f"MAAC never reached {THRESHOLD}: {maac_curve}"
    # SAC only has to be shown not to reach the threshold before 3x MAAC's frames: it runs that far.
    sac = run_recipe(SAC, None, ["fit", *precision_args, "--model.env=InvertedPendulum-v5", f"--model.seed={seed}",
                                 f"--model.max_frames={3 * maac_hit}", "--model.init_random_frames=500", *COMMON])
    sac_curve = curve_of(sac)
    sac_hit = frames_to_threshold(sac_curve)
    policy_final = dict(maac_curve)[MAAC_FRAMES]
    mpc_final = dict(mpc_curve)[MAAC_FRAMES]
    print(f"\nseed {seed}: MAAC reaches {THRESHOLD:.0f} at {maac_hit} frames, SAC at {sac_hit}; at {MAAC_FRAMES} "
          f"frames the policy returns {policy_final:.0f}, MPC {mpc_final:.0f}")
    print("  MAAC " + ", ".join(f"{f}:{r:.0f}" for f, r in maac_curve))
    print("  SAC  " + ", ".join(f"{f}:{r:.0f}" for f, r in sac_curve))
    assert maac.model.updates == 8 * (MAAC_FRAMES - 500)
    assert sac_hit is None or sac_hit >= 3 * maac_hit, f"SAC reached {THRESHOLD} at {sac_hit} frames"
    assert mpc_final >= policy_final - MPC_TOLERANCE
