"""T1 smoke for FrameCheckpoint: the schedule in env frames, atomic writes (an interrupted write
leaves the previous checkpoint intact), and a clear error for a truncated checkpoint."""

import pytest
import torch

from callbacks import FrameCheckpoint
from tests.smoke.test_recipes import fit

CKPT = ["--checkpoint.every_frames=50", "--checkpoint.keep=2", "--eval.every_frames=0"]


def checkpoint_callback(cli) -> FrameCheckpoint:
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, FrameCheckpoint)]
    return cb


def test_checkpoints_every_n_frames_keep_the_newest_and_last(in_tmp):
    cli = fit("sac_pendulum", *CKPT)
    folder = checkpoint_callback(cli).directory(cli.trainer)
    assert sorted(p.name for p in folder.iterdir()) == ["frames=150.ckpt", "frames=200.ckpt", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=False)
    assert last["loop_counters"]["frames"] == 200
    assert torch.load(folder / "frames=150.ckpt", weights_only=False)["loop_counters"]["frames"] == 150


def test_an_interrupted_write_leaves_the_previous_checkpoint_intact(in_tmp, monkeypatch):
    cli = fit("sac_pendulum", *CKPT)
    cb = checkpoint_callback(cli)
    last = cb.directory(cli.trainer) / "last.ckpt"
    good = last.read_bytes()

    def crash(path, *args, **kwargs):  # half a file, then the process dies
        path.write_bytes(good[: len(good) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.trainer, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        cb.save(cli.trainer, cli.model, "frames=250.ckpt")
    assert last.read_bytes() == good
    assert not (last.parent / "frames=250.ckpt").exists()


def test_a_truncated_checkpoint_is_a_clear_error(in_tmp, capsys):
    cli = fit("sac_pendulum", *CKPT)
    last = checkpoint_callback(cli).directory(cli.trainer) / "last.ckpt"
    broken = last.with_name("broken.ckpt")
    broken.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(SystemExit) as exc:
        fit("sac_pendulum", f"--ckpt_path={broken}")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "is not a readable checkpoint" in err and "broken.ckpt" in err


def test_checkpoint_holds_the_filled_replay_and_the_runtime_and_restores_it(in_tmp):
    from lightning_mbrl import keys

    cli = fit("sac_pendulum", *CKPT)
    last = checkpoint_callback(cli).directory(cli.trainer) / "last.ckpt"
    saved = torch.load(last, weights_only=True)  # plain tensors: LightningCLI's own load accepts them
    (state,) = saved["rank_states"]  # one rank
    replay = state["replay"]
    obs = replay["data"][keys.OBSERVATION]
    assert replay["size"] == 200 and obs.shape == (200, 3)  # the frames collected, not the capacity of 1000
    assert obs.untyped_storage().nbytes() == 200 * 3 * 4  # a copy, not a view of the preallocated storage
    assert replay["writer"]["_cursor"] == 200
    # storage order = collection order here (no wrap-around): consecutive transitions chain
    nxt = replay["data"]["next"][keys.OBSERVATION]
    torch.testing.assert_close(obs[1:50], nxt[:49])
    assert set(state) == {"replay", "env", "collector", "rng"}
    # the carrier holds what the next frame starts from: the 50-step episode ended at frame 200, so a reset
    assert bool(replay["data"]["next"]["truncated"][-1]) and int(state["collector"]["carrier"]["step_count"]) == 0

    # the restore path: a module given the checkpoint refills its real replay when a fit starts
    import pytorch_lightning as pl

    from lightning_mbrl.algos.sac import SAC

    seen = {}

    class Probe(pl.Callback):
        def on_train_batch_start(self, trainer, module, *args):
            seen.setdefault("buffer_at_start", len(module.runtime.buffer))

    module = SAC("Pendulum-v1", max_frames=260, init_random_frames=100, batch_size=32, buffer_size=1000,
                 hidden=(32, 32))
    module.on_load_checkpoint(torch.load(last, weights_only=False))
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               callbacks=[Probe()]).fit(module)
    assert seen["buffer_at_start"] == 200
    assert module.frames == 260 and module.runtime is None


def test_fit_with_ckpt_path_continues_the_run(in_tmp):
    """Resume from the frames=150 checkpoint of a 200-frame run (LightningCLI takes the run's
    hyperparameters from the checkpoint): the remaining 50 frames and 50 updates follow."""
    cli = fit("sac_pendulum", *CKPT)
    mid = checkpoint_callback(cli).directory(cli.trainer) / "frames=150.ckpt"
    resumed = fit("sac_pendulum", *CKPT, f"--ckpt_path={mid}")
    m = resumed.model
    (cb,) = [c for c in resumed.trainer.callbacks if isinstance(c, FrameCheckpoint)]
    end = torch.load(cb.directory(resumed.trainer) / "last.ckpt", weights_only=True)
    assert end["rank_states"][0]["replay"]["size"] == 200  # 150 restored + 50 collected after resuming
    assert (m.frames, m.updates) == (200, 100)  # 100 random + 50 updated frames before, 50 after
    critic_opt = resumed.trainer.optimizers[m.optimizer_names.index("critic")]
    assert {int(s["step"]) for s in critic_opt.state.values()} == {100}  # Adam state continued, not restarted


def test_a_checkpoint_of_another_recipe_is_refused_unless_ckpt_recipe_any(in_tmp, capsys):
    import importlib
    import pathlib

    from tests.conftest import TINY

    cli = fit("sac_pendulum", *CKPT)
    mid = checkpoint_callback(cli).directory(cli.trainer) / "frames=150.ckpt"
    assert torch.load(mid, weights_only=True)["run"] == {"recipe": "sac_pendulum",
                                                         "algorithm": "lightning_mbrl.algos.sac.SAC"}

    def main(recipe, *args):
        return importlib.import_module(f"recipes.{recipe}").main(["fit", "--config", TINY, *CKPT, *args])

    def refused(recipe, *args):
        with pytest.raises(SystemExit) as exc:
            main(recipe, *args)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2 and "Traceback" not in err
        return err.splitlines()[-1]

    line = refused("sac_humanoid", f"--ckpt_path={mid}")
    assert "is a checkpoint of recipe sac_pendulum (SAC on Pendulum-v1), not of recipe sac_humanoid " \
           "(SAC on Humanoid-v5)" in line and "--ckpt_recipe any" in line
    line = refused("mbpo_hopper", f"--ckpt_path={mid}", "--ckpt_recipe=any")  # another algorithm: never
    assert "recipe sac_pendulum (SAC on Pendulum-v1), but recipe mbpo_hopper (MBPO on Hopper-v5) is another " \
           "algorithm" in line
    # a checkpoint that does not record its recipe (written before it was recorded): its env decides
    old = in_tmp / "old.ckpt"
    ckpt = torch.load(mid, weights_only=True)
    del ckpt["run"]
    torch.save(ckpt, old)
    line = refused("sac_humanoid", f"--ckpt_path={old}")
    assert "is a checkpoint of SAC on Pendulum-v1, not of recipe sac_humanoid" in line
    line = refused("mbpo_hopper", f"--ckpt_path={old}", "--ckpt_recipe=any")
    assert "MBPO on Hopper-v5) is another algorithm" in line

    # --ckpt_recipe any: the checkpoint's env and hyperparameters, under this recipe's run folder
    taken = main("sac_humanoid", f"--ckpt_path={mid}", "--ckpt_recipe=any")
    assert taken.model.hparams.env == "Pendulum-v1" and taken.model.frames == 200
    assert pathlib.Path(taken.trainer.log_dir).resolve() == (in_tmp / "runs" / "sac_humanoid" / "version_0").resolve()
