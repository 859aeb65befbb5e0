"""T1 smoke for DQN: the recipe fits with the tiny overlay, the update and target-copy accounting is
exact, the replay holds integer actions, and a checkpoint restores the counters."""

import pathlib

import pytest
import pytorch_lightning as pl
import torch

from lightning_mbrl import keys
from tests.smoke.test_recipes import fit, metrics_rows


class CaptureReplay(pl.Callback):
    """Copies the real replay buffer at the end of training (the runtime is released after fit)."""

    def on_train_end(self, trainer, module):
        self.data = module.runtime.buffer[:]


def captured(cli) -> CaptureReplay:
    (cb,) = [c for c in cli.trainer.callbacks if isinstance(c, CaptureReplay)]
    return cb


@pytest.mark.parametrize("every, G", [(25, 1), (30, 2)])
def test_dqn_recipe_accounting_and_integer_replay(every, G, in_tmp):
    cli = fit("dqn_cartpole", f"--model.target_update_every={every}", f"--model.updates_per_frame={G}",
              "--trainer.callbacks+=tests.smoke.test_dqn.CaptureReplay")
    model = cli.model
    updates = G * (200 - 100)
    assert model.frames == 200 and model.updates == updates
    (opt,) = cli.trainer.optimizers
    assert {int(s["step"]) for s in opt.state.values()} == {updates}  # Adam counts its own steps
    assert model.target_updates == updates // every
    # After the last copy the online network moved on only if updates is not a multiple of every.
    in_sync = all(torch.equal(p, p_t) for p, p_t in zip(model.q_net.parameters(), model.target_net.parameters()))
    assert in_sync == (updates % every == 0)

    data = captured(cli).data
    assert data.shape == (200,)
    action = data[keys.ACTION]
    assert action.dtype == torch.int64 and action.shape == (200,)
    assert set(action.unique().tolist()) == {0, 1}
    assert data[keys.TERMINATED].any()  # a (near-)random policy drops the pole within 200 frames

    rows = metrics_rows(cli)
    logged = [r for r in rows if r.get("train/loss_q")]
    assert logged and all(r.get("train/q_mean") and r.get("train/epsilon") for r in logged)
    assert 0.05 < float(logged[-1]["train/epsilon"]) < 1.0


def test_dqn_polyak_softmax_mse_variant(in_tmp):
    cli = fit("dqn_cartpole", "--model.tau=0.01", "--model.exploration=softmax", "--model.loss=mse",
              "--model.double=false", "--model.max_grad_norm=null", "--model.hidden=[8, 8, 8]",
              "--model.frames_per_iteration=10")
    model = cli.model
    assert model.updates == 100 and model.target_updates == 100  # a Polyak step after every update
    rows = metrics_rows(cli)
    assert any(r.get("train/loss_q") for r in rows)
    assert not any(r.get("train/epsilon") for r in rows)  # only logged for epsilon-greedy


def test_dqn_checkpoint_restores_networks_and_counters(in_tmp):
    from lightning_mbrl.algos.dqn import DQN

    cli = fit("dqn_cartpole", "--model.target_update_every=40")
    (path,) = pathlib.Path(cli.trainer.log_dir).rglob("*.ckpt")  # the checkpoint section's last.ckpt
    ckpt = torch.load(path, weights_only=False)
    assert {k.split(".")[0] for k in ckpt["state_dict"]} == {"q_net", "target_net"}
    assert ckpt["loop_counters"]["updates"] == 100 and ckpt["loop_counters"]["target_updates"] == 2
    reloaded = DQN.load_from_checkpoint(path)
    assert (reloaded.frames, reloaded.updates, reloaded.target_updates) == (200, 100, 2)
    assert reloaded.epsilon == cli.model.epsilon
    obs = torch.randn(16, 4)
    assert torch.equal(reloaded.act(obs, deterministic=True), cli.model.act(obs, deterministic=True))
    for p, p_t in zip(reloaded.target_net.parameters(), cli.model.target_net.parameters()):
        assert torch.equal(p, p_t) and not p.requires_grad
