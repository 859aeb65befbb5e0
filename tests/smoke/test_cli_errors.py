"""Bad input ends the CLI with one line naming the field and what is allowed (exit code 2)."""

import subprocess
import sys

import pytest
import torch

import recipes.sac_pendulum as recipe
from tests.conftest import ROOT, TINY


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        recipe.main(["fit", "--config", TINY, *args])
    err = capsys.readouterr().err
    return exc.value.code, err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model.env", "Foo-v0"], ["unknown env id 'Foo-v0'", "HalfCheetah-v5"]),
        (["--model.env", "CartPole-v1"], ["CartPole-v1", "discrete", "continuous"]),
        (["--model.max_frames", "-1"], ["model.max_frames must be a positive int, got -1"]),
        (["--model.batch_size", "0"], ["batch_size must be a positive"]),
        (["--model.init_random_frames", "-3"], ["init_random_frames must be an int >= 0"]),
        (["--model.updates_per_frame", "0"], ["updates_per_frame must be a positive int"]),
        (["--model.max_frames", "99", "--model.frames_per_iteration", "10"], ["multiple of frames_per_iteration"]),
        (["--model.gamma", "1.5"], ["gamma must be a number in [0, 1], got 1.5"]),
        (["--eval.episodes", "0"], ["eval.episodes must be >= 1"]),
        (["--model.bogus", "1"], ["unrecognized arguments: --model.bogus"]),
        (["--trainer.precision", "bf16-true"],
         ["trainer.precision must be one of ['32-true', 'bf16-mixed', '64-true'], got 'bf16-true'"]),
        (["--trainer.precision", "fp8"], ["precision", "fp8"]),
    ],
)
def test_bad_value_gives_one_clear_line(capsys, in_tmp, args, expected):
    code, err = run_cli(capsys, *args)
    assert code == 2
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    for fragment in expected:
        assert fragment in last


def test_malformed_yaml_and_unknown_yaml_key(capsys, in_tmp):
    (in_tmp / "bad.yaml").write_text("model:\n  max_frames: [1, 2\n")
    code, err = run_cli(capsys, "--config", "bad.yaml")
    assert code == 2 and "Traceback" not in err and "Problems parsing config" in err
    (in_tmp / "unknown.yaml").write_text("model:\n  hidden_size: 3\n")
    code, err = run_cli(capsys, "--config", "unknown.yaml")
    assert code == 2 and "Traceback" not in err and "hidden_size" in err


def test_entry_point_process_exit_code(in_tmp):
    """The real `python -m recipes.X fit` process: exit 2 and the message on stderr, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "recipes.sac_pendulum", "fit", "--model.env", "Nope-v0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown env id 'Nope-v0'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is about a GPU this machine lacks; it has one")
def test_an_accelerator_this_machine_lacks_is_one_line(capsys, in_tmp):
    code, err = run_cli(capsys, "--trainer.accelerator", "gpu")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: --trainer.accelerator gpu: no CUDA or MPS GPU on this machine (available: cpu); use cpu or auto")


def test_other_trainer_flag_checks_are_one_line_and_real_bugs_keep_their_traceback(capsys, in_tmp):
    code, err = run_cli(capsys, "--trainer.accelerator", "cpu", "--trainer.devices", "0")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: --trainer flags: Trainer(devices='0') value is not a valid")
    code, err = run_cli(capsys, "--trainer.strategy", "nonsense")
    assert code == 2 and "invalid strategy name: strategy='nonsense'" in err.strip().splitlines()[-1]

    from lightning_mbrl import cli

    def bug():
        raise ValueError("a bug in our own code")

    try:
        bug()
    except ValueError as err:
        assert not cli._is_trainer_flag_check(err)  # not raised by Lightning's flag checks: not turned into a line
