"""T1 smoke: MAAC's loop (paper 004; algos/maac.py) against its schedule: G updates per policy frame,
target critics Polyak-stepped exactly every ``target_update_every`` updates, one model fit per
``model_train_freq`` frames, and the ablations' flags (H = 0, no STEVE, one value action) running."""

import pytest
import pytorch_lightning as pl
import torch

from lightning_mbrl.algos.maac import MAAC

TINY = dict(max_frames=300, init_random_frames=100, batch_size=32, hidden=(16, 16), model_hidden=(16, 16),
            ensemble_size=4, num_elites=4, max_model_epochs=2, rollout_batch_size=200, model_train_freq=100,
            updates_per_frame=3, epoch_length=100)


class TargetWatch(MAAC):
    """Records, per update, whether the target critics moved."""

    def update(self, batch):
        before = [p.detach().clone() for p in self.critic_target.parameters()]
        out = super().update(batch)
        self.target_moved.append(any(not torch.equal(a, b) for a, b in zip(before, self.critic_target.parameters())))
        return out


def fit(cls=MAAC, **kwargs) -> MAAC:
    module = cls("Pendulum-v1", **{**TINY, **kwargs})
    module.target_moved = []
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module)
    return module


def test_updates_target_period_and_model_fits_follow_the_schedule():
    module = fit(TargetWatch, target_update_every=4)
    assert module.frames == 300 and module.updates == 3 * 200  # G x policy frames
    assert module.target_moved == [False, False, False, True] * 150  # Polyak every 4th update only
    assert module.model_fits == 2  # before policy frames 0 and 100 (model_train_freq 100; 200 policy frames)


@pytest.mark.parametrize("ablation", [dict(actor_horizon=0), dict(steve_horizon=0), dict(n_value_actions=1),
                                      dict(reward="learned")])
def test_ablations_run(ablation):
    module = fit(max_frames=150, **ablation)
    assert module.updates == 3 * 50
