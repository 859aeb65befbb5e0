"""T1 smoke for the BOOTS and MPC evaluation callbacks: they run inside tiny fits of SAC (own model)
and MBSAC (the module's model), log their keys beside the policy's, are swappable from the command
line and YAML, never change training state, and reject bad arguments naming the field."""

import hashlib

import pytest
import pytorch_lightning as pl
import torch

from callbacks import BootsEval, MPCEval
from callbacks.evaluation import EnvOwningCallback
from lightning_mbrl.errors import ConfigError
from tests.smoke.test_recipes import fit, metrics_rows

SMALL_BOOTS = ["--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.every_frames=100",
               "--trainer.callbacks.episodes=2", "--trainer.callbacks.n_candidates=16",
               "--trainer.callbacks.n_elites=4", "--trainer.callbacks.n_iters=2",
               "--trainer.callbacks.own_model_steps=20"]
SMALL_MPC = ["--trainer.callbacks+=callbacks.MPCEval", "--trainer.callbacks.every_frames=100",
             "--trainer.callbacks.episodes=2", "--trainer.callbacks.n_candidates=16",
             "--trainer.callbacks.n_elites=4", "--trainer.callbacks.n_iters=2",
             "--trainer.callbacks.own_model_steps=20"]
POSITIONS = "--model.env_kwargs={exclude_current_positions_from_observation: false}"


def planner_callbacks(cli):
    return [c for c in cli.trainer.callbacks if isinstance(c, (BootsEval, MPCEval))]


@pytest.mark.parametrize("recipe, extra", [
    ("mbsac_halfcheetah", []),
    ("sac_halfcheetah", [POSITIONS]),  # BOOTS-SAC: the callbacks fit their own model
    ("mbpo_invertedpendulum", ["--model.rollout_batch_size=500", "--model.max_model_epochs=2"]),  # the ensemble
])
def test_boots_and_mpc_log_beside_the_policy(recipe, extra, in_tmp):
    cli = fit(recipe, *extra, *SMALL_BOOTS, *SMALL_MPC)
    boots, mpc = planner_callbacks(cli)
    assert (boots.calls, mpc.calls) == (2, 2)
    own = recipe.startswith("sac")
    assert (boots.own_model is not None, mpc.own_model is not None) == (own, own)
    rows = metrics_rows(cli)
    for key in ("eval/return", "eval/boots/return", "eval/boots/return_std", "eval/boots/episode_length",
                "eval/mpc/return", "eval/mpc/episode_length"):
        assert [int(float(r["step"])) for r in rows if r.get(key)] == [100, 200], key
    if recipe.startswith("sac"):
        assert any(r.get("eval/boots/own_model_loss") for r in rows)
    owners = [c for c in cli.trainer.callbacks if isinstance(c, EnvOwningCallback)]
    assert len(owners) == 3 and all(c._env is None for c in owners)  # policy, BOOTS, MPC envs closed at fit end


def state_hash(module: pl.LightningModule, trainer: pl.Trainer) -> str:
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode() + p.detach().cpu().numpy().tobytes())
    for name, b in sorted(module.named_buffers()):
        h.update(name.encode() + b.detach().cpu().numpy().tobytes())
    for opt in trainer.optimizers:
        for state in opt.state.values():
            for value in state.values():
                h.update(value.detach().cpu().numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    h.update(repr((len(module.runtime.buffer), module.frames, module.updates)).encode())
    h.update(torch.get_rng_state().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("algo", ["mbsac", "sac"])
def test_planner_callbacks_never_change_training_state(algo, in_tmp):
    from lightning_mbrl.algos.mbsac import MBSAC
    from lightning_mbrl.algos.sac import SAC

    hashes = {}
    cls = MBSAC if algo == "mbsac" else SAC
    kwargs = {"model_pretrain_iters": 10} if algo == "mbsac" else {}
    boots = BootsEval(every_frames=0, episodes=2, n_candidates=8, n_elites=2, n_iters=2, own_model_steps=10)
    mpc = MPCEval(every_frames=0, episodes=2, n_candidates=8, n_elites=2, n_iters=2, own_model_steps=10)

    class Probe(pl.Callback):
        def on_train_end(self, trainer, module):
            for cb in (boots, mpc):
                cb.every_frames = 1  # build env (and own model) now, as on_fit_start would
                cb.on_fit_start(trainer, module)
            before = state_hash(module, trainer)
            for cb in (boots, mpc):
                row = cb.evaluate(module)
                hashes[type(cb).__name__] = row["returns"].shape
            hashes["unchanged"] = before == state_hash(module, trainer)

    model = cls("HalfCheetah-v5", env_kwargs={"exclude_current_positions_from_observation": False}, max_frames=60,
                init_random_frames=50, batch_size=16, hidden=(8, 8), max_episode_steps=10, **kwargs)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               callbacks=[boots, mpc, Probe()]).fit(model)
    assert hashes == {"BootsEval": torch.Size([2]), "MPCEval": torch.Size([2]), "unchanged": True}


def test_ablation_overlay_from_yaml(in_tmp):
    overlay = in_tmp / "boots_k.yaml"
    overlay.write_text(
        "trainer:\n  callbacks:\n"
        + "".join(
            f"    - class_path: callbacks.BootsEval\n      init_args: {{every_frames: 200, episodes: 1, horizon: {k}, "
            f"n_candidates: 8, n_elites: 2, n_iters: 1, name: boots_k{k}}}\n"
            for k in (1, 2)
        )
    )
    cli = fit("mbsac_halfcheetah", "--config", str(overlay))
    assert [(c.name, c.planner_args["horizon"], c.calls) for c in planner_callbacks(cli)] == [
        ("boots_k1", 1, 1), ("boots_k2", 2, 1)]
    rows = metrics_rows(cli)
    assert any(r.get("eval/boots_k1/return") for r in rows) and any(r.get("eval/boots_k2/return") for r in rows)


@pytest.mark.parametrize("cls, kwargs, field", [
    (BootsEval, {"horizon": -1}, "horizon must be an int >= 0"),
    (BootsEval, {"optimizer": "adam"}, "optimizer must be one of"),
    (BootsEval, {"n_elites": 600}, "n_elites must be <= n_candidates"),
    (BootsEval, {"episodes": 0}, "episodes must be a positive number"),
    (BootsEval, {"model_mode": "median"}, "model_mode must be one of"),
    (MPCEval, {"horizon": 0}, "horizon must be an int >= 1"),
    (MPCEval, {"optimizer": "cem_noise"}, "optimizer must be one of"),
    (MPCEval, {"discount": 1.5}, "discount must be in"),
])
def test_bad_arguments_name_the_field(cls, kwargs, field):
    with pytest.raises(ConfigError, match=field.replace("(", r"\(")):
        cls(**kwargs)


def test_sac_without_known_reward_gets_a_clear_error(capsys, in_tmp):
    with pytest.raises(SystemExit) as exc:
        fit("sac_pendulum", "--model.env=InvertedDoublePendulum-v5", *SMALL_BOOTS)
    assert exc.value.code == 2
    assert "has no world model, so the planner fits its own" in capsys.readouterr().err


def test_boots_dqn_on_a_piecewise_linear_mdp(monkeypatch):
    """Discrete actions: exhaustive BOOTS (k = 4) over DQN's q_all with the callback's own model
    (one-hot actions in, the MDP's known reward), next to the exact optimal return, in a tiny DQN fit
    (200 frames; a plain Trainer, so the tiny overlay's caps on the callbacks do not apply). The
    search is exhaustive: every model step of every decision runs all 2^4 sequences of each episode,
    and the executed action is the first of the brute-force best sequence. The lookahead pays: from
    the evaluation's own start states BOOTS beats the greedy policy of the same Q and uniform random
    actions by at least 0.5 (measured over seeds 0-4: by 0.63 to 1.67; the exact optimum from those
    states is 0.05 to 0.21 above BOOTS)."""
    import itertools

    import numpy as np

    from callbacks import OptimalReturn
    from callbacks.evaluation import run_episodes
    from lightning_mbrl.models.slbo import DeterministicDynamics
    from lightning_mbrl import keys
    from lightning_mbrl.algos.dqn import DQN
    from lightning_mbrl.data.collection import ActorPolicy
    from lightning_mbrl.envs.piecewise_linear.mdps import semi_rand_mdp
    from lightning_mbrl.envs.piecewise_linear.solver import solve

    model_rows = []  # rows of every call of the own model's step (the planner's dynamics)
    own_step = DeterministicDynamics.transition

    def recording_step(self, obs, action, **kwargs):
        model_rows.append(obs.shape[0])
        return own_step(self, obs, action, **kwargs)

    monkeypatch.setattr(DeterministicDynamics, "transition", recording_step)
    horizon, episodes = 4, 4
    module = DQN("pwl/semi-rand-0", max_frames=200, init_random_frames=100, frames_per_iteration=10, batch_size=32,
                 buffer_size=1000, hidden=(32, 32), gamma=1.0)  # recipes/dqn_pwl.yaml, shrunk
    boots = BootsEval(every_frames=200, episodes=episodes, horizon=horizon, own_model_steps=100)
    optimal = OptimalReturn(every_frames=200)
    pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[optimal, boots]).fit(module)
    assert boots.calls == 1 and boots.planner_args["optimizer"] is None  # exhaustive chosen for discrete
    # 10 decisions (the MDP's horizon), each k model steps on all 2^k sequences of every episode
    assert model_rows == [episodes * 2**horizon] * (10 * horizon)
    ret = boots.last_return
    assert 6.6 < optimal.value < 6.7  # pwl/semi-rand-0, exact (lightning_mbrl.envs.pwl_env.optimal_return)

    # the planner's choice is the first action of the brute-force best sequence under (model, Q)
    step, q_all = boots.own_model.model.transition, module.q_all
    obs = torch.linspace(0.0, 0.995, 200).unsqueeze(-1)
    with torch.no_grad():
        scores = []
        for sequence in itertools.product(range(2), repeat=horizon):  # lexicographic: a_0 is the top bit
            state, value, alive = obs, torch.zeros(200), torch.ones(200, dtype=torch.bool)
            for a in sequence:
                state, reward, done = step(state, torch.full((200,), a))
                value, alive = value + torch.where(alive, reward, 0.0), alive & ~done
            scores.append(value + torch.where(alive, q_all(state).amax(-1), 0.0))
        brute_force = torch.stack(scores, -1).argmax(-1) // 2 ** (horizon - 1)
        greedy = q_all(obs).argmax(-1)
        planned = boots.make_actor(module, 200)(obs)
    assert torch.equal(planned, brute_force)
    assert not torch.equal(planned, greedy)  # the lookahead changes decisions: it is not horizon 0

    # the return, on the evaluation's start states: below the exact optimum, above two baselines
    env = module.make_env(num_envs=episodes, seed=boots.seed)

    def mean_return(act) -> float:
        env.set_seed(boots.seed)  # the start states of the evaluation
        with torch.no_grad():
            return float(run_episodes(env, ActorPolicy(act), 10)[0].mean())

    starts = env.reset()[keys.OBSERVATION].squeeze(-1).double().numpy()
    greedy_return = mean_return(lambda o: module.act(o, deterministic=True))
    env.close()
    mdp = semi_rand_mdp(0)
    best = float(np.mean(solve(mdp, 10, gamma=1.0).value(starts)))
    # uniform random actions from the same starts: 2000 seeded episodes each on the exact MDP
    rng, state = np.random.default_rng(0), np.repeat(starts, 2000)
    uniform_returns = np.zeros_like(state)
    for _ in range(10):
        a = rng.integers(2, size=state.shape)
        uniform_returns += np.where(a == 0, mdp.rewards[0](state), mdp.rewards[1](state))
        state = np.where(a == 0, mdp.dynamics[0](state), mdp.dynamics[1](state))
    uniform = float(uniform_returns.mean())
    assert ret <= best + 1e-4, (ret, best)
    assert ret > max(greedy_return, uniform) + 0.5, (ret, greedy_return, uniform)


def test_mpc_rejects_discrete_actions(capsys, in_tmp):
    with pytest.raises(SystemExit) as exc:
        fit("dqn_pwl", "--trainer.callbacks=[]", *SMALL_MPC)
    assert exc.value.code == 2
    assert "MPCEval searches continuous actions" in capsys.readouterr().err


def test_two_planners_with_one_name_are_refused(capsys, in_tmp):
    """mbsac_humanoid already has a BootsEval named 'boots': adding another needs another name."""
    with pytest.raises(SystemExit) as exc:
        fit("mbsac_humanoid", "--trainer.callbacks+=callbacks.BootsEval", "--trainer.callbacks.horizon=8")
    assert exc.value.code == 2
    assert "two evaluation callbacks log under eval/boots/" in capsys.readouterr().err
