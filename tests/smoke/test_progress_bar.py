"""T1 smoke: the recipes' progress bar (``callbacks.FrameProgressBar``, the CLI's default) counts env
frames with a recent rate and ETA, shows the long phases (model pretraining, model fits,
evaluations) as a second bar, and ``--trainer.enable_progress_bar false`` still turns it off."""

import re

import pytest
from pytorch_lightning.callbacks import ProgressBar

from callbacks import FrameProgressBar
from lightning_mbrl import progress
from tests.smoke.test_recipes import fit


@pytest.mark.parametrize("recipe, extra, phase", [
    # model_pretrain_iters defaults to init_random_frames (100)
    ("mbsac_halfcheetah", ["--model.updates_per_frame=1"], "model pretraining 0/100"),
    ("mbpo_invertedpendulum", ["--model.rollout_batch_size=500", "--model.max_model_epochs=2"], "model fit 0/2"),
])
def test_progress_bar_counts_frames_and_shows_phases(recipe, extra, phase, in_tmp, capsys):
    cli = fit(recipe, "--trainer.enable_progress_bar=true", *extra)
    assert isinstance(cli.trainer.progress_bar_callback, FrameProgressBar)
    err = capsys.readouterr().err
    assert re.search(r"frames 200/200 100%\|.*\| \[[0-9:]+, [0-9.,]+ frames/s, ETA 0:00, episodes=\d+", err)
    assert phase in err
    assert "eval policy 0/50" in err  # tiny.yaml: 50-step episodes
    assert "Epoch 0" not in err and "it/s" not in err
    assert progress._sink is None  # the bar stops listening when the fit ends


def test_enable_progress_bar_false_turns_it_off(in_tmp, capsys):
    cli = fit("sac_pendulum", "--trainer.enable_progress_bar=false")
    assert cli.trainer.progress_bar_callback is None
    assert not any(isinstance(c, ProgressBar) for c in cli.trainer.callbacks)
    assert "frames 200/200" not in capsys.readouterr().err
