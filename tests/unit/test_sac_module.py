"""Unit tests (T0) for the SAC LightningModule's construction: config validation, what goes into
the checkpoint, the optimizers and their parameters, temperature settings and seeded init.
(``SAC.update`` needs a Trainer for manual optimisation; the smoke tier runs it.)"""

from __future__ import annotations

import math

import pytest
import torch

from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.errors import ConfigError

SMALL = dict(env="Pendulum-v1", hidden=(32, 32))


def make_sac(**kwargs) -> SAC:
    return SAC(**{**SMALL, **kwargs})


def test_state_dict_holds_only_networks_and_temperature() -> None:
    torch.manual_seed(0)
    sac = make_sac()
    state = sac.state_dict()
    prefixes = ("actor.", "critic.", "critic_target.")
    assert all(k.startswith(prefixes) or k == "log_alpha" for k in state), sorted(state)
    assert "log_alpha" in state
    for prefix in prefixes:
        assert any(k.startswith(prefix) for k in state), prefix
    assert sac.runtime is None
    # Sizes come from the env: Pendulum has a 3-d observation and a 1-d action.
    assert state["actor.net.0.weight"].shape == (32, 3)
    assert state["actor.net.4.weight"].shape == (2, 32)  # [mu, log_std]
    assert state["critic.net.layers.0.weight"].shape == (2, 4, 32)  # twin critics on [obs, action]


def test_target_critic_is_a_frozen_independent_copy() -> None:
    torch.manual_seed(0)
    sac = make_sac()
    for (name, p), (name_t, p_t) in zip(sac.critic.named_parameters(), sac.critic_target.named_parameters()):
        assert name == name_t
        assert torch.equal(p, p_t)
        assert p.data_ptr() != p_t.data_ptr()
        assert p.requires_grad and not p_t.requires_grad


def test_discrete_env_is_rejected() -> None:
    with pytest.raises(ConfigError, match="discrete") as err:
        make_sac(env="CartPole-v1")
    assert "CartPole-v1" in str(err.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_frames", 0),
        ("batch_size", -1),
        ("updates_per_frame", 0),
        ("updates_per_frame", 1.5),
        ("init_random_frames", -5),
        ("buffer_size", 0),
        ("frames_per_iteration", 0),
        ("gamma", 1.5),
        ("tau", -0.1),
        ("actor_lr", 0.0),
        ("critic_lr", -1e-3),
        ("alpha_lr", 0),
        ("init_alpha", 0.0),
        ("alpha", -0.1),
        ("n_critics", 0),
        ("max_episode_steps", 0),
    ],
)
def test_invalid_config_names_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=field):
        make_sac(**{field: value})


def test_unknown_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="NoSuchEnv-v0"):
        make_sac(env="NoSuchEnv-v0")


def test_budgets_must_be_multiples_of_frames_per_iteration() -> None:
    with pytest.raises(ConfigError, match=r"max_frames \(1001\).*multiple.*frames_per_iteration \(10\)"):
        make_sac(max_frames=1001, init_random_frames=0, frames_per_iteration=10)
    with pytest.raises(ConfigError, match=r"init_random_frames \(15\).*multiple"):
        make_sac(max_frames=1000, init_random_frames=15, frames_per_iteration=10)
    with pytest.raises(ConfigError, match="init_random_frames"):
        make_sac(max_frames=1000, init_random_frames=1000)
    make_sac(max_frames=1000, init_random_frames=990, frames_per_iteration=10)  # valid edge case


def test_fixed_alpha_two_optimizers() -> None:
    torch.manual_seed(0)
    sac = make_sac(alpha=0.2)
    optimizers = sac.make_optimizers()
    assert list(optimizers) == ["critic", "actor"]
    assert not sac.learn_alpha and not sac.log_alpha.requires_grad
    assert sac.log_alpha.exp().item() == pytest.approx(0.2, rel=1e-6)
    critic_opt, actor_opt = optimizers["critic"], optimizers["actor"]
    assert {id(p) for g in critic_opt.param_groups for p in g["params"]} == {id(p) for p in sac.critic.parameters()}
    assert {id(p) for g in actor_opt.param_groups for p in g["params"]} == {id(p) for p in sac.actor.parameters()}


def test_zero_alpha_is_exactly_zero() -> None:
    sac = make_sac(alpha=0.0)
    assert sac.log_alpha.exp().item() == 0.0


def test_learned_alpha_three_optimizers_and_default_target_entropy() -> None:
    torch.manual_seed(0)
    sac = make_sac(init_alpha=0.5, alpha_lr=1e-2)
    named = sac.make_optimizers()
    assert list(named) == ["critic", "actor", "alpha"]
    optimizers = sac.configure_optimizers()  # Lightning's list, in the same order
    assert sac.optimizer_names == ("critic", "actor", "alpha") and len(optimizers) == 3
    assert sac.learn_alpha and sac.log_alpha.requires_grad
    assert sac.target_entropy == -1.0  # -|A| for Pendulum's 1-d action
    assert sac.log_alpha.item() == pytest.approx(math.log(0.5), rel=1e-6)
    alpha_opt = optimizers[sac.optimizer_names.index("alpha")]
    assert len(alpha_opt.param_groups) == 1 and alpha_opt.param_groups[0]["params"] == [sac.log_alpha]
    assert alpha_opt.param_groups[0]["lr"] == 1e-2
    # No parameter is in two optimizers.
    ids = [id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in sac.parameters() if p.requires_grad}


def test_default_target_entropy_follows_action_dim() -> None:
    assert make_sac(env="Hopper-v5", hidden=(8,)).target_entropy == -3.0


def test_explicit_target_entropy_is_respected() -> None:
    assert make_sac(target_entropy=-3.5).target_entropy == -3.5


def test_same_seed_same_init_different_seed_different_init() -> None:
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    a = make_sac(seed=7).state_dict()
    assert torch.equal(torch.get_rng_state(), rng_before)  # init does not consume the global generator
    torch.manual_seed(456)  # a different global state must not matter
    b = make_sac(seed=7).state_dict()
    c = make_sac(seed=8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for k in a:
        if k.startswith(("actor.", "critic.")):
            assert not torch.equal(a[k], c[k]), k


def test_act_deterministic_and_stochastic() -> None:
    torch.manual_seed(0)
    sac = make_sac()
    obs = torch.randn(5, 3)
    mu, _ = sac.actor(obs)
    torch.testing.assert_close(sac.act(obs, deterministic=True), torch.tanh(mu))
    torch.manual_seed(1)
    a = sac.act(obs)
    torch.manual_seed(1)
    expected, _ = sac.actor.sample(obs)
    assert a.shape == (5, 1) and torch.equal(a, expected)
    assert a.abs().max() < 1
    q = sac.q_values(obs, a)
    assert q.shape == (2, 5)


@pytest.mark.parametrize("algo", ["MBPO", "MBSAC"])
def test_model_based_sac_accepts_every_sac_argument_and_passes_it_on(algo) -> None:
    """One source of truth: MBPO and MBSAC take all of SAC's arguments (same types; defaults may be
    the paper's), and each reaches SAC (the networks and the temperature it builds)."""
    import inspect

    from lightning_mbrl.algos.mbpo import MBPO
    from lightning_mbrl.algos.mbsac import MBSAC

    cls = {"MBPO": MBPO, "MBSAC": MBSAC}[algo]
    sac_params = inspect.signature(SAC.__init__).parameters
    params = inspect.signature(cls.__init__).parameters
    missing = [name for name in sac_params if name not in params]
    assert not missing, f"{algo} lacks SAC's {missing}"
    assert {n: params[n].annotation for n in sac_params} == {n: p.annotation for n, p in sac_params.items()}
    env_kwargs = {"exclude_current_positions_from_observation": False}
    model = cls(env="HalfCheetah-v5", env_kwargs=env_kwargs, hidden=(16,), actor_hidden=(8, 8), n_critics=3,
                alpha=None, init_alpha=0.5, **({"model_hidden": (8,)} if algo == "MBPO" else {"model_units": 8}))
    assert model.critic(torch.zeros(1, 18), torch.zeros(1, 6)).shape == (3, 1)  # 3 critics
    assert [m.out_features for m in model.actor.modules() if isinstance(m, torch.nn.Linear)][:2] == [8, 8]
    assert model.log_alpha.exp().item() == pytest.approx(0.5)
