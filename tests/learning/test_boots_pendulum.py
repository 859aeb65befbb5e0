"""T2 learning (slow): BOOTS (k = 4) on top of a deliberately small SAC improves the evaluation
return on Pendulum-v1, averaged over 3 seeds (Dong et al. 2020, Figure 4's claim in miniature).

Setup: SAC with 16 x 16 networks trained for 8,000 frames (1,000 random); SAC needs ~4k frames with
256 x 256 networks to swing up reliably, the small one is still far from it. Every 2,000 frames the
plain deterministic policy and BOOTS-SAC (CEM over the policy's noise, 500 candidates, 5 iterations;
the callback fits its own SLBO model on the real transitions with Pendulum's known reward) each run
the same 10 evaluation starts. The claim: averaged over the 3 seeds and the 4 evaluations, the BOOTS
return exceeds the policy's by at least 100 (Pendulum returns span -1500 .. -120; the curves are
printed).
"""

import csv
import pathlib

import pytest

import recipes.sac_pendulum as recipe

MARGIN = 100.0


def curve(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_boots_improves_a_small_sac_on_pendulum(in_tmp, precision_args):
    policy, boots = [], []
    for seed in range(3):
        cli = recipe.main([
            "fit", *precision_args, f"--model.seed={seed}", "--model.hidden=[16, 16]", "--model.max_frames=8000",
            "--model.init_random_frames=1000", "--eval.every_frames=2000", "--eval.episodes=10",
            "--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=2000",
            "--trainer.callbacks.episodes=10", "--trainer.callbacks.own_model_steps=3000",
            "--trainer.enable_progress_bar=false", "--trainer.enable_checkpointing=false",
        ])
        with open(pathlib.Path(cli.trainer.loggers[0].log_dir) / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        policy += curve(rows, "eval/return")
        boots += curve(rows, "eval/boots/return")
        print(f"seed {seed}: policy {[round(r) for r in curve(rows, 'eval/return')]}  "
              f"BOOTS k=4 {[round(r) for r in curve(rows, 'eval/boots/return')]}  "
              f"own model loss {[round(r, 3) for r in curve(rows, 'eval/boots/own_model_loss')]}")
    assert len(policy) == len(boots) == 12
    mean_policy, mean_boots = sum(policy) / 12, sum(boots) / 12
    print(f"mean: policy {mean_policy:.0f}  BOOTS {mean_boots:.0f}")
    assert mean_boots >= mean_policy + MARGIN
