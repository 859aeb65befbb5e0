"""T1 smoke for MBPO: exact accounting of model fits, rollouts, imagined transitions and updates."""

import inspect
import math

import pytest
import torch

from lightning_mbrl.models.world_model import EnsembleDynamics
from tests.smoke.test_recipes import fit, metrics_rows


@pytest.mark.parametrize("fpi", [1, 4])
def test_mbpo_schedule_accounting(fpi, in_tmp):
    """Pendulum never terminates, so every imagined transition is kept: exact counts."""
    cli = fit(
        "mbpo_halfcheetah", "--model.env=Pendulum-v1", "--model.termination=never",
        f"--model.frames_per_iteration={fpi}", "--model.updates_per_frame=2",
        "--model.max_frames=180", "--model.init_random_frames=100", "--model.model_train_freq=20",
        "--model.rollout_batch_size=64", "--model.rollout_schedule=[0,0,3,3]", "--model.epoch_length=40",
        "--model.model_retain_epochs=1", "--model.max_model_epochs=3", "--eval.every_frames=0",
    )
    m = cli.model
    fits = math.ceil((180 - 100) / 20)  # at policy frames 0, 20, 40, 60
    assert m.model_fits == fits
    assert m.rollouts == fits * 64
    assert m.imagined == fits * 64 * 3  # k = 3 steps, nothing terminates
    # capacity = 1 epoch * 3 * 64 * (40 / 20) = 384 < 768 imagined: the replay keeps the newest 384
    assert len(m.model_replay) == 384
    assert m.updates == 2 * (180 - 100)
    model_opt = cli.trainer.optimizers[m.optimizer_names.index("model")]
    assert {int(s["step"]) for s in model_opt.state.values()} == {m.model_steps} and m.model_steps > 0


def record_model_rollouts(monkeypatch) -> list:
    """Patch ``EnsembleDynamics.rollout`` to keep a copy of every model rollout (``[k, N]``, with its
    ``terminated`` flags) that MBPO's imagination makes; returns the list they are appended to."""
    rollouts = []
    original = EnsembleDynamics.rollout

    def recording(self, *args, **kwargs):
        td = original(self, *args, **kwargs)
        rollouts.append(td.clone())
        return td

    monkeypatch.setattr(EnsembleDynamics, "rollout", recording)
    return rollouts


def steps_before_termination(terminated: torch.Tensor) -> torch.Tensor:
    """``terminated bool [k, N]`` -> ``bool [k, N]``: step t of rollout n is kept iff no step before
    t terminated (the terminating step itself is kept), computed from the flags alone."""
    terminations_before = terminated.long().cumsum(0) - terminated.long()
    return terminations_before == 0


def test_mbpo_terminating_env_drops_rollouts_after_termination(in_tmp, monkeypatch):
    rollouts = record_model_rollouts(monkeypatch)
    cli = fit(
        "mbpo_invertedpendulum", "--model.max_frames=140", "--model.init_random_frames=100",
        "--model.model_train_freq=20", "--model.rollout_batch_size=200", "--model.rollout_schedule=[0,0,5,5]",
        "--model.max_model_epochs=2", "--eval.every_frames=0",
    )
    m = cli.model
    assert m.model_fits == 2 and m.rollouts == 400
    assert [td.shape for td in rollouts] == [torch.Size([5, 200])] * 2
    # exactly the transitions up to each rollout's first termination are kept, in rollout order
    keep = [steps_before_termination(td["next", "terminated"].squeeze(-1)) for td in rollouts]
    expected = torch.cat([td[mask]["next", "observation"] for td, mask in zip(rollouts, keep)])
    assert m.imagined == expected.shape[0] == len(m.model_replay)
    assert 0 < m.imagined < 400 * 5 - 200  # many rollouts terminate before their last step: the mask matters
    data = m.model_replay.newest(len(m.model_replay))
    assert torch.equal(data["next", "observation"], expected)
    assert not data["next", "terminated"][:-1].all()
    # the known InvertedPendulum rule (|angle| > 0.2) holds on every stored imagined transition
    angle = data["next", "observation"][:, 1].abs()
    torch.testing.assert_close(data["next", "terminated"].squeeze(-1), angle > 0.2)


@pytest.mark.parametrize("real_ratio, n_real", [(0.05, 1), (0.25, 8), (1.0, 32)])
def test_mixed_batch_ratio(real_ratio, n_real, in_tmp):
    """A batch of 32 holds int(32 * real_ratio) real rows: recognised by their next observation,
    which occurs in the real data (model predictions never reproduce one exactly)."""
    seen = {}

    import pytorch_lightning as pl

    from lightning_mbrl.algos.mbpo import MBPO

    class Probe(pl.Callback):
        def on_train_end(self, trainer, module):
            real_next = module.runtime.buffer[: len(module.runtime.buffer)]["next", "observation"]
            batch = module.mixed_batch()
            matches = (batch["next", "observation"][:, None, :] == real_next[None]).all(-1).any(-1)
            seen["real_rows"], seen["size"] = int(matches.sum()), batch.shape[0]

    model = MBPO("Hopper-v5", max_frames=110, init_random_frames=100, batch_size=32, hidden=(16, 16),
                 model_hidden=(16, 16), max_model_epochs=2, rollout_batch_size=300, real_ratio=real_ratio)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               callbacks=[Probe()]).fit(model)
    assert seen == {"real_rows": n_real, "size": 32}


@pytest.mark.parametrize("args, fragment", [
    (["--model.termination=sometimes"], "termination must be one of"),
    (["--model.rollout_schedule=[1,2,3]"], "rollout_schedule must be"),
    (["--model.num_elites=9"], "num_elites (9) must be <= ensemble_size (7)"),
    (["--model.real_ratio=1.5"], "real_ratio must be a number in [0, 1], got 1.5"),
    (["--model.model_train_freq=25", "--model.frames_per_iteration=10", "--model.max_frames=200"],
     "model_train_freq (25) must be a multiple of frames_per_iteration"),
])
def test_mbpo_config_errors(capsys, in_tmp, args, fragment):
    with pytest.raises(SystemExit) as exc:
        fit("mbpo_halfcheetah", *args)
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err


def test_known_termination_comes_from_the_registry(monkeypatch):
    """termination: known looks the function up by env id (envs.register_env / known_fns): Pendulum's
    registered "never", and a one-line error naming the setting for an id without one."""
    from lightning_mbrl.algos import mbpo
    from lightning_mbrl.envs import known_fns
    from lightning_mbrl.errors import ConfigError

    model = mbpo.MBPO("Pendulum-v1", max_frames=200, init_random_frames=100, model_hidden=(8,))
    assert inspect.unwrap(model.world_model.termination_fn) is known_fns.never_terminated  # (precision.full_precision)

    def unregistered(env_id, env_kwargs=None):
        raise ConfigError(f"no known termination function for env id {env_id!r}")

    monkeypatch.setattr(mbpo, "termination_fn", unregistered)
    with pytest.raises(ConfigError, match="termination='known': no known termination function .* 'never' or 'learned'"):
        mbpo.MBPO("Pendulum-v1", max_frames=200, init_random_frames=100, model_hidden=(8,))


def test_mbpo_with_learned_termination(in_tmp, monkeypatch):
    """termination: learned trains the ensemble's termination logit on the real terminations and
    uses it in imagination (InvertedPendulum terminates often under random actions). To tie the
    imagined terminations to that logit, each fit is followed by setting the logit output of every
    member to a constant: +20 after the first fit (every rollout terminates at its first step, which
    is kept), -20 after the second (nothing terminates)."""
    from lightning_mbrl.algos.mbpo import MBPO

    rollouts = record_model_rollouts(monkeypatch)
    fit_world_model = MBPO.fit_world_model

    def fit_then_force_the_logit(self):
        stats = fit_world_model(self)
        ensemble = self.world_model.ensemble
        logit = ensemble.out_dim - 1  # the last "mean" column of the output layer
        with torch.no_grad():
            ensemble.layers[-1].weight[:, :, logit] = 0.0
            ensemble.layers[-1].bias[:, :, logit] = 20.0 if self.model_fits == 1 else -20.0
        return stats

    monkeypatch.setattr(MBPO, "fit_world_model", fit_then_force_the_logit)
    cli = fit(
        "mbpo_invertedpendulum", "--model.termination=learned", "--model.max_frames=140",
        "--model.init_random_frames=100", "--model.model_train_freq=20", "--model.rollout_batch_size=200",
        "--model.rollout_schedule=[0,0,3,3]", "--model.max_model_epochs=5", "--eval.every_frames=0",
    )
    m = cli.model
    assert m.world_model.learn_termination and m.world_model.termination_fn is None
    assert m.world_model.ensemble.out_dim == 1 + m.spec.observation_dim + 1
    assert m.model_fits == 2 and m.rollouts == 400
    first, second = (td["next", "terminated"].squeeze(-1) for td in rollouts)
    assert first.all() and not second.any()
    assert m.imagined == 200 * 1 + 200 * 3  # one step kept per rollout, then all three
    assert len(m.model_replay) == 800 and m.model_replay.newest(800)["next", "terminated"][:200].all()
    assert m.updates == 10 * 40


def test_mbpo_without_a_holdout_logs_no_holdout_error_and_is_not_stopped_as_diverged(in_tmp):
    """holdout_ratio 0 (no early stopping, max_model_epochs epochs): fit_ensemble's holdout MSE is NaN
    by design; it is not logged, so the divergence guard (on in every recipe) does not stop the run."""
    cli = fit("mbpo_invertedpendulum", "--model.holdout_ratio=0", "--model.max_model_epochs=2",
              "--model.model_train_freq=50", "--model.rollout_batch_size=64", "--model.model_hidden=[16, 16]",
              "--eval.every_frames=0", "--trainer.log_every_n_steps=1")
    assert cli.model.frames == 200 and cli.model.model_fits == 2
    rows = metrics_rows(cli)
    assert any(r.get("model/fits") for r in rows)
    assert not any(r.get("model/holdout_mse") for r in rows)
