"""T0: what the world model offers the algorithms still to come (MAAC's pathwise gradient and
STEVE targets): every member's prediction of a step, each equal to that member run alone, and a
differentiable rollout that records the policy's log-probabilities, whose gradient with respect to
the policy's parameters matches finite differences."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from lightning_mbrl import keys
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.rollout import WorldModel
from lightning_mbrl.models.world_model import EnsembleDynamics

OBS, ACT, N = 3, 2, 5
F64 = torch.float64


def make_dynamics(seed: int = 0, **kwargs) -> EnsembleDynamics:
    torch.manual_seed(seed)
    wm = EnsembleDynamics(OBS, ACT, n_members=4, n_elites=2, hidden=(16, 16), weight_decays=(0, 0, 0), **kwargs)
    wm = wm.double()
    with torch.no_grad():  # a non-trivial normaliser
        wm.ensemble.fit_normalizer(torch.randn(64, OBS + ACT, dtype=F64) * 2 + 1)
    return wm


def member_alone(wm: EnsembleDynamics, e: int) -> EnsembleDynamics:
    """A one-member model holding member ``e``'s weights (and the same normaliser and bounds)."""
    alone = EnsembleDynamics(OBS, ACT, n_members=1, n_elites=1, hidden=(16, 16), weight_decays=(0, 0, 0),
                             termination_fn=wm.termination_fn, learn_termination=wm.learn_termination).double()
    state = copy.deepcopy(wm.state_dict())
    for name, value in list(state.items()):
        if ".layers." in name:
            state[name] = value[e : e + 1]
    state["ensemble.elites"] = torch.zeros(1, dtype=torch.long)
    alone.load_state_dict(state)
    return alone


def test_per_member_predictions_equal_each_member_run_alone():
    done = lambda obs, act, nxt: nxt[..., 0] > 0.3  # noqa: E731 -- a known termination on the prediction
    wm = make_dynamics(termination_fn=done)
    obs, action = torch.randn(N, OBS, dtype=F64), torch.rand(N, ACT, dtype=F64) * 2 - 1
    td = TensorDict({keys.OBSERVATION: obs, keys.ACTION: action}, batch_size=[N])
    members = wm.step(td, members=True, mode="mean")
    assert members.batch_size == (4, N) and torch.equal(members[keys.OBSERVATION][2], obs)
    next_obs, reward, terminated = (members[keys.NEXT_OBSERVATION], members[keys.REWARD].squeeze(-1),
                                    members[keys.TERMINATED].squeeze(-1))
    assert next_obs.shape == (4, N, OBS) and reward.shape == terminated.shape == (4, N)
    assert keys.NEXT not in td.keys()  # members=True returns a new TensorDict
    for e in range(4):
        alone = member_alone(wm, e)
        expected = alone.transition(obs, action, mode="mean")
        torch.testing.assert_close(next_obs[e], expected[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(reward[e], expected[1], rtol=0, atol=1e-12)
        assert torch.equal(terminated[e], expected[2])
        # sampling: member e's mean plus its own sigma times the noise
        torch.manual_seed(7)
        sampled = wm.step(td.clone(), members=True, mode="sample")[keys.REWARD][..., 0]
        torch.manual_seed(7)
        noise = torch.randn(4, N, 1 + OBS, dtype=F64)
        mean, logvar = alone.ensemble(alone.make_inputs(obs, action))
        torch.testing.assert_close(sampled[e], mean[0, :, 0] + (0.5 * logvar[0, :, 0]).exp() * noise[e, :, 0])
    assert terminated.any() and not terminated.all()  # the test sees both outcomes


def test_a_member_subset_is_those_members_of_the_full_prediction():
    """``members=tensor([3, 1])``: rows 3 and 1 of ``members=True``, from a shared input and, with
    ``member_inputs``, each member from its own row (STEVE's continuing trajectories)."""
    wm = make_dynamics(learn_termination=True)
    obs, action = torch.randn(N, OBS, dtype=F64), torch.rand(N, ACT, dtype=F64) * 2 - 1
    subset = torch.tensor([3, 1])
    td = TensorDict({keys.OBSERVATION: obs, keys.ACTION: action}, batch_size=[N])
    full = wm.step(td, members=True, mode="mean")[keys.NEXT]
    part = wm.step(td, members=subset, mode="mean")
    assert part.batch_size == (2, N)
    for key in (keys.OBSERVATION, "reward", "continue_prob"):
        torch.testing.assert_close(part[keys.NEXT, key], full[key][subset], rtol=0, atol=1e-12)
    own = TensorDict({keys.OBSERVATION: torch.randn(4, N, OBS, dtype=F64), keys.ACTION: action.expand(4, N, ACT)},
                     batch_size=[4, N])
    full = wm.step(own, members=True, member_inputs=True, mode="mean")[keys.NEXT]
    part = wm.step(own[subset], members=subset, member_inputs=True, mode="mean")[keys.NEXT]
    torch.testing.assert_close(part[keys.OBSERVATION], full[keys.OBSERVATION][subset], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="leading batch dim must be the 2 members"):
        wm.step(own, members=subset, member_inputs=True)


def rollout_objective(wm: EnsembleDynamics, actor: TanhGaussianActor, start: torch.Tensor, seed: int = 3):
    """MAAC's shape of objective: sum of rewards minus 0.1 log pi along a 3-step sampled rollout."""
    torch.manual_seed(seed)
    td = wm.rollout(start, actor.sample, 3, mode="sample", differentiable=True)
    return (td[keys.REWARD] - 0.1 * td[keys.ACTION_LOG_PROB]).sum(), td


def test_differentiable_rollout_records_log_probs_and_its_policy_gradient_matches_finite_differences():
    wm = make_dynamics()
    torch.manual_seed(1)
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    start = torch.randn(N, OBS, dtype=F64)
    value, td = rollout_objective(wm, actor, start)
    assert td[keys.ACTION_LOG_PROB].shape == (3, N, 1) and td[keys.ACTION_LOG_PROB].requires_grad
    params = [p for p in actor.parameters()]
    grads = torch.autograd.grad(value, params)
    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, grads):
            for index in [(0,) * p.dim(), tuple(s - 1 for s in p.shape)]:
                p[index] += eps
                up = rollout_objective(wm, actor, start)[0]
                p[index] -= 2 * eps
                down = rollout_objective(wm, actor, start)[0]
                p[index] += eps
                torch.testing.assert_close(g[index], (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)
    # the model's parameters are on the path too (MAAC leaves them out of its optimizer, not the graph)
    assert all(p.grad is None for p in wm.parameters())


def test_a_non_differentiable_rollout_builds_no_graph_and_plain_policies_record_no_log_prob():
    wm = make_dynamics()
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    td = wm.rollout(torch.randn(N, OBS, dtype=F64), actor.sample, 2, differentiable=False)
    assert not td[keys.REWARD].requires_grad and not td[keys.ACTION_LOG_PROB].requires_grad
    td = wm.rollout(torch.randn(N, OBS, dtype=F64), actor.mode, 2)
    assert keys.ACTION_LOG_PROB not in td.keys()


# ---------------------------------------------------------------------------------------------- paper 001's models
def bit_flip(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 3-bit gridworld stand-in: action i flips bit i; reward 1 and termination when all bits are set."""
    nxt = obs.clone()
    nxt[torch.arange(len(obs)), action] = 1.0 - nxt[torch.arange(len(obs)), action]
    done = nxt.sum(-1) == 3
    return nxt, done.to(obs.dtype), done


def test_a_bernoulli_observation_model_with_discrete_actions_and_learned_termination_learns_a_bit_world():
    """Binary observation features, one-hot actions, learned reward and continuation probability,
    through the same ``step(td)`` contract as MBPO's model, fitted by the same ``fit_ensemble``."""
    from lightning_mbrl.models.model_training import fit_ensemble, make_model_optimizer

    torch.manual_seed(0)
    wm = EnsembleDynamics(3, 3, n_members=3, n_elites=2, hidden=(32, 32), weight_decays=(0, 0, 0),
                          observation_model="bernoulli", discrete_actions=True, learn_termination=True)
    states = torch.tensor([[b >> 2 & 1, b >> 1 & 1, b & 1] for b in range(8)], dtype=torch.float32)
    obs = states.repeat_interleave(3, 0).repeat(20, 1)
    action = torch.arange(3).repeat(8 * 20)
    nxt, reward, done = bit_flip(obs, action)
    inputs = wm.make_inputs(obs, action)
    assert inputs.shape == (480, 6) and torch.equal(inputs[:3, 3:], torch.eye(3))  # one-hot actions
    targets = wm.make_targets(obs, action, reward, nxt, done)
    assert torch.equal(targets[:, 1:4], nxt)  # the next observation itself, not a delta
    fit_ensemble(wm.ensemble, inputs, targets, make_model_optimizer(wm.ensemble, lr=1e-2), batch_size=64,
                 holdout_ratio=0.0, max_epochs=200, generator=torch.Generator().manual_seed(0))

    td = TensorDict({keys.OBSERVATION: states.repeat_interleave(3, 0), keys.ACTION: torch.arange(3).repeat(8)}, [24])
    truth_obs, truth_reward, truth_done = bit_flip(td[keys.OBSERVATION], td[keys.ACTION])
    mean = wm.step(td.clone(), mode="mean")
    probs = mean[keys.NEXT_OBSERVATION]
    assert ((probs > 0.5).float() == truth_obs).all() and ((probs - 0.5).abs() > 0.3).all()
    assert ((mean[keys.TERMINATED].squeeze(-1)) == truth_done).all()
    cont = mean[keys.CONTINUE_PROB].squeeze(-1)
    assert ((cont < 0.1) == truth_done).all() and ((cont > 0.9) == ~truth_done).all()
    torch.testing.assert_close(mean[keys.REWARD].squeeze(-1), truth_reward, atol=0.1, rtol=0)
    sampled = wm.step(td.clone(), mode="sample", generator=torch.Generator().manual_seed(1))[keys.NEXT_OBSERVATION]
    assert set(sampled.unique().tolist()) <= {0.0, 1.0} and (sampled == truth_obs).float().mean() > 0.95
    # a rollout of the discrete policy "flip the first unset bit" from all-zeros ends in 3 steps
    first_unset = lambda o: (o < 0.5).float().argmax(-1)  # noqa: E731
    roll = wm.rollout(torch.zeros(1, 3), first_unset, 4, mode="mean")
    assert roll[keys.ACTION][:3, 0].tolist() == [0, 1, 2]
    assert roll[keys.TERMINATED][:, 0, 0].tolist() == [False, False, True, False]  # 111, then 011
    from lightning_mbrl.objectives.returns import discounted_return

    reward = roll[keys.REWARD][:, 0, 0]
    # A "mean" rollout carries the Bernoulli probabilities as the next state (0.87-0.95 where the bit is 1), so
    # the goal's predicted reward is a little below 1 and how much depends on the CPU's rounding: assert that it
    # is rewarded, and that the return is exactly the sum up to the goal (nothing counts after it)
    assert reward[2] > 0.5 and (reward[[0, 1, 3]].abs() < 0.1).all()
    ret = discounted_return(roll[keys.REWARD].squeeze(-1), roll[keys.TERMINATED].squeeze(-1), discount=0.9)
    torch.testing.assert_close(ret, (reward[:3] * torch.tensor([1.0, 0.9, 0.81])).sum(0, keepdim=True),
                               atol=1e-6, rtol=0)


class LatentToyModel(WorldModel):
    """A latent model (the shape of paper 001's recurrent models): ``h' = tanh(W [h, a] + U o)``,
    ``o' = D h'``, ``r = w . h'``, ``c = sigmoid(v . h')``; the latent ``h`` is carried between steps."""

    state_keys = ("latent",)

    def __init__(self, obs_dim: int = 2, act_dim: int = 1, latent_dim: int = 4) -> None:
        super().__init__()
        self.cell = nn.Linear(latent_dim + act_dim + obs_dim, latent_dim)
        self.decode = nn.Linear(latent_dim, obs_dim)
        self.reward = nn.Linear(latent_dim, 1)
        self.cont = nn.Linear(latent_dim, 1)

    def predict(self, td, *, members=False, **_):
        h = torch.tanh(self.cell(torch.cat([td["latent"], td[keys.ACTION], td[keys.OBSERVATION]], -1)))
        c = torch.sigmoid(self.cont(h))
        return TensorDict({"latent": h, keys.OBSERVATION: self.decode(h), "reward": self.reward(h),
                           "continue_prob": c, "terminated": c < 0.5}, batch_size=h.shape[:-1])


def test_a_latent_model_steps_and_rolls_out_through_the_same_contract():
    torch.manual_seed(0)
    model = LatentToyModel().double()
    policy = nn.Linear(2, 1).double()
    start = TensorDict({keys.OBSERVATION: torch.randn(N, 2, dtype=F64), "latent": torch.zeros(N, 4, dtype=F64)}, [N])
    td = model.rollout(start, lambda o: torch.tanh(policy(o)), 3, differentiable=True)
    assert td.batch_size == (3, N)
    torch.testing.assert_close(td["latent"][1:], td["next", "latent"][:-1], rtol=0, atol=0)  # carried
    torch.testing.assert_close(td[keys.OBSERVATION][1:], td[keys.NEXT_OBSERVATION][:-1], rtol=0, atol=0)
    # the step reads the latent: a different start latent changes the first prediction
    other = start.clone()
    other["latent"] += 1.0
    assert not torch.allclose(model.step(other.clone().set(keys.ACTION, td[keys.ACTION][0].detach()))[keys.REWARD],
                              td[keys.REWARD][0])
    # the continuation-weighted return is differentiable end to end
    from lightning_mbrl.objectives.returns import discounted_return

    ret = discounted_return(td[keys.REWARD].squeeze(-1), discount=0.9, continue_prob=td[keys.CONTINUE_PROB].squeeze(-1))
    ret.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in [*model.parameters(), *policy.parameters()])
    with pytest.raises(TypeError, match="latent"):
        model.transition(torch.zeros(1, 2, dtype=F64), torch.zeros(1, 1, dtype=F64))


# ---------------------------------------------------------------------------------------------- OMD's gradient path
def test_gradients_reach_the_model_through_a_td_target_only_when_asked():
    """``soft_td_target(grad_to_inputs=True)`` on a differentiable model step carries the Bellman
    error's gradient into the world model's parameters (OMD); the default is a constant."""
    from lightning_mbrl.models.critic import EnsembleQ
    from lightning_mbrl.objectives.sac import soft_td_target

    wm = make_dynamics()
    torch.manual_seed(2)
    actor = TanhGaussianActor(OBS, ACT, (8,)).double()
    target_critic = EnsembleQ(OBS, ACT, (8,), n_critics=2).double()
    obs, action = torch.randn(N, OBS, dtype=F64), torch.rand(N, ACT, dtype=F64) * 2 - 1
    for asked in (False, True):
        wm.zero_grad(set_to_none=True)
        next_obs, reward, terminated = wm.transition(obs, action, mode="mean", differentiable=True)
        torch.manual_seed(3)
        target = soft_td_target(reward, terminated, next_obs, actor, target_critic, torch.tensor(0.2, dtype=F64),
                                0.99, grad_to_inputs=asked)
        assert target.requires_grad == asked
        if asked:
            target.square().sum().backward()
            grads = [p.grad for p in wm.ensemble.parameters() if p.requires_grad]
            assert any(g is not None and g.abs().sum() > 0 for g in grads)
            assert all(p.grad is None for p in [*actor.parameters(), *target_critic.parameters()])
        else:
            assert target.grad_fn is None


def test_planners_get_the_tensor_form_of_a_model_that_only_has_step():
    """``transition_of``: a model that follows the protocol with ``step`` alone is stepped through it,
    with the same result as the library model's own tensor path."""
    from lightning_mbrl.models.rollout import transition_of

    wm = make_dynamics()

    class StepOnly:
        def step(self, td, **options):
            return wm.step(td, **options)

    obs, action = torch.randn(N, OBS, dtype=F64), torch.rand(N, ACT, dtype=F64) * 2 - 1
    wrapped = transition_of(StepOnly())(obs, action, mode="mean")
    for got, expected in zip(wrapped, wm.transition(obs, action, mode="mean")):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert transition_of(wm) == wm.transition
