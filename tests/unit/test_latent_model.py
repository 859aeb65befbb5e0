"""T0 for paper 001's latent-space models (``models.latent_model``) and the latent agents of
``algos.dyna_dqn``: the straight-through one-hot, the Gaussian std and sample, KL balancing against a
hand computation (and which side each weight trains), the routing of every loss term, the latent
agents' Q (latent input, acting on encoded observations, rollouts from encoded real starts, no Q step
on real data), batched seeds against each seed run alone, and a smoke run under a Trainer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions

from lightning_mbrl import keys
from lightning_mbrl.algos.dyna_dqn import TUNED, DynaDQN
from lightning_mbrl.models.latent_model import (STREAMS, LatentModel, balanced_kl, gaussian_std,
                                                straight_through_one_hot)
from lightning_mbrl.models.simple_model import HEAD_STREAMS
from lightning_mbrl.objectives import dyna_dqn
from lightning_mbrl.objectives.dyna_dqn import softmax_actions
from tests.unit.test_dyna_dqn import TINY, assert_seed_matches, grads, make, run

KINDS = ["categorical", "gaussian"]
D, A = 6, 3  # observation length and actions of the model-level tests


def tiny_model(kind: str, seeds=(0, 1), **kwargs) -> LatentModel:
    return LatentModel(list(seeds), D, A, kind, hidden=(8,), **{"num_features": 4, "num_classes": 3, **kwargs})


def batch(E: int = 2, B: int = 5, terminated: list[bool] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    term = torch.tensor(terminated or [False, True, False, False, True][:B]).expand(E, B)
    return dict(observation=(torch.rand(E, B, D, generator=g) < 0.5).float(),
                action=torch.randint(A, (E, B), generator=g), reward=torch.randn(E, B, generator=g),
                next_observation=(torch.rand(E, B, D, generator=g) < 0.5).float(), terminated=term,
                uniform=torch.rand(E, B, 4, generator=g))


# ----------------------------------------------------------------------------- latents
def test_straight_through_one_hot_is_the_inverse_cdf_sample_forward_and_the_softmax_backward() -> None:
    logits = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4])).expand(4, 4).clone().requires_grad_(True)
    sample = straight_through_one_hot(logits, torch.tensor([0.05, 0.15, 0.35, 0.99]))
    assert torch.equal(sample, torch.eye(4))  # exactly one-hot: cdf 0.1, 0.3, 0.6, 1
    w = torch.randn(4, 4)
    (sample * w).sum().backward()
    expected = torch.autograd.grad((torch.softmax(logits, -1) * w).sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)
    assert not torch.equal(logits.grad, torch.zeros(4, 4))


def test_gaussian_std_at_chosen_pre_activations() -> None:
    x = torch.tensor([-200.0, -2.0, 0.0, 2.0, 200.0])
    two_sigmoid = [0.0, 2 / (1 + math.e), 1.0, 2 / (1 + math.exp(-1)), 2.0]
    torch.testing.assert_close(gaussian_std(x, 0.1), torch.tensor([1e-6 + 0.1] + [v + 0.1 for v in two_sigmoid[1:]]))
    torch.testing.assert_close(gaussian_std(x, 0.0), torch.tensor([1e-6] + two_sigmoid[1:]))


def set_output(net, bias: torch.Tensor) -> None:
    """Make the network's output the constant ``bias`` (zero last-layer weights)."""
    with torch.no_grad():
        net.layers[-1].weight.zero_()
        net.layers[-1].bias.copy_(bias)


def test_gaussian_encoder_adds_min_std_the_prior_does_not_and_samples_are_not_squashed() -> None:
    model = tiny_model("gaussian")
    mu, pre = torch.tensor([3.0, -3.0, 0.0, 1.0]), torch.tensor([0.0, 2.0, -200.0, -2.0])
    set_output(model.encoder, torch.cat([mu, pre]))
    set_output(model.transition, torch.cat([mu, pre]))
    obs = torch.rand(2, 1, D)
    posterior = model.posterior(obs)
    torch.testing.assert_close(posterior.scale[0, 0], gaussian_std(pre, 0.1))
    prior = model.distribution(model.transition(torch.rand(2, 1, 4 + A)), 0.0)
    torch.testing.assert_close(prior.scale[0, 0], gaussian_std(pre, 0.0))
    # z = mu + std Phi^-1(u): u = 1/2 gives mu itself (no tanh: 3 stays 3), u = Phi(1) gives mu + std.
    half, phi1 = torch.full((2, 1, 4), 0.5), torch.full((2, 1, 4), 0.5 * (1 + math.erf(1 / math.sqrt(2))))
    torch.testing.assert_close(model.features(obs, half)[0, 0], mu)
    torch.testing.assert_close(model.features(obs, phi1)[0, 0], mu + gaussian_std(pre, 0.1))
    next_latent, _, _ = model.sample(torch.rand(2, 1, 4), torch.zeros(2, 1, dtype=torch.long), phi1)
    torch.testing.assert_close(next_latent[0, 0], mu + gaussian_std(pre, 0.0))


# ----------------------------------------------------------------------------- KL balancing
def hand_kl(post_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
    """``sum_f sum_k q_fk (log q_fk - log p_fk)``, written out."""
    q, p = torch.softmax(post_logits, -1), torch.softmax(prior_logits, -1)
    return (q * (q.log() - p.log())).sum((-2, -1))


def test_kl_balancing_against_a_hand_computation_for_tiny_categoricals() -> None:
    post = torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.0, 1.0]], requires_grad=True)  # 2 variables x 3 classes
    prior = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 1.0, 0.0]], requires_grad=True)
    q, p = distributions.Categorical(logits=post), distributions.Categorical(logits=prior)
    sg_q, sg_p = distributions.Categorical(logits=post.detach()), distributions.Categorical(logits=prior.detach())
    loss = balanced_kl(q, p, sg_q, sg_p)
    torch.testing.assert_close(loss, hand_kl(post, prior))  # 0.8 KL + 0.2 KL in value
    loss.backward()
    d_post, d_prior = torch.autograd.grad(hand_kl(post, prior), (post, prior))
    torch.testing.assert_close(prior.grad, 0.8 * d_prior)  # the 0.8 part: the prior side only
    torch.testing.assert_close(post.grad, 0.2 * d_post)  # the 0.2 part: the posterior side only


def test_loss_kl_trains_the_prior_with_08_and_the_encoder_through_both_sides() -> None:
    """Network level, official routing: the transition gets 0.8 of the KL's gradient; the encoder gets
    0.2 of it through ``q(. | o')`` plus 0.8 through the prior's input ``z ~ q(. | o)``."""
    model, b = tiny_model("categorical"), batch()

    def hand(stop_post: bool, stop_prior: bool) -> torch.Tensor:
        z = model.features(b["observation"], b["uniform"])
        prior = model.transition(torch.cat([z, F.one_hot(b["action"], A).float()], -1)).unflatten(-1, (4, 3))
        post = model.encoder(b["next_observation"]).unflatten(-1, (4, 3))
        post, prior = (post.detach() if stop_post else post), (prior.detach() if stop_prior else prior)
        return hand_kl(post, prior).mean(-1).sum()

    params = {"transition": list(model.transition.parameters()), "encoder": list(model.encoder.parameters())}
    got = {k: torch.autograd.grad(model.loss(**b)["loss_kl"].sum(), v) for k, v in params.items()}
    to_prior = {k: torch.autograd.grad(hand(True, False), v, allow_unused=True) for k, v in params.items()}
    to_post = {k: torch.autograd.grad(hand(False, True), v, allow_unused=True) for k, v in params.items()}
    assert all(g is None for g in to_post["transition"])  # the 0.2 part never reaches the prior network
    for a, b_ in zip(got["transition"], to_prior["transition"]):
        torch.testing.assert_close(a, 0.8 * b_)
    for a, b_, c in zip(got["encoder"], to_prior["encoder"], to_post["encoder"]):
        torch.testing.assert_close(a, 0.8 * b_ + 0.2 * c)


# ----------------------------------------------------------------------------- routing
ROUTES = {"loss_reward": {"reward", "encoder"}, "loss_continuation": {"continuation", "encoder"},
          "loss_reconstruction": {"decoder", "encoder"}, "loss_kl": {"transition", "encoder"}}


@pytest.mark.parametrize("kind", KINDS)
def test_routing_of_each_model_loss_term(kind: str) -> None:
    model = tiny_model(kind)
    losses = model.loss(**batch())
    assert set(losses.keys()) == set(ROUTES) and all(v.shape == (2,) for v in losses.values())
    for term, value in losses.items():
        model.zero_grad(set_to_none=True)
        value.sum().backward(retain_graph=True)
        assert {n.split(".")[0] for n, g in grads(model).items() if g} == ROUTES[term], term
        # every parameter of a reached network gets a gradient, member by member
        for name, p in model.named_parameters():
            if name.split(".")[0] in ROUTES[term]:
                assert all(bool(p.grad[e].abs().sum() > 0) for e in range(2)), (term, name)


@pytest.mark.parametrize("kind", KINDS)
def test_reconstruction_is_masked_on_terminal_transitions_and_the_kl_is_not(kind: str) -> None:
    model = tiny_model(kind)
    ended = model.loss(**batch(terminated=[True] * 5))
    assert torch.equal(ended["loss_reconstruction"], torch.zeros(2))
    assert (ended["loss_kl"] > 0).all() and (ended["loss_reward"] > 0).all()
    alive = model.loss(**batch(terminated=[False] * 5))
    mixed = model.loss(**batch())  # 3 of 5 alive
    torch.testing.assert_close(mixed["loss_kl"], alive["loss_kl"])
    assert (mixed["loss_reconstruction"] < alive["loss_reconstruction"]).all()


# ----------------------------------------------------------------------------- the latent agents
def latent_agent(kind: str, **overrides) -> DynaDQN:
    return make(agent=kind, seeds=2, learning_starts=100, **overrides)


def test_each_network_of_a_seed_has_its_own_init_stream() -> None:
    assert len(set(STREAMS.values())) == len(STREAMS) == 5
    assert not set(STREAMS.values()) & {0, *HEAD_STREAMS.values()}  # Q's and the simple model's streams
    model = LatentModel([0, 1], D, A, "gaussian", hidden=(8,), num_features=D)  # equal first-layer shapes
    first = {name: getattr(model, name).layers[0].weight for name in ("encoder", "decoder")}
    assert first["encoder"].shape == first["decoder"].shape and not torch.allclose(first["encoder"], first["decoder"])


@pytest.mark.parametrize("kind, latent_dim", [("categorical", 32 * 32), ("gaussian", 32)])
def test_q_works_on_latents(kind: str, latent_dim: int) -> None:
    agent = latent_agent(kind)
    assert isinstance(agent.model, LatentModel) and agent.model.latent_dim == latent_dim
    assert agent.q.layers[0].in_dim == agent.q_target.layers[0].in_dim == latent_dim
    assert agent.optimizer("model").param_groups[0]["lr"] == agent.hparams.model_lr
    assert agent.optimizer("q").param_groups[0]["lr"] == agent.hparams.lr


@pytest.mark.parametrize("kind", KINDS)
def test_the_agent_acts_on_an_encoded_observation_from_its_own_draws(kind: str) -> None:
    # many envs and a low temperature, so that the actions depend on the latent Q sees
    agent = run(latent_agent(kind, envs_per_seed=32, temperature=1e-3), 3)
    state, saved = agent.env_state.clone(), [g.get_state() for g in agent.generators]
    transition = agent.act_and_step()
    for g, s in zip(agent.generators, saved):
        g.set_state(s)
    Z, E, n_actions = agent.model.noise_dim, 32, agent.core.num_actions
    u = agent._uniforms(E * (n_actions + Z)).reshape(2, E, n_actions + Z)  # per env: actions, then the latent
    with torch.no_grad():
        latent = agent.model.features(agent.core.observation(state), u[..., n_actions:])
        expected = softmax_actions(agent.q(latent), agent.hparams.temperature, u[..., :n_actions])
    assert torch.equal(transition[keys.ACTION], expected)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_encodes_with_the_eval_generators_only(kind: str) -> None:
    agent = run(latent_agent(kind), 3)
    train_states = [g.get_state() for g in agent.generators + agent.env_generators]
    eval_states = [g.get_state() for g in agent.eval_generators]
    first = agent.evaluate()
    assert all(torch.equal(a, g.get_state()) for a, g in zip(train_states, agent.generators + agent.env_generators))
    for g, state in zip(agent.eval_generators, eval_states):
        g.set_state(state)
    torch.testing.assert_close(agent.evaluate(), first)


@pytest.mark.parametrize("kind", KINDS)
def test_q_steps_only_on_rollouts_from_encoded_real_starts(kind: str, monkeypatch) -> None:
    agent = run(latent_agent(kind), 8)
    starts, q_batches = [], []
    imagine, td_loss = dyna_dqn.imagine, dyna_dqn.td_loss
    monkeypatch.setattr(dyna_dqn, "imagine",
                        lambda model, q, start, *a: starts.append(start) or imagine(model, q, start, *a))
    monkeypatch.setattr(dyna_dqn, "td_loss", lambda q, t, b, g: q_batches.append(b) or td_loss(q, t, b, g))
    saved = [g.get_state() for g in agent.generators]
    logs = agent.update()
    assert set(ROUTES) | {"loss_q", "q_mean"} == set(logs)
    (start,), (imagined,) = starts, q_batches
    # The Q step sees batch_size imagined latent transitions only (no real-data Q step).
    N, L, M, Z = agent.n_starts, TINY["rollout_length"], TINY["model_batch_size"], agent.model.noise_dim
    assert imagined.batch_size == (2, N * L) and dyna_dqn.WEIGHT in imagined.keys()
    assert imagined[keys.OBSERVATION].shape[-1] == agent.model.latent_dim
    torch.testing.assert_close(imagined[keys.OBSERVATION][:, :N], start)
    # The starts are the first N sampled real observations, encoded by the model after its step.
    for g, s in zip(agent.generators, saved):
        g.set_state(s)
    n_actions = agent.core.num_actions
    u = agent._uniforms(agent.n_sampled + (M + N) * Z + L * N * (n_actions + Z))
    real = agent.sample(u[:, : agent.n_sampled])[:, :N][keys.OBSERVATION]
    u_start = u[:, agent.n_sampled + M * Z: agent.n_sampled + (M + N) * Z].reshape(2, N, Z)
    with torch.no_grad():
        torch.testing.assert_close(start, agent.model.features(real, u_start))
    if kind == "categorical":
        assert torch.equal(start.unflatten(-1, (32, 32)).sum(-1), torch.ones(2, N, 32))


@pytest.mark.parametrize("kind", KINDS)
def test_the_q_loss_never_reaches_the_model(kind: str) -> None:
    agent = run(latent_agent(kind), 5)
    obs = agent.sample(torch.rand(2, 4))[keys.OBSERVATION]
    start = agent.model.features(obs, torch.rand(2, 4, agent.model.noise_dim))  # with a graph, on purpose
    assert start.requires_grad
    n_actions, Z = agent.core.num_actions, agent.model.noise_dim
    imagined = dyna_dqn.imagine(agent.model, agent.q, start, 2, 1.0, torch.rand(2, 2, 4, n_actions + Z))
    agent.zero_grad(set_to_none=True)
    dyna_dqn.td_loss(agent.q, agent.q_target, imagined, 0.9)["loss_q"].sum().backward()
    assert all(grads(agent.q).values())
    assert not any(p.grad is not None for p in agent.model.parameters())
    assert not any(p.grad is not None for p in agent.q_target.parameters())
    # and the model losses never reach Q
    real = agent.sample(torch.rand(2, 4))
    agent.zero_grad(set_to_none=True)
    sum(agent.model.loss(real[keys.OBSERVATION], real[keys.ACTION], real[keys.REWARD], real[keys.NEXT_OBSERVATION],
                         real[keys.TERMINATED], torch.rand(2, 4, Z)).values()).sum().backward()
    assert not any(p.grad is not None for p in agent.q.parameters())


@pytest.mark.parametrize("kind, env", [("categorical", "gridworld/procmaze-3"), ("gaussian", "gridworld/procmaze-3"),
                                       ("gaussian", "gridworld/panflute-3")])
def test_batched_seeds_follow_each_seed_run_alone(kind: str, env: str) -> None:
    batched = run(make(agent=kind, env=env, seed=5, seeds=3), 30)
    alone = run(make(agent=kind, env=env, seed=6, seeds=1), 30)
    assert batched.updates_done == alone.updates_done == 25 and len(batched.eval_curve_steps) == 3
    assert_seed_matches(batched, 1, alone)
    for a, b in zip(batched.model.parameters(), alone.model.parameters()):
        torch.testing.assert_close(a[1], b[0], rtol=1e-5, atol=1e-6)
    for a in [*batched.q.parameters(), *batched.model.parameters()]:  # the seeds are distinct runs
        assert not torch.allclose(a[0], a[1]) and not torch.allclose(a[1], a[2])


def test_tuned_settings_of_the_latent_agents() -> None:
    for kind in KINDS:
        assert {(e, r) for (a, e, r) in TUNED if a == kind} == {
            (e, r) for e in ("procmaze", "buttongrid", "panflute") for r in ("high", "low")}
    # the official configs (ProcMaze, high data): Q_alpha / softmax_temp
    assert TUNED[("categorical", "procmaze", "high")] == (2e-4, 1.6)
    assert TUNED[("gaussian", "procmaze", "high")] == (3.125e-6, 12.8)
