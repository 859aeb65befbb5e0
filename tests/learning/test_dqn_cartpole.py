"""T2 learning (slow): DQN on CartPole-v1 reaches a mean greedy return of 195 within the recipe's
50,000 frames in 3 of 3 seeds.

Why this threshold is meaningful: a uniform random policy scores about 22 and a policy that does
not balance the pole scores below 50; 195 (CartPole-v0's "solved" level, the v1 limit is 500)
averaged over 10 greedy episodes needs a policy that balances for about 200 steps from most
starts. During tuning the recipe's settings crossed 195 within 2,500-7,500 frames in every seed
tried, so requiring it of every seed within the 20 evaluations of a 50k budget catches real
regressions (a wrong target, mask, argmax or exploration schedule) with a wide margin.

Runtime: a run stops at the first evaluation at or above the threshold (``StopAtThreshold``), so a
seed takes under a minute on one CPU thread instead of the ~3 minutes of the full budget.
"""

import csv
import pathlib

import pytest
import pytorch_lightning as pl

import recipes.dqn_cartpole as recipe
from callbacks.evaluation import PolicyEval

THRESHOLD = 195.0


class StopAtThreshold(pl.Callback):
    """Ends training after the first evaluation whose mean return reaches ``THRESHOLD``."""

    def on_train_batch_end(self, trainer, module, *args):
        (evaluator,) = [c for c in trainer.callbacks if isinstance(c, PolicyEval)]
        if evaluator.calls and evaluator.last_return >= THRESHOLD:
            trainer.should_stop = True


def eval_curve(cli) -> list[tuple[int, float]]:
    path = pathlib.Path(cli.trainer.loggers[0].log_dir) / "metrics.csv"
    with open(path) as f:
        return [(int(float(r["step"])), float(r["eval/return"])) for r in csv.DictReader(f) if r.get("eval/return")]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dqn_cartpole_reaches_threshold(seed, in_tmp, precision_args):
    cli = recipe.main(["fit", *precision_args, f"--model.seed={seed}", "--trainer.enable_progress_bar=false",
                       "--trainer.enable_checkpointing=false",
                       "--trainer.callbacks+=tests.learning.test_dqn_cartpole.StopAtThreshold"])
    curve = eval_curve(cli)
    print(f"seed {seed}: " + ", ".join(f"{f}:{r:.0f}" for f, r in curve))
    assert cli.model.hparams.max_frames == 50_000 and cli.model.frames <= 50_000
    assert [f for f, _ in curve] == list(range(2500, cli.model.frames + 1, 2500))  # 10-episode evals
    assert max(r for _, r in curve) >= THRESHOLD
