"""T0: OMD and MLE with SAC as the inner agent (lightning_mbrl.algos.omd_sac; paper 003, Appendix F;
REFERENCE 3.4).

Oracles: the identity implicit gradient against central finite differences of
``theta -> v . grad_w L_inner(theta, w)`` built with plain autograd (no ``torch.func``), and the CG
gradient against the exact ``-(df/dtheta)^T (H + damping I)^{-1} v`` with the Hessian and the mixed
Jacobian materialised, both in float64 on the agent's own networks; the MLE loss against its formula;
the parameter sets each step reaches and Adam's own step counts inside a fit.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from tensordict import TensorDict
from torch import Tensor
from torch.func import functional_call

from lightning_mbrl import keys
from lightning_mbrl.algos.omd_sac import DeterministicContinuousModel, OMDSAC
from lightning_mbrl.errors import ConfigError
from lightning_mbrl.objectives import sac as sac_losses
from tests.unit.test_omd_agent import adam_steps, changed, tensors
from tests.unit.test_omd_objectives import assert_dicts_close, central_difference

F64 = torch.float64
SMALL = dict(env="Pendulum-v1", max_frames=110, init_random_frames=100, batch_size=32, buffer_size=500,
             max_episode_steps=50, hidden=(16, 16), model_hidden=8)


def random_batch(agent: OMDSAC, n: int = 24, seed: int = 1, dtype=F64) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    d, a = agent.spec.observation_dim, agent.spec.action_dim
    return TensorDict({
        keys.OBSERVATION: torch.randn(n, d, generator=g, dtype=dtype),
        keys.ACTION: torch.rand(n, a, generator=g, dtype=dtype) * 2 - 1,
        keys.REWARD: torch.randn(n, 1, generator=g, dtype=dtype),
        keys.TERMINATED: torch.rand(n, 1, generator=g) < 0.2,
        keys.NEXT_OBSERVATION: torch.randn(n, d, generator=g, dtype=dtype),
    }, batch_size=[n])


def double_agent(**kwargs) -> OMDSAC:
    """A small agent in float64 whose target critics differ from the critics, and whose model's biases are
    not zero (with zero biases, a sample whose first-layer units are all dead sits exactly on a ReLU kink
    of the second layer, where finite differences and autograd disagree)."""
    agent = OMDSAC(**{**SMALL, "hidden": (4, 4), "model_hidden": 2, **kwargs}).double()
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        for p in [*agent.critic_target.parameters(), *agent.world_model.parameters()]:
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return agent


# ---------------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize("field, value", [
    ("model_loss", "vep"), ("model_hidden", 0), ("approx", "inverse"), ("inner_steps", 0), ("model_lr", 0.0),
    ("cg_damping", -1.0), ("cg_max_iter", 0),
])
def test_invalid_config_is_one_line_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field) as err:
        OMDSAC(**{**SMALL, field: value})
    assert "\n" not in str(err.value)


def test_cross_field_rules_continuous_envs_only_and_the_codes_defaults():
    with pytest.raises(ConfigError, match="approx='cg' applies to model_loss='omd' only"):
        OMDSAC(**SMALL, model_loss="mle", approx="cg")
    with pytest.raises(ConfigError, match="continuous"):
        OMDSAC(env="CartPole-v1")
    agent = OMDSAC()  # HalfCheetah-v5: 17-d observation, 6-d action
    assert agent.target_entropy == -3.0  # -|A| / 2 (REFERENCE 3.4)
    assert OMDSAC(target_entropy=-1.5).target_entropy == -1.5
    model = agent.world_model.net
    assert (model[0].in_features, model[0].out_features, model[-1].out_features) == (23, 64, 18)
    assert set(agent.make_optimizers()) == {"critic", "actor", "alpha", "model"}
    assert not OMDSAC.bf16_by_default


def test_the_model_predicts_the_next_observation_directly_and_the_reward_last():
    model = DeterministicContinuousModel(3, 2, (5, 5))
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    reward, next_obs = model(obs, act)
    out = model.net(torch.cat([obs, act], -1))
    torch.testing.assert_close(reward, out[:, 3], rtol=0, atol=0)
    torch.testing.assert_close(next_obs, out[:, :3], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- the implicit gradient
def references(agent: OMDSAC, batch: TensorDict, noises: tuple[Tensor, Tensor]):
    """``v = dL_true/dw`` and ``f(theta) = grad_w L_inner(theta, w)`` (a flat vector), with plain autograd."""
    w = {n: p.detach().clone().requires_grad_(True) for n, p in agent.critic.named_parameters()}
    obs, act = batch[keys.OBSERVATION], batch[keys.ACTION]
    done = batch[keys.TERMINATED].squeeze(-1)

    def critic_loss(params, target):
        q = functional_call(agent.critic, params, (obs, act))
        return 0.5 * (q - target).square().mean(dim=1).sum()

    with torch.no_grad():
        real_target = sac_losses.soft_td_target(batch[keys.REWARD].squeeze(-1), done, batch[keys.NEXT_OBSERVATION],
                                                agent.actor, agent.critic_target, agent.temperature(),
                                                agent.hparams.gamma, noise=noises[1])
    v = torch.autograd.grad(critic_loss(w, real_target), list(w.values()))
    v = torch.cat([t.reshape(-1) for t in v])

    # The code's target: a' drawn at a stop-gradient of s_hat', so for theta near the agent's own the next
    # action and its log-probability are those at the agent's s_hat' (the finite differences hold them fixed).
    with torch.no_grad():
        _, base_next_obs = agent.world_model(obs, act)
        next_action, next_log_prob = agent.actor.squash(base_next_obs, noises[0])
    gamma, alpha = agent.hparams.gamma, agent.temperature()

    def f(theta) -> Tensor:  # differentiable in theta (for the Jacobian), or a plain function (finite differences)
        reward, next_obs = functional_call(agent.world_model, theta, (obs, act))
        next_q = agent.critic_target(next_obs, next_action).min(dim=0).values
        target = reward + gamma * (1.0 - done.to(reward.dtype)) * (next_q - alpha * next_log_prob)
        grads = torch.autograd.grad(critic_loss(w, target), list(w.values()), create_graph=True)
        return torch.cat([t.reshape(-1) for t in grads])

    return v, f


def implicit_case(agent: OMDSAC):
    """The agent's implicit gradient on a fixed random batch with fixed noises, and the references' ``v`` and
    ``f`` there, with the model's parameters ``theta`` (detached)."""
    batch = random_batch(agent)
    g = torch.Generator().manual_seed(7)
    noises = tuple(torch.randn(24, agent.spec.action_dim, generator=g, dtype=F64) for _ in range(2))
    grads, out = agent.implicit_model_gradient(batch, noises)
    v, f = references(agent, batch, noises)
    theta = {n: p.detach().clone() for n, p in agent.world_model.named_parameters()}
    return batch, noises, grads, out, v, f, theta


def test_identity_implicit_gradient_matches_finite_differences():
    agent = double_agent()
    batch, noises, grads, out, v, f, theta = implicit_case(agent)
    expected = central_difference(lambda th: -(v @ f(th)), theta, eps=1e-6)
    assert_dicts_close(grads, expected, rtol=1e-5, atol=1e-9)
    assert max(float(t.abs().max()) for t in grads.values()) > 1e-4  # the model does get a gradient
    assert set(out.keys()) == {"loss_outer"}


def test_cg_implicit_gradient_matches_the_exact_damped_inverse():
    damping = 1.0  # makes H + damping I positive definite for this small problem (checked below)
    agent = double_agent(approx="cg", cg_damping=damping, cg_max_iter=500)
    batch, noises, grads, out, v, f, theta = implicit_case(agent)
    names, shapes = list(theta), [t.shape for t in theta.values()]
    flat_theta = torch.cat([t.reshape(-1) for t in theta.values()])

    def unflat(flat):
        return dict(zip(names, (c.view(s) for c, s in zip(flat.split([s.numel() for s in shapes]), shapes))))

    mixed = torch.autograd.functional.jacobian(lambda th: f(unflat(th)), flat_theta)  # [n_w, n_theta]
    w = {n: p.detach().clone() for n, p in agent.critic.named_parameters()}
    w_names, w_shapes = list(w), [t.shape for t in w.values()]
    flat_w = torch.cat([t.reshape(-1) for t in w.values()])
    obs, act = batch[keys.OBSERVATION], batch[keys.ACTION]
    reward, next_obs = agent.world_model(obs, act)
    target = sac_losses.soft_td_target(reward.detach(), batch[keys.TERMINATED].squeeze(-1), next_obs.detach(),
                                       agent.actor, agent.critic_target, agent.temperature(), agent.hparams.gamma,
                                       noise=noises[0])

    def inner(flat):
        params = dict(zip(w_names, (c.view(s) for c, s in zip(flat.split([s.numel() for s in w_shapes]), w_shapes))))
        return 0.5 * (functional_call(agent.critic, params, (obs, act)) - target).square().mean(dim=1).sum()

    damped = torch.autograd.functional.hessian(inner, flat_w) + damping * torch.eye(flat_w.numel(), dtype=F64)
    assert torch.linalg.eigvalsh(damped).min() > 0  # the test's precondition: CG's system is positive definite
    expected = unflat(-(mixed.T @ torch.linalg.solve(damped, v)))
    assert_dicts_close(grads, expected, rtol=1e-4, atol=1e-8)
    assert int(out["cg_iterations"]) > 1


def test_mle_loss_against_its_formula():
    agent = OMDSAC(**SMALL, model_loss="mle")
    batch = random_batch(agent, dtype=torch.float32)
    reward, next_obs = torch.randn(24), torch.randn(24, agent.spec.observation_dim)
    out = agent.model_losses(batch, reward, next_obs)
    dyn = sum(((next_obs[i] - batch[keys.NEXT_OBSERVATION][i]) ** 2).sum() for i in range(24)) / 24
    rew = sum((reward[i] - batch[keys.REWARD][i, 0]) ** 2 for i in range(24)) / 24
    torch.testing.assert_close(out["loss_dynamics"], dyn)
    torch.testing.assert_close(out["loss_reward"], rew)
    torch.testing.assert_close(out["loss_model"], dyn + rew)


# ---------------------------------------------------------------------------------------------- inside a fit
class StepProbe(pl.Callback):
    """After the first iteration with updates: one inner step and one model step on a fixed real batch,
    recording what each changed and how far each optimizer stepped."""

    def __init__(self) -> None:
        self.record: dict = {}

    def measure(self, trainer, agent, step):
        before, steps = tensors(agent), adam_steps(trainer, agent)
        out = step()
        after = adam_steps(trainer, agent)
        return {"changed": changed(before, tensors(agent)), "steps": {n: after[n] - steps[n] for n in after}, "out": out}

    def on_train_batch_end(self, trainer, agent, *args) -> None:
        if self.record or agent.warming_up:
            return
        batch = agent.sample(agent.hparams.batch_size)
        obs = batch[keys.OBSERVATION]
        # predictions that carry the model's graph: the inner step must keep the model out all the same
        reward, next_obs = agent.world_model(obs, batch[keys.ACTION])
        imagined = batch.select(keys.OBSERVATION, keys.ACTION, keys.TERMINATED).set(
            keys.REWARD, reward.unsqueeze(-1)).set(keys.NEXT_OBSERVATION, next_obs)
        agent.world_model.zero_grad(set_to_none=True)
        self.record["inner"] = self.measure(trainer, agent, lambda: agent.inner_step(imagined, obs))
        self.record["inner"]["model_grads"] = [p.grad for p in agent.world_model.parameters()]

        def model_step():
            if agent.hparams.model_loss == "omd":  # the same noise draws as the step's own
                torch.manual_seed(11)
                self.record["expected_grads"] = agent.implicit_model_gradient(batch)[0]
                torch.manual_seed(11)
            reward, next_obs = agent.world_model(obs, batch[keys.ACTION])
            return agent.model_step(batch, reward, next_obs)

        self.record["model"] = self.measure(trainer, agent, model_step)
        self.record["model"]["grads"] = {n: p.grad.clone() for n, p in agent.world_model.named_parameters()}


def fit(callbacks=(), **kwargs) -> tuple[OMDSAC, pl.Trainer]:
    agent = OMDSAC(**{**SMALL, **kwargs})
    trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(agent)
    return agent, trainer


def names(agent: OMDSAC, *prefixes: str) -> set[str]:
    return {n for n in agent.state_dict() if n.startswith(prefixes)}


@pytest.mark.parametrize("model_loss", ["omd", "mle"])
def test_inner_step_moves_the_sac_agent_and_model_step_only_the_model(model_loss, in_tmp):
    probe = StepProbe()
    agent, trainer = fit([probe], model_loss=model_loss)
    inner, model = probe.record["inner"], probe.record["model"]
    assert inner["changed"] == names(agent, "critic.", "critic_target.", "actor.", "log_alpha")
    assert inner["steps"] == {"critic": 1, "actor": 1, "alpha": 1, "model": 0}
    assert all(g is None for g in inner["model_grads"])
    assert model["changed"] == names(agent, "world_model.")
    assert model["steps"] == {"critic": 0, "actor": 0, "alpha": 0, "model": 1}
    if model_loss == "omd":
        assert_dicts_close(model["grads"], probe.record["expected_grads"], rtol=1e-6, atol=1e-9)
        assert "loss_outer" in model["out"].keys()
    else:
        assert {"loss_model", "loss_dynamics", "loss_reward", "loss_outer"} <= set(model["out"].keys())


def test_the_inner_critic_trains_on_the_models_predictions(in_tmp, monkeypatch):
    """OMD: the critic's target in the inner step is built from ``(r_hat, s_hat')`` of the model before its
    step, not from the real ``(r, s')`` (MLE: the next test)."""
    seen = []
    td_target = OMDSAC.td_target

    def recording(self, batch, grad_to_inputs=False):
        seen.append(batch.clone())
        return td_target(self, batch, grad_to_inputs)

    monkeypatch.setattr(OMDSAC, "td_target", recording)

    class Probe(pl.Callback):
        def on_train_batch_end(self, trainer, agent, *args):
            if agent.updates == 1 and not hasattr(self, "done"):
                self.done = True
                seen.clear()
                batch = agent.sample(agent.hparams.batch_size)
                with torch.no_grad():
                    reward, next_obs = agent.world_model(batch[keys.OBSERVATION], batch[keys.ACTION])
                agent.update(batch)
                (first, *_) = seen
                torch.testing.assert_close(first[keys.NEXT_OBSERVATION], next_obs, rtol=0, atol=0)
                torch.testing.assert_close(first[keys.REWARD].squeeze(-1), reward, rtol=0, atol=0)
                self.checked = True

    probe = Probe()
    fit([probe], model_loss="omd")
    assert probe.checked


def test_mle_steps_the_model_first_and_the_critic_trains_on_its_new_predictions(in_tmp, monkeypatch):
    seen = []
    inner_step = OMDSAC.inner_step

    def recording(self, imagined, observation):
        seen.append((imagined.clone(), tensors(self.world_model)))
        return inner_step(self, imagined, observation)

    monkeypatch.setattr(OMDSAC, "inner_step", recording)
    agent, trainer = fit(model_loss="mle")
    batch = random_batch(agent, n=32, dtype=torch.float32)
    seen.clear()
    before = tensors(agent.world_model)
    agent.update(batch)
    ((imagined, model_at_inner),) = seen
    assert changed(before, model_at_inner)  # the model had stepped before the inner step
    with torch.no_grad():
        reward, next_obs = agent.world_model(batch[keys.OBSERVATION], batch[keys.ACTION])
    torch.testing.assert_close(imagined[keys.REWARD].squeeze(-1), reward, rtol=0, atol=0)
    torch.testing.assert_close(imagined[keys.NEXT_OBSERVATION], next_obs, rtol=0, atol=0)


def test_the_models_initialisation_is_the_codes():
    for layer in [m for m in OMDSAC().world_model.modules() if isinstance(m, torch.nn.Linear)]:
        w = layer.weight.detach()  # orthogonal with gain sqrt(2), the output layer too; zero biases
        small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        torch.testing.assert_close(small, 2.0 * torch.eye(small.shape[0]), atol=1e-5, rtol=0)
        assert not layer.bias.any()


@pytest.mark.parametrize("model_loss, inner_steps", [("omd", 2), ("mle", 1)])
def test_update_accounting(model_loss, inner_steps, in_tmp):
    agent, trainer = fit(model_loss=model_loss, inner_steps=inner_steps)
    assert agent.frames == 110 and agent.updates == 10
    assert agent.inner_updates == inner_steps * agent.updates
    assert adam_steps(trainer, agent) == {"critic": inner_steps * 10, "actor": inner_steps * 10,
                                          "alpha": inner_steps * 10, "model": 10}
