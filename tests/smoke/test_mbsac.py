"""T1 smoke for MBSAC: exact accounting of model steps, rollouts and imagined transitions, the
composition of each batch, the observation normaliser, and configuration errors."""

import pytest
import pytorch_lightning as pl
import torch

from lightning_mbrl import keys
from lightning_mbrl.algos.mbsac import MBSAC
from tests.smoke.test_recipes import fit


@pytest.mark.parametrize("fpi, G, pretrain", [(1, 2, None), (5, 1, 7)])
def test_mbsac_schedule_accounting(fpi, G, pretrain, in_tmp):
    args = [
        f"--model.frames_per_iteration={fpi}", f"--model.updates_per_frame={G}", "--model.max_frames=150",
        "--model.init_random_frames=100", "--model.model_iters_per_update=2", "--eval.every_frames=0",
    ]
    if pretrain is not None:
        args.append(f"--model.model_pretrain_iters={pretrain}")
    cli = fit("mbsac_halfcheetah", *args)
    m = cli.model
    policy_frames = 150 - 100
    # tiny: batch 32, real_ratio 0.25 -> 8 real + 8 starts x 3 steps
    assert (m.n_real, m.n_starts) == (8, 8)
    assert m.updates == G * policy_frames
    assert m.model_steps == (100 if pretrain is None else pretrain) + 2 * G * policy_frames
    assert m.rollouts == 8 * G * policy_frames
    assert m.imagined == 3 * m.rollouts
    model_opt = cli.trainer.optimizers[m.optimizer_names.index("model")]
    assert {int(s["step"]) for s in model_opt.state.values()} == {m.model_steps}
    assert m.world_model.state_normalizer.count == 150  # every real frame, once


def test_imagined_batch_composition(in_tmp):
    seen = {}

    class Probe(pl.Callback):
        def on_train_end(self, trainer, module):
            real = module.runtime.buffer[: len(module.runtime.buffer)]
            batch = module.imagined_batch()
            in_real = (batch[keys.NEXT_OBSERVATION][:, None] == real[keys.NEXT_OBSERVATION][None]).all(-1).any(-1)
            seen["in_real"] = in_real.tolist()
            wm = module.world_model
            imagined = batch[module.n_real :]
            seen["reward"] = (imagined[keys.REWARD].squeeze(-1),
                              wm.reward_fn(imagined[keys.OBSERVATION], imagined[keys.ACTION], imagined[keys.NEXT_OBSERVATION]))
            seen["next"] = (imagined[keys.NEXT_OBSERVATION], wm(imagined[keys.OBSERVATION], imagined[keys.ACTION]))
            seen["terminated"] = bool(imagined[keys.TERMINATED].any())
            # rollouts are 3 steps of n_starts states, stacked step-major: step t+1 starts where t ended
            obs = imagined[keys.OBSERVATION].reshape(3, module.n_starts, -1)
            nxt = imagined[keys.NEXT_OBSERVATION].reshape(3, module.n_starts, -1)
            seen["chained"] = bool(torch.equal(obs[1:], nxt[:-1]))

    model = MBSAC("Hopper-v5", env_kwargs={"exclude_current_positions_from_observation": False}, max_frames=110,
                  init_random_frames=100, batch_size=40, real_ratio=0.1, hidden=(16, 16), model_units=16,
                  model_pretrain_iters=20)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               callbacks=[Probe()]).fit(model)
    assert (model.n_real, model.n_starts) == (4, 12)
    assert seen["in_real"] == [True] * 4 + [False] * 36
    torch.testing.assert_close(*seen["reward"])
    torch.testing.assert_close(*seen["next"])
    assert not seen["terminated"]  # imagined steps never terminate (BOOTS)
    assert seen["chained"]


@pytest.mark.parametrize("imagined_termination", ["never", "known"])
def test_imagined_termination_is_the_known_one_carried_along_each_rollout(imagined_termination, in_tmp):
    """``known``: step t of a rollout is terminal iff the termination function holds for the next
    state of some step <= t; ``never`` (BOOTS): no imagined step is terminal, whatever the function."""
    seen = {}

    class Probe(pl.Callback):
        def on_train_end(self, trainer, module):
            # a termination that holds for about half of any batch, so both outcomes occur
            module.world_model.termination_fn = lambda obs, action, next_obs: next_obs[..., 5] > obs[..., 5]
            batch = module.imagined_batch()
            imagined = batch[module.n_real :]
            nxt = imagined[keys.NEXT_OBSERVATION].reshape(3, module.n_starts, -1)
            obs = imagined[keys.OBSERVATION].reshape(3, module.n_starts, -1)
            seen["done_here"] = nxt[..., 5] > obs[..., 5]
            seen["terminated"] = imagined[keys.TERMINATED].reshape(3, module.n_starts)
            seen["real"] = batch[: module.n_real][keys.TERMINATED].squeeze(-1)

    model = MBSAC("Hopper-v5", env_kwargs={"exclude_current_positions_from_observation": False}, max_frames=110,
                  init_random_frames=100, batch_size=64 + 3 * 64, real_ratio=0.25, hidden=(16, 16), model_units=16,
                  model_pretrain_iters=20, imagined_termination=imagined_termination)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               callbacks=[Probe()]).fit(model)
    done_here, terminated = seen["done_here"], seen["terminated"]
    assert 0 < int(done_here.sum()) < done_here.numel()
    if imagined_termination == "never":
        assert not terminated.any()
    else:
        assert torch.equal(terminated, done_here.cummax(dim=0).values)  # terminal from the first termination on
        assert terminated[2].sum() > terminated[0].sum()


@pytest.mark.parametrize("normalize", [True, False])
def test_actor_and_critics_see_normalised_observations(normalize, in_tmp):
    model = MBSAC("HalfCheetah-v5", env_kwargs={"exclude_current_positions_from_observation": False},
                  max_frames=20, init_random_frames=10, hidden=(8, 8), normalize_observations=normalize)
    obs = torch.randn(50, model.spec.observation_dim) * 3 + 1
    model.world_model.update_normalizers(obs, obs + 0.1)
    x = obs[:4]
    seen = model.world_model.state_normalizer(x) if normalize else x
    torch.testing.assert_close(model.act(x, deterministic=True), model.actor.mode(seen))
    a = torch.zeros(4, model.spec.action_dim)
    torch.testing.assert_close(model.q_values(x, a), model.critic(seen, a))


@pytest.mark.parametrize("args, fragment", [
    (["--model.env=InvertedDoublePendulum-v5", "--model.env_kwargs={}"], "MBSAC rolls out with the task's known reward"),
    (["--model.env_kwargs={}"], "exclude_current_positions_from_observation=False"),
    (["--model.rollout_horizon=5"], "must be a multiple of rollout_horizon (5)"),
    (["--model.real_ratio=2"], "real_ratio must be a number in [0, 1], got 2"),
    (["--model.model_pretrain_iters=5", "--model.init_random_frames=0"], "needs init_random_frames > 0"),
    (["--model.model_units=0"], "model_units must be a positive int, got 0"),
    (["--model.alpha=-1"], "alpha must be a number >= 0 or None, got -1"),
    (["--model.imagined_termination=sometimes"], "imagined_termination must be one of ['never', 'known']"),
])
def test_mbsac_config_errors(capsys, in_tmp, args, fragment):
    with pytest.raises(SystemExit) as exc:
        fit("mbsac_halfcheetah", *args)
    assert exc.value.code == 2
    assert fragment in capsys.readouterr().err
