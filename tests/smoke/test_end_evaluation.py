"""T1 smoke: every evaluator (PolicyEval, BootsEval, MPCEval, VideoEval, OptimalReturn) also runs
once when training ends, before the final checkpoint, and never twice at the same frame count; and
``recipes/tiny.yaml`` runs a recipe's own evaluators (its ``trainer.callbacks``) with tiny settings."""

import time

import pytest
import torch

from callbacks import BootsEval, MPCEval, PolicyEval, VideoEval
from tests.smoke.test_recipes import fit, metrics_rows

SMALL_PLANNER = ["--trainer.callbacks.episodes=1", "--trainer.callbacks.horizon=2",
                 "--trainer.callbacks.n_candidates=8", "--trainer.callbacks.n_elites=2",
                 "--trainer.callbacks.n_iters=1"]


def evaluators(every: int) -> list[str]:
    return [f"--eval.every_frames={every}",
            "--trainer.callbacks+=callbacks.BootsEval", f"--trainer.callbacks.every_frames={every}", *SMALL_PLANNER,
            "--trainer.callbacks+=callbacks.MPCEval", f"--trainer.callbacks.every_frames={every}", *SMALL_PLANNER,
            "--trainer.callbacks+=callbacks.VideoEval", f"--trainer.callbacks.every_frames={every}",
            "--trainer.callbacks.format=gif", "--trainer.callbacks.width=32", "--trainer.callbacks.height=32"]


def logged_at(rows, key):
    return [int(float(r["step"])) for r in rows if r.get(key)]


@pytest.mark.parametrize("every, expected", [
    (1_000, [200]),  # longer than the run (200 frames): once, at the end
    (100, [100, 200]),  # divides the run: no second evaluation at 200
])
def test_every_evaluator_runs_once_at_the_end(every, expected, in_tmp):
    cli = fit("mbsac_halfcheetah", "--model.updates_per_frame=1", "--model.max_episode_steps=5", *evaluators(every))
    rows = metrics_rows(cli)
    for key in ("eval/return", "eval/boots/return", "eval/mpc/return",
                "video/policy/return", "video/boots/return", "video/mpc/return"):
        assert logged_at(rows, key) == expected, key
    by_type = {type(c): c for c in cli.trainer.callbacks}
    assert [by_type[cls].calls for cls in (PolicyEval, BootsEval, MPCEval, VideoEval)] == [len(expected)] * 4
    # The end evaluation ran before FrameCheckpoint's final checkpoint, which holds its count.
    (last,) = in_tmp.glob("runs/mbsac_halfcheetah/*/checkpoints/last.ckpt")
    saved = torch.load(last, weights_only=True)
    assert saved["loop_counters"]["frames"] == 200
    assert saved["callbacks"][by_type[BootsEval].state_key]["calls"] == len(expected)


def test_tiny_overlay_runs_a_recipes_evaluators_small_and_at_the_end(in_tmp):
    """mbsac_humanoid.yaml adds BootsEval every 50k frames with 5 episodes of 500-candidate CEM; under
    tiny.yaml (200 frames) it runs once, at the end, with tiny.yaml's callback_limits."""
    started = time.perf_counter()
    cli = fit("mbsac_humanoid")
    elapsed = time.perf_counter() - started
    (boots,) = [c for c in cli.trainer.callbacks if isinstance(c, BootsEval)]
    assert (boots.every_frames, boots.episodes, boots.planner_args["horizon"]) == (50_000, 2, 4)
    assert {k: boots.planner_args[k] for k in ("n_candidates", "n_iters", "n_elites")} == \
        {"n_candidates": 16, "n_iters": 2, "n_elites": 4}
    rows = metrics_rows(cli)
    for key in ("eval/boots/return", "eval/boots/return_std", "eval/boots/episode_length"):
        assert logged_at(rows, key) == [200], key
    assert elapsed < 120  # seconds: ~10 on 2 CPU cores; 500 candidates x 5 episodes took minutes


def test_tiny_overlay_runs_optimal_return_and_five_boots_evaluators_at_the_end(in_tmp):
    cli = fit("dqn_pwl")  # OptimalReturn and BOOTS k = 0..4 (100 episodes each) every 10k frames
    rows = metrics_rows(cli)
    assert logged_at(rows, "eval/optimal_return") == [200]
    for k in range(5):
        assert logged_at(rows, f"eval/boots_k{k}/return") == [200]
    assert {c.episodes for c in cli.trainer.callbacks if isinstance(c, BootsEval)} == {2}


def test_unknown_callback_limit_is_a_one_line_error(in_tmp, capsys):
    with pytest.raises(SystemExit) as exc:
        fit("sac_pendulum", "--callback_limits={n_candidatez: 3}")
    assert exc.value.code == 2
    assert "callback_limits: 'n_candidatez' is not an argument of any callback" in capsys.readouterr().err
