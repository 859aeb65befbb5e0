"""T1 smoke: the OMD / MLE / VEP CartPole recipes with the misspecification flags of paper 003's Figure 4
(``--model.model_hidden``, ``--model.distractors``) and the CG inverse, under the tiny overlay; and a
run with distractors killed and resumed continues exactly (the distractors' generator is in the
checkpoint). Every recipe's plain tiny run is in test_recipes.py."""

import pytest
import torch

from lightning_mbrl import keys
from tests.smoke import test_resume
from tests.smoke.test_recipes import eval_callback, fit, metrics_rows


@pytest.mark.parametrize("recipe, flags", [
    ("omd_cartpole", ["--model.model_hidden=1"]),
    ("omd_cartpole", ["--model.distractors=16", "--model.approx=cg"]),
    ("mle_cartpole", ["--model.distractors=16"]),
])
def test_misspecified_recipes_fit_with_the_tiny_overlay(recipe, flags, in_tmp, monkeypatch):
    seen = {}
    from lightning_mbrl.algos.omd import OMD

    on_fit_end = OMD.on_fit_end

    def keep_observations(self):
        seen["obs"] = self.runtime.buffer[:][keys.OBSERVATION]
        on_fit_end(self)

    monkeypatch.setattr(OMD, "on_fit_end", keep_observations)
    cli = fit(recipe, *flags)
    agent = cli.model
    assert agent.frames == 200 and agent.updates == 100 and agent.q_steps == 100
    assert eval_callback(cli).calls == 2
    width = 4 + agent.hparams.distractors
    assert seen["obs"].shape == (200, width) and agent.world_model.dynamics[-1].out_features == width
    assert agent.world_model.dynamics[0].out_features == agent.hparams.model_hidden
    rows = metrics_rows(cli)
    logged = {name for r in rows for name, value in r.items() if value}
    assert {"train/loss_q", "train/loss_outer", "train/next_observation_mse"} <= logged
    if "--model.approx=cg" in flags:
        assert "train/cg_iterations" in logged
    if agent.hparams.distractors:
        noise = seen["obs"][:, 4:]
        assert abs(float(noise.mean())) < 0.05 and abs(float(noise.std()) - 1) < 0.05


def test_killed_and_resumed_run_with_distractors_matches_the_uninterrupted_run(tmp_path, monkeypatch):
    recipe = "omd_cartpole"
    monkeypatch.setitem(test_resume.CASES, recipe, ["--model.distractors", "8"])
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    straight.mkdir(), broken.mkdir()
    done = test_resume.run(recipe, straight)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = test_resume.run(recipe, broken, "--trainer.callbacks+=tests.helpers.KillAt",
                             f"--trainer.callbacks.frames={test_resume.KILL_AT}")
    assert killed.returncode == -9, killed.stderr[-3000:]
    saved = torch.load(broken / "runs" / recipe / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = saved["rank_states"]
    assert state["distractors"] is not None and saved["loop_counters"]["q_steps"] == test_resume.CHECKPOINT_AT - 100
    resumed = test_resume.run(recipe, broken, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = test_resume.rows_after(straight / "runs" / recipe / "version_0" / "metrics.csv", test_resume.CHECKPOINT_AT)
    got = test_resume.rows_after(broken / "runs" / recipe / "version_0" / "metrics.csv", test_resume.CHECKPOINT_AT)
    assert {"train/loss_q", "train/loss_outer", "eval/return"} <= {c for _, c in expected}
    assert got.keys() == expected.keys()
    mismatched = sorted(k for k in expected if got[k] != expected[k])
    assert not mismatched, [(k, expected[k], got[k]) for k in mismatched[:10]]


@pytest.mark.parametrize("flag, message", [
    ("--model.model_loss=bogus", "error: model.model_loss must be one of ['omd', 'mle', 'vep'], got bogus"),
    ("--model.model_hidden=0", "error: model.model_hidden must be a positive int, got 0"),
    ("--model.distractors=-3", "error: model.distractors must be an int >= 0, got -3"),
])
def test_bad_flags_end_with_one_line_naming_the_field(flag, message, capsys):
    import recipes.omd_cartpole as recipe

    with pytest.raises(SystemExit) as exc:
        recipe.main(["fit", flag, "--print_config"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message  # (a warning may precede it)
