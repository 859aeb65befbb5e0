"""T1 smoke: every recipe fits with the tiny overlay, and the loop's accounting is exact."""

import csv
import importlib
import pathlib

import pytest

from tests.conftest import ROOT, TINY

ALL_RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.py") if p.stem != "__init__")
#: Recipes of modules that train S seeds as one run (paper 001): their own tiny overlay and smoke test
#: (tests/smoke/test_generalization.py); the rest run the frame-budgeted loop.
SEEDED = [r for r in ALL_RECIPES if getattr(importlib.import_module(f"recipes.{r}"), "SEEDED", False)]
RECIPES = [r for r in ALL_RECIPES if r not in SEEDED]


def fit(recipe: str, *extra: str):
    module = importlib.import_module(f"recipes.{recipe}")
    return module.main(["fit", "--config", TINY, *extra])


def eval_callback(cli):
    from callbacks.evaluation import PolicyEval

    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, PolicyEval)]
    return cb


def metrics_rows(cli):
    path = pathlib.Path(cli.trainer.loggers[0].log_dir) / "metrics.csv"
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_recipe_is_collected():
    assert {"sac_pendulum", "sac_halfcheetah", "sac_humanoid"} <= set(RECIPES)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_fits_with_tiny_overlay(recipe, precision, in_tmp):
    cli = fit(recipe, f"--trainer.precision={precision}")
    assert str(cli.trainer.precision) == precision
    model = cli.model
    hp = model.hparams
    assert (hp.max_frames, hp.init_random_frames) == (200, 100)
    assert model.frames == 200
    assert model.runtime is None  # runtime objects released at the end of fit
    assert model.updates == hp.updates_per_frame * (hp.max_frames - hp.init_random_frames)
    assert eval_callback(cli).calls == 2
    rows = metrics_rows(cli)
    eval_frames = [int(float(r["step"])) for r in rows if r.get("eval/return")]
    assert eval_frames == [100, 200]
    assert any(value for r in rows for name, value in r.items() if name.startswith("train/loss_"))


@pytest.mark.parametrize("fpi,G", [(1, 1), (5, 3)])
def test_loop_accounting_is_exact(fpi, G, in_tmp):
    """frames, iterations, buffer size, optimizer steps and eval calls all follow the schedule."""
    cli = fit(
        "sac_pendulum",
        f"--model.frames_per_iteration={fpi}", f"--model.updates_per_frame={G}",
        "--model.max_frames=150", "--model.init_random_frames=50", "--eval.every_frames=60",
    )
    model = cli.model
    expected_updates = G * (150 - 50)
    assert model.frames == 150
    assert model.iterations == 150 // fpi
    assert model.updates == expected_updates
    # Ground truth from the optimizers themselves: Adam counts its own steps.
    for opt in cli.trainer.optimizers:
        steps = {int(s["step"]) for s in opt.state.values()}
        assert steps == {expected_updates}
    # Evaluations at the first iteration end at or past each multiple of 60 frames, and at the end.
    assert eval_callback(cli).calls == 3
    rows = metrics_rows(cli)
    eval_frames = [int(float(r["step"])) for r in rows if r.get("eval/return")]
    assert eval_frames == [60, 120, 150]


def test_warmup_frames_are_random_and_not_followed_by_updates(in_tmp, monkeypatch):
    """The 99 warm-up actions are uniform on the action box, drawn without consulting the policy;
    the policy acts for the one frame after them."""
    import torch

    from lightning_mbrl import keys
    from lightning_mbrl.algos.sac import SAC

    # frames collected before each call of the policy during collection (not the collector's probe
    # call when it is built); the real replay at the end
    policy_calls, seen = [], {"collecting": False}
    act, collect, on_fit_end = SAC.act, SAC.collect, SAC.on_fit_end

    def recording_act(self, observation, deterministic=False):
        if seen["collecting"]:
            policy_calls.append((self.frames, deterministic))
        return act(self, observation, deterministic)

    def recording_collect(self):
        seen["collecting"] = True
        try:
            return collect(self)
        finally:
            seen["collecting"] = False

    def keep_the_replay(self):
        seen["data"] = self.runtime.buffer[:]
        on_fit_end(self)

    monkeypatch.setattr(SAC, "act", recording_act)
    monkeypatch.setattr(SAC, "collect", recording_collect)
    monkeypatch.setattr(SAC, "on_fit_end", keep_the_replay)
    cli = fit("sac_pendulum", "--model.max_frames=100", "--model.init_random_frames=99", "--eval.every_frames=0")
    assert cli.model.updates == 1  # only the single policy frame is followed by (G=1) updates
    assert policy_calls == [(99, False)]  # the (sampling) policy acted for the 100th frame only
    data = seen["data"]
    assert data.shape == (100,)
    warmup, obs = data[keys.ACTION][:99, 0], data[keys.OBSERVATION][:99]
    # uniform on [-1, 1]: inside the box, reaching both ends, about a quarter in each quarter of it
    assert warmup.abs().max() <= 1 and warmup.min() < -0.9 and warmup.max() > 0.9
    quarters = torch.histc(warmup, bins=4, min=-1.0, max=1.0)
    assert quarters.min() >= 15 and quarters.max() <= 35, quarters
    # not the policy's: its deterministic action stays near tanh(0) at initialisation, far from these
    with torch.no_grad():
        mode = cli.model.actor.mode(obs)[:, 0]
    assert (warmup - mode).abs().mean() > 0.3


def test_module_trains_outside_the_cli_and_buffer_keeps_truncations(in_tmp):
    """A plain Trainer works too. The buffer holds every frame once; the 50-step time limit is
    stored as truncated (bootstrap kept), never as terminated."""
    import pytorch_lightning as pl

    from lightning_mbrl import keys
    from lightning_mbrl.algos.sac import SAC

    seen = {}

    class Capture(pl.Callback):
        def on_train_end(self, trainer, module):
            seen["data"] = module.runtime.buffer[:]

    model = SAC("Pendulum-v1", max_frames=120, init_random_frames=60, batch_size=16, hidden=(16, 16),
                buffer_size=500, max_episode_steps=50)
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[Capture()])
    trainer.fit(model)
    data = seen["data"]
    assert data.shape == (120,)
    truncated = data[keys.TRUNCATED].squeeze(-1)
    assert truncated.nonzero().squeeze(-1).tolist() == [49, 99]
    assert not data[keys.TERMINATED].any()
    assert model.episodes == 2
    # consecutive frames chain: next observation of t is the observation of t + 1 within an episode
    same = (data[keys.NEXT_OBSERVATION][:-1] == data[keys.OBSERVATION][1:]).all(-1)
    assert same[~truncated[:-1]].all() and not same[truncated[:-1]].any()


def test_print_config_works(capsys):
    import recipes.sac_humanoid as recipe

    with pytest.raises(SystemExit) as exc:
        recipe.main(["fit", "--print_config"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "env: Humanoid-v5" in out and "max_frames: 10000000" in out and "every_frames: 5000" in out


def test_checkpoint_holds_no_runtime_objects_and_reloads(in_tmp):
    """The module's state dict has the networks only (the env, collector and buffer are runtime objects
    outside the module tree; the runtime's snapshot is separate, under ``rank_states``); a reloaded module
    acts exactly like the trained one."""
    import torch

    from lightning_mbrl.algos.sac import SAC

    cli = fit("sac_pendulum")
    (path,) = pathlib.Path(cli.trainer.log_dir).rglob("*.ckpt")  # the checkpoint section's last.ckpt
    ckpt = torch.load(path, weights_only=False)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"actor", "critic", "critic_target", "log_alpha"}
    assert ckpt["loop_counters"]["frames"] == 200 and ckpt["loop_counters"]["updates"] == 100
    reloaded = SAC.load_from_checkpoint(path)
    assert reloaded.frames == 200
    obs = torch.randn(8, 3)
    torch.testing.assert_close(reloaded.act(obs, deterministic=True), cli.model.act(obs, deterministic=True))


def test_a_named_version_is_one_folder_for_both_loggers(in_tmp):
    """``--trainer.logger.init_args.version`` reaches only the last of the two default loggers; the CLI
    gives the name to both, so metrics, config, events and checkpoints share one run folder."""
    cli = fit("sac_pendulum", "--trainer.logger.init_args.version=ablation_a")
    run = in_tmp / "runs" / "sac_pendulum" / "ablation_a"
    assert [pathlib.Path(lg.log_dir).resolve() for lg in cli.trainer.loggers] == [run.resolve()] * 2
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file() and list(run.glob("events.out.*"))
    assert not list(run.parent.glob("version_*"))
