"""T0: the OMD / MLE / VEP agent on CartPole (lightning_mbrl.algos.omd; paper 003, Algorithm 1, Eq. 10-13;
REFERENCE 3.1-3.2) and the Gaussian distractors (lightning_mbrl.envs.distractors).

Oracles: ``objectives.omd.implicit_gradient`` called directly on losses this file builds from the
objectives' own functions; for a Q-function linear in its parameters (``hidden=()``), the inner problem
solved exactly by least squares and central finite differences of ``L_true(w*(theta))``; the parameter
sets each loss term reaches; Adam's own step counts; sample moments of the distractors.
"""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_mbrl import keys
from lightning_mbrl.algos.omd import OMD, Approximation
from lightning_mbrl.envs import make_env
from lightning_mbrl.envs.distractors import GaussianDistractors, add_distractors
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.objectives import omd as omd_objectives
from lightning_mbrl.objectives.omd import double_soft_q_target, implicit_gradient, soft_bellman_loss
from tests.unit.test_omd_objectives import assert_dicts_close, central_difference

F64 = torch.float64
SMALL = dict(max_frames=110, init_random_frames=100, batch_size=32, buffer_size=500, max_episode_steps=50)


def random_batch(n: int = 64, obs_dim: int = 4, dtype=torch.float32, seed: int = 1) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation": torch.randn(n, obs_dim, generator=g, dtype=dtype),
        "action": torch.randint(2, (n,), generator=g),
        "reward": torch.rand(n, generator=g, dtype=dtype),
        "terminated": torch.rand(n, generator=g) < 0.1,
        "next_observation": torch.randn(n, obs_dim, generator=g, dtype=dtype),
    }


def perturb_targets(agent: OMD, scale: float = 0.3, seed: int = 5) -> None:
    """Targets that differ from the online networks (and between themselves)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in agent.target_nets.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ---------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("field, value", [
    ("model_loss", "exact"), ("model_hidden", 0), ("distractors", -1), ("approx", "inverse"), ("inner_steps", 0),
    ("alpha", 0.0), ("epsilon", 1.5), ("tau", 0.0), ("q_lr", -1e-3), ("model_lr", 0), ("cg_damping", -1e-5),
    ("cg_max_iter", 0), ("vep_value_functions", 0), ("hidden", (32, 0)), ("gamma", 1.1), ("warm_opt", 1),
])
def test_invalid_config_is_one_line_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field) as err:
        OMD(**{field: value})
    assert "\n" not in str(err.value)


def test_cross_field_rules_and_discrete_envs_only():
    with pytest.raises(ConfigError, match="approx='cg' applies to model_loss='omd' only"):
        OMD(model_loss="mle", approx="cg")
    with pytest.raises(ConfigError, match="discrete action space.*Pendulum-v1"):
        OMD(env="Pendulum-v1")
    assert Approximation.__args__ == omd_objectives.APPROXIMATIONS


def test_networks_initialisation_and_named_optimizers():
    agent = OMD(model_loss="vep", distractors=3)
    assert agent.spec.observation_dim == 4 + 3
    assert len(agent.q_nets) == 2 and len(OMD(double=False).q_nets) == 1
    def assert_orthogonal(matrices, gains, biases):
        for w, gain, bias in zip(matrices, gains, biases, strict=True):
            w = w.detach()
            small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            torch.testing.assert_close(small, gain**2 * torch.eye(small.shape[0]), atol=1e-5 * max(1, gain**2), rtol=0)
            assert not bias.any()

    # The code's one net_fn initialises every network alike: orthogonal, gain sqrt(2) for hidden layers, 1e-2 at
    # the output; zero biases. The Q-networks, both model MLPs and each VEP value function.
    gains = (math.sqrt(2), math.sqrt(2), 1e-2)
    for q in agent.q_nets:
        linears = [m for m in q.modules() if isinstance(m, nn.Linear)]
        assert [tuple(m.weight.shape) for m in linears] == [(32, 7), (32, 32), (2, 32)]
        assert_orthogonal([m.weight for m in linears], gains, [m.bias for m in linears])
    for net in (agent.world_model.dynamics, agent.world_model.reward_net):
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert_orthogonal([m.weight for m in linears], gains, [m.bias for m in linears])
    for e in range(5):
        layers = agent.value_functions.layers
        assert_orthogonal([layer.weight[e] for layer in layers], gains, [layer.bias[e] for layer in layers])
    model = agent.world_model
    assert model.dynamics[0].in_features == 7 + 2 and model.dynamics[-1].out_features == 7
    assert model.reward_net[-1].out_features == 1 and model.dynamics[0].out_features == 32
    for target, online in zip(agent.target_nets.parameters(), agent.q_nets.parameters()):
        assert torch.equal(target, online) and not target.requires_grad and target.data_ptr() != online.data_ptr()
    assert all(not p.requires_grad for p in agent.value_functions.parameters())
    assert agent.value_functions.n_members == 5
    named = agent.make_optimizers()
    assert list(named) == ["model", "q"]
    held = {name: {id(p) for g in opt.param_groups for p in g["params"]} for name, opt in named.items()}
    assert held["model"] == {id(p) for p in agent.world_model.parameters()}
    assert held["q"] == {id(p) for p in agent.q_nets.parameters()}
    assert OMD(model_hidden=1).world_model.dynamics[0].out_features == 1
    assert OMD().value_functions is None
    again = OMD(model_loss="vep", distractors=3)  # the seed fixes every initialisation
    assert all(torch.equal(a, b) for a, b in zip(agent.state_dict().values(), again.state_dict().values()))


def test_act_greedy_on_the_average_q_softmax_and_epsilon():
    agent = OMD(alpha=0.5, epsilon=0.0)
    obs = torch.randn(1, 4).expand(20_000, 4)
    q = agent.q_all(obs[:1])
    torch.testing.assert_close(q, 0.5 * (agent.q_nets[0](obs[:1]) + agent.q_nets[1](obs[:1])))
    assert agent.act(obs[0], deterministic=True).shape == () and agent.act(obs[0]).dtype == torch.long
    assert torch.equal(agent.act(obs[:5], deterministic=True), q.argmax(-1).expand(5))
    with torch.no_grad():
        agent.q_nets[0].net[-1].bias.copy_(torch.tensor([0.0, 0.6]))  # average Q differs by 0.3 between actions
    p1 = torch.softmax(agent.q_all(obs[:1]) / 0.5, -1)[0, 1]
    assert abs(agent.act(obs).float().mean() - p1) < 0.015
    agent.hparams.epsilon = 0.5  # half the actions uniform
    assert abs(agent.act(obs).float().mean() - (0.5 * p1 + 0.25)) < 0.015


# ---------------------------------------------------------------------------------------------- the implicit gradient
def direct_losses(agent: OMD, batch: dict[str, Tensor]):
    """OMD's inner and outer losses built here from the objectives' functions (double Q, alpha 0.01,
    gamma 0.99), independently of the agent's methods."""
    call = torch.func.functional_call
    target_1, target_2 = agent.target_nets

    def q_functions(w):
        own = [{k[2:]: v for k, v in w.items() if k.startswith(f"{i}.")} for i in range(2)]
        return [lambda o, i=i: call(agent.q_nets[i], own[i], (o,)) for i in range(2)]

    def inner(theta, w, b):
        reward, next_obs = call(agent.world_model, theta, (b["observation"], b["action"]))
        y = double_soft_q_target(reward, b["terminated"], next_obs, target_1, target_2, alpha=0.01, gamma=0.99,
                                 grad_to_inputs=True)
        return soft_bellman_loss(b["observation"], b["action"], y, q_functions(w))["loss_q"]

    def outer(w):
        y = double_soft_q_target(batch["reward"], batch["terminated"], batch["next_observation"], target_1, target_2,
                                 alpha=0.01, gamma=0.99)
        return soft_bellman_loss(batch["observation"], batch["action"], y, q_functions(w))["loss_q"]

    return inner, outer


@pytest.mark.parametrize("approx", ["identity", "cg"])
def test_the_agents_model_gradient_is_implicit_gradient_called_directly(approx):
    agent = OMD(approx=approx)
    perturb_targets(agent)
    batch = random_batch()
    grads, logs = agent.implicit_model_gradient(batch)
    inner, outer = direct_losses(agent, batch)
    theta = {k: v.detach() for k, v in agent.world_model.named_parameters()}
    w = {k: v.detach() for k, v in agent.q_nets.named_parameters()}
    expected, expected_logs = implicit_gradient(inner, outer, theta, w, batch, approx=approx, damping=1e-5, max_iter=100,
                                                negative_curvature="continue")
    assert_dicts_close(grads, expected, rtol=1e-6, atol=1e-9)
    assert set(grads) == set(theta) and all(float(g.abs().max()) > 0 for g in grads.values())
    torch.testing.assert_close(logs["loss_outer"], expected_logs["loss_outer"])
    assert ("cg_iterations" in logs.keys()) == (approx == "cg")
    assert all(p.grad is None for p in agent.parameters())  # the gradient is returned, not accumulated


def linear_q_solution(agent: OMD, theta, batch) -> dict[str, Tensor]:
    """The exact inner solution for ``hidden=()`` (``Q(s, a) = W_a s + b_a``, linear in its parameters):
    least squares of both networks on the model's soft-Bellman target (which the target nets fix)."""
    with torch.no_grad():
        reward, next_obs = torch.func.functional_call(agent.world_model, theta, (batch["observation"], batch["action"]))
        y = agent.bellman_target(reward, next_obs, batch["terminated"])
        features = torch.cat([batch["observation"], torch.ones_like(batch["observation"][:, :1])], -1)  # [B, F]
        onehot = nn.functional.one_hot(batch["action"], 2).to(F64)
        x = (onehot.unsqueeze(-1) * features.unsqueeze(-2)).reshape(len(y), -1)  # column (a, f)
        coef = torch.linalg.solve(x.T @ x, x.T @ y).reshape(2, features.shape[-1])
        weight, bias = coef[:, :-1], coef[:, -1]
        return {f"{i}.net.0.{name}": t for i in range(2) for name, t in (("weight", weight), ("bias", bias))}


def test_linear_q_agent_implicit_gradient_matches_finite_differences_of_the_solved_problem():
    agent = OMD(hidden=(), model_hidden=4, approx="cg", cg_damping=0.0).double()
    perturb_targets(agent)
    with torch.no_grad():  # non-zero biases: the zero-initialised ones put a ReLU exactly at its kink when a
        for name, p in agent.world_model.named_parameters():  # layer's inputs are all zero (finite
            if name.endswith("bias"):  # differences there see half the slope)
                p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(9), dtype=F64))
    batch = random_batch(dtype=F64)
    theta = {k: v.detach().clone() for k, v in agent.world_model.named_parameters()}
    w_star = linear_q_solution(agent, theta, batch)
    with torch.no_grad():
        for name, p in agent.q_nets.named_parameters():
            p.copy_(w_star[name])
    constraint = torch.func.grad(agent.inner_loss, argnums=1)(theta, w_star, batch)
    assert max(float(g.abs().max()) for g in constraint.values()) < 1e-12  # f(theta, w*) = 0

    fd = central_difference(lambda th: agent.outer_loss(linear_q_solution(agent, th, batch), batch), theta)
    grads, logs = agent.implicit_model_gradient(batch)
    assert_dicts_close(grads, fd, rtol=1e-4, atol=1e-7)
    assert 0 < int(logs["cg_iterations"]) <= 10 + 2  # H is two identical 10 x 10 blocks
    assert float(fd["reward_net.2.weight"].abs().max()) > 1e-3 and float(fd["dynamics.0.weight"].abs().max()) > 1e-4
    agent.hparams.approx = "identity"
    identity, _ = agent.implicit_model_gradient(batch)
    assert (identity["reward_net.2.weight"] - fd["reward_net.2.weight"]).abs().max() > 1e-3  # an approximation


# ---------------------------------------------------------------------------------------------- routing, trainer-free
def grads_reach(*modules: nn.Module) -> list[bool]:
    return [any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.parameters()) for m in modules]


def test_inner_loss_reaches_q_and_model_outer_loss_reaches_q_never_the_targets():
    agent = OMD()
    perturb_targets(agent)
    agent.target_nets.requires_grad_(True)  # so a leak would show as a gradient
    batch = random_batch()
    theta, w = dict(agent.world_model.named_parameters()), dict(agent.q_nets.named_parameters())
    agent.inner_loss(theta, w, batch).backward()  # d/dtheta is what OMD's constraint differentiates
    assert grads_reach(agent.q_nets, agent.world_model, agent.target_nets) == [True, True, False]
    agent.zero_grad(set_to_none=True)
    agent.outer_loss(w, batch).backward()
    assert grads_reach(agent.q_nets, agent.world_model, agent.target_nets) == [True, False, False]


@pytest.mark.parametrize("model_loss", ["mle", "vep"])
def test_mle_and_vep_model_losses_reach_only_the_model(model_loss):
    agent = OMD(model_loss=model_loss)
    agent.target_nets.requires_grad_(True)
    batch = random_batch()
    out = agent.model_losses(batch, *agent.world_model(batch["observation"], batch["action"]))
    assert set(out.keys()) == {"loss_model", "loss_dynamics", "loss_reward"}
    torch.testing.assert_close(out["loss_model"], out["loss_dynamics"] + out["loss_reward"])
    out["loss_model"].backward()
    assert grads_reach(agent.world_model, agent.q_nets, agent.target_nets) == [True, False, False]
    assert grads_reach(agent.world_model.reward_net, agent.world_model.dynamics) == [True, True]
    if model_loss == "vep":
        assert all(p.grad is None for p in agent.value_functions.parameters())


def test_mle_and_vep_losses_against_formulas():
    batch = random_batch(n=8)
    reward_hat, next_hat = torch.randn(8), torch.randn(8, 4)
    mle = OMD(model_loss="mle").model_losses(batch, reward_hat, next_hat)
    torch.testing.assert_close(mle["loss_reward"], ((reward_hat - batch["reward"]) ** 2).mean())
    torch.testing.assert_close(mle["loss_dynamics"], ((next_hat - batch["next_observation"]) ** 2).sum(-1).mean())
    agent = OMD(model_loss="vep")
    values = agent.value_functions
    expected = sum(
        ((values(batch["next_observation"])[i] - values(next_hat)[i]) ** 2).mean() for i in range(5))
    torch.testing.assert_close(agent.model_losses(batch, reward_hat, next_hat)["loss_dynamics"], expected)


# ---------------------------------------------------------------------------------------------- inside a fit
def tensors(module: nn.Module) -> dict[str, Tensor]:
    return {name: t.detach().clone() for name, t in module.state_dict().items()}


def changed(before: dict[str, Tensor], after: dict[str, Tensor]) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


def adam_steps(trainer: pl.Trainer, agent: OMD) -> dict[str, int]:
    steps = {}
    for name, opt in zip(agent.optimizer_names, trainer.optimizers):
        counts = {int(s["step"]) for s in opt.state.values()}
        assert len(counts) <= 1
        steps[name] = counts.pop() if counts else 0
    return steps


class StepProbe(pl.Callback):
    """After the first iteration with updates: one inner Q step and one model step on a fixed batch,
    recording what each changed, how far each optimizer stepped and the model gradients set."""

    def __init__(self) -> None:
        self.record: dict = {}

    def measure(self, trainer, agent, step):
        before, steps = tensors(agent), adam_steps(trainer, agent)
        out = step()
        after = adam_steps(trainer, agent)
        return {"changed": changed(before, tensors(agent)), "steps": {n: after[n] - steps[n] for n in after},
                "out": out, "before": before}

    def on_train_batch_end(self, trainer, agent, *args) -> None:
        if self.record or agent.warming_up:
            return
        data = agent.transitions(agent.sample(agent.hparams.batch_size))
        # predictions that carry the model's graph: q_step's stop-gradient must keep the model out
        reward, next_obs = agent.world_model(data["observation"], data["action"])
        agent.world_model.zero_grad(set_to_none=True)
        self.record["q_step"] = self.measure(trainer, agent, lambda: agent.q_step(data, reward, next_obs))
        self.record["q_step"]["model_grads"] = [p.grad for p in agent.world_model.parameters()]

        def model_step():
            if agent.hparams.model_loss == "omd":  # at the Q parameters the inner step left: w*
                self.record["expected_grads"] = agent.implicit_model_gradient(data)[0]
            reward, next_obs = agent.world_model(data["observation"], data["action"])
            return agent.model_step(data, reward, next_obs)

        self.record["model_step"] = self.measure(trainer, agent, model_step)
        self.record["model_step"]["grads"] = {n: p.grad.clone() for n, p in agent.world_model.named_parameters()}


def fit(callbacks=(), **kwargs) -> tuple[OMD, pl.Trainer]:
    agent = OMD(**{**SMALL, **kwargs})
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(agent)
    return agent, trainer


def names(agent: OMD, prefix: str) -> set[str]:
    return {n for n in agent.state_dict() if n.startswith(prefix)}


@pytest.mark.parametrize("model_loss", ["omd", "mle", "vep"])
def test_inner_step_moves_only_q_and_targets_model_step_only_the_model(model_loss, in_tmp):
    probe = StepProbe()
    agent, trainer = fit([probe], model_loss=model_loss)
    q_step, model_step = probe.record["q_step"], probe.record["model_step"]
    # the inner step: both Q-networks and (Polyak) the targets; nothing of the model, not even a .grad
    assert q_step["changed"] == names(agent, "q_nets.") | names(agent, "target_nets.")
    assert q_step["steps"] == {"model": 0, "q": 1}
    assert all(g is None for g in q_step["model_grads"])
    # the model step: the model only (its whole parameter set), one step of the model optimizer
    assert model_step["changed"] == names(agent, "world_model.")
    assert model_step["steps"] == {"model": 1, "q": 0}
    if model_loss == "omd":
        assert_dicts_close(model_step["grads"], probe.record["expected_grads"], rtol=1e-6, atol=1e-9)
        assert "loss_outer" in model_step["out"].keys()
    else:
        assert {"loss_model", "loss_dynamics", "loss_reward", "loss_outer"} <= set(model_step["out"].keys())
    if model_loss == "vep":  # the fixed value functions: in the state dict, never moved
        assert names(agent, "value_functions.") and not (names(agent, "value_functions.") & model_step["changed"])
        torch.testing.assert_close(tensors(agent.value_functions), tensors(OMD(model_loss="vep").value_functions),
                                   rtol=0, atol=0)


def test_polyak_step_follows_each_inner_step(in_tmp):
    class PolyakProbe(pl.Callback):
        seen: dict = {}

        def on_train_batch_end(self, trainer, agent, *args):
            if self.seen or agent.warming_up:
                return
            data = agent.transitions(agent.sample(agent.hparams.batch_size))
            target_before = tensors(agent.target_nets)
            with torch.no_grad():
                reward, next_obs = agent.world_model(data["observation"], data["action"])
            agent.q_step(data, reward, next_obs)
            q_after = tensors(agent.q_nets)
            self.seen["ok"] = {k: torch.allclose(v, 0.99 * target_before[k] + 0.01 * q_after[k], atol=1e-7, rtol=0)
                               for k, v in tensors(agent.target_nets).items()}

    probe = PolyakProbe()
    fit([probe])
    assert probe.seen["ok"] and all(probe.seen["ok"].values())


@pytest.mark.parametrize("inner_steps, warm_opt", [(2, False), (3, True)])
def test_update_accounting_and_the_q_optimizer_reinitialisation(inner_steps, warm_opt, in_tmp):
    agent, trainer = fit(inner_steps=inner_steps, warm_opt=warm_opt)
    assert agent.frames == 110
    assert agent.updates == 110 - 100
    assert agent.q_steps == inner_steps * agent.updates
    assert agent.target_updates == inner_steps * agent.updates
    steps = adam_steps(trainer, agent)  # Adam counts its own steps
    assert steps["model"] == agent.updates
    # re-initialised before every inner loop (REFERENCE 3.1), so Adam has made only the last loop's K steps
    assert steps["q"] == (agent.q_steps if warm_opt else inner_steps)


@pytest.mark.parametrize("model_loss", ["mle", "vep"])
def test_mle_and_vep_step_the_model_first_then_q_on_its_new_predictions_with_a_persistent_optimizer(
        model_loss, in_tmp, monkeypatch):
    """The code's order for the baselines: the model step, then the Q steps on the updated model's
    predictions; their Q optimiser is never re-initialised (only OMD's inner loop does that)."""
    seen = []
    q_step = OMD.q_step

    def recording(self, data, reward, next_observation):
        seen.append((reward.clone(), next_observation.clone(), tensors(self.world_model)))
        return q_step(self, data, reward, next_observation)

    monkeypatch.setattr(OMD, "q_step", recording)
    agent, trainer = fit(model_loss=model_loss, inner_steps=2)
    assert adam_steps(trainer, agent)["q"] == agent.q_steps == 2 * agent.updates
    data = random_batch(32)
    batch = TensorDict({keys.OBSERVATION: data["observation"], keys.ACTION: data["action"].unsqueeze(-1),
                        keys.REWARD: data["reward"].unsqueeze(-1), keys.TERMINATED: data["terminated"].unsqueeze(-1),
                        keys.NEXT_OBSERVATION: data["next_observation"]}, batch_size=[32])
    seen.clear()
    before = tensors(agent.world_model)
    agent.update(batch)
    (reward, next_obs, model_at_q), _ = seen
    assert changed(before, model_at_q)  # the model had stepped before the first Q step
    with torch.no_grad():
        expected_reward, expected_next = agent.world_model(data["observation"], data["action"])
    torch.testing.assert_close(reward, expected_reward, rtol=0, atol=0)
    torch.testing.assert_close(next_obs, expected_next, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- distractors
def test_distractors_widen_the_observation_and_are_standard_normal_and_seeded():
    agent = OMD(distractors=64, max_episode_steps=100)
    env = agent.make_env(seed=7)
    assert env.observation_spec[keys.OBSERVATION].shape == (4 + 64,)
    rollout = env.rollout(200, break_when_any_done=False)  # resets mid-rollout draw fresh distractors too
    obs = torch.cat([rollout[keys.OBSERVATION], rollout[keys.NEXT_OBSERVATION][-1:]])
    assert obs.shape == (201, 68)
    noise = obs[:, 4:]
    n = noise.numel()
    assert abs(float(noise.mean())) < 4 / math.sqrt(n)  # 4 standard errors
    assert abs(float(noise.std()) - 1.0) < 4 * math.sqrt(2 / n) + 1e-3
    assert abs(float((noise**4).mean()) - 3.0) < 0.15  # Gaussian kurtosis, not merely unit variance
    # the base env's own observation is untouched: the same as the plain env with the same seed
    plain = make_env("CartPole-v1", seed=7, max_episode_steps=100)
    torch.manual_seed(0)
    first = agent.make_env(seed=7).rollout(30, break_when_any_done=False)
    torch.manual_seed(0)
    base = plain.rollout(30, break_when_any_done=False)
    torch.testing.assert_close(first[keys.OBSERVATION][:, :4], base[keys.OBSERVATION])
    torch.manual_seed(0)
    second = agent.make_env(seed=7).rollout(30, break_when_any_done=False)
    assert torch.equal(first[keys.OBSERVATION], second[keys.OBSERVATION])  # same seed: same distractors
    torch.manual_seed(0)
    other = agent.make_env(seed=8).rollout(30, break_when_any_done=False)
    assert not torch.equal(first[keys.OBSERVATION][:, 4:], other[keys.OBSERVATION][:, 4:])
    torch.manual_seed(123)  # the distractors never read the global RNG
    env = agent.make_env(seed=7)
    reset = env.reset()[keys.OBSERVATION]
    torch.manual_seed(0)
    env.set_seed(7)  # reseeding the env restarts its distractor stream (evaluators rely on it)
    assert torch.equal(env.reset()[keys.OBSERVATION], reset)
    assert torch.equal(reset, first[keys.OBSERVATION][0])


def test_distractors_on_batched_envs_with_partial_steps():
    agent = OMD(distractors=5, max_episode_steps=40)
    env = agent.make_env(num_envs=3, seed=1)  # what the evaluator builds
    assert env.observation_spec[keys.OBSERVATION].shape == (3, 9)
    rollout = env.rollout(40, lambda td: td.set(keys.ACTION, torch.zeros(3, dtype=torch.long)),
                          break_when_any_done=False, break_when_all_done=True)
    assert rollout[keys.OBSERVATION].shape[-1] == 9
    assert OMD(max_episode_steps=40).make_env(num_envs=3, seed=1).observation_spec[keys.OBSERVATION].shape == (3, 4)
    with pytest.raises(ValueError, match="num_distractors must be a positive int"):
        GaussianDistractors(0)
    wrapped = add_distractors(make_env("CartPole-v1"), 2, seed=None)
    assert wrapped.reset()[keys.OBSERVATION].shape == (6,)
