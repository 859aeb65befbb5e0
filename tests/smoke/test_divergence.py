"""T1 smoke: a diverging run stops with one line naming the quantity and the frame, and leaves the
last good checkpoint as the newest one (``callbacks.DivergenceGuard``, on by default)."""

import math

import pytest
import torch

from tests.smoke.test_recipes import fit

RUN = ["--model.max_frames=300", "--checkpoint.every_frames=100", "--eval.every_frames=0"]


def last_checkpoint(root):
    (last,) = root.glob("runs/sac_pendulum/version_*/checkpoints/last.ckpt")
    return torch.load(last, weights_only=True)


def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(in_tmp, capsys):
    with pytest.raises(SystemExit) as stop:
        fit("sac_pendulum", *RUN, "--trainer.callbacks+=tests.helpers.InjectAt", "--trainer.callbacks.frames=150")
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    # rows every 10 iterations (tiny): the NaN critic weight is put in at frame 150 and found at 160
    assert err.startswith("error: training diverged at frame 160: train/loss_critic is nan"), err
    assert "last good checkpoint:" in err and "frame 100" in err and "Traceback" not in err
    saved = last_checkpoint(in_tmp)
    assert saved["loop_counters"]["frames"] == 100  # the diverged state was never saved
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())


def test_a_nan_parameter_is_named_before_any_loss_shows_it(in_tmp, capsys):
    """A NaN put into the target critics after frame 300's updates: the row logged at frame 300 is
    finite, the parameters are not, and the checkpoint due at frame 300 is not written."""
    with pytest.raises(SystemExit):
        fit("sac_pendulum", *RUN, "--model.max_frames=400", "--trainer.callbacks+=tests.helpers.InjectAt",
            "--trainer.callbacks.frames=300", "--trainer.callbacks.module=critic_target",
            "--trainer.callbacks.at_end=true")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: training diverged at frame 300: parameter or buffer critic_target."), err
    assert "is not finite" in err and "frame 200" in err
    assert last_checkpoint(in_tmp)["loop_counters"]["frames"] == 200


@pytest.mark.parametrize("action", ["stop", "warn"])
def test_an_exploding_loss_stops_or_warns_by_choice(action, in_tmp, capsys):
    args = [*RUN, "--divergence.loss_growth=100", f"--divergence.on_growth={action}",
            "--trainer.callbacks+=tests.helpers.InjectAt", "--trainer.callbacks.frames=170",
            "--trainer.callbacks.what=explode", "--trainer.callbacks.factor=30"]
    if action == "stop":
        with pytest.raises(SystemExit) as stop:
            fit("sac_pendulum", *args)
        assert stop.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: training diverged at frame 180: train/loss_critic grew to"), err
        assert "divergence.loss_growth 100" in err
        assert last_checkpoint(in_tmp)["loop_counters"]["frames"] == 100
    else:
        with pytest.warns(UserWarning, match=r"frame 180: train/loss_critic grew to"):
            cli = fit("sac_pendulum", *args)
        assert cli.model.frames == 300  # warned and went on
        (guard,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "DivergenceGuard"]
        assert guard.warnings >= 1


def test_without_loss_growth_an_explosion_is_not_a_stop(in_tmp):
    cli = fit("sac_pendulum", *RUN, "--trainer.callbacks+=tests.helpers.InjectAt", "--trainer.callbacks.frames=170",
              "--trainer.callbacks.what=explode", "--trainer.callbacks.factor=30")
    assert cli.model.frames == 300 and math.isfinite(cli.model.last_episode_return)
