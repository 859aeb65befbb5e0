"""T0: ``--trainer.precision bf16-mixed`` (lightning_mbrl/precision.py): what runs in bf16, what stays fp32,
gradients against fp32 on a fixed batch, autocast's weight cache after optimizer steps, the default per
machine, and the evaluators under the trainer's precision."""

from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch
from tensordict import TensorDict
from torch import nn

from lightning_mbrl import precision
from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.models.actor import TanhGaussianActor
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.mlp import BatchedMLP, OutputLinear, mlp
from lightning_mbrl.objectives import sac as sac_losses

OBS, ACT, B = 3, 1, 64  # Pendulum-v1's sizes


def lightning_autocast(enabled: bool = True):
    """The context ``--trainer.precision bf16-mixed`` puts around ``training_step`` on CPU."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def fixed_batch(seed: int = 0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "observation": torch.randn(B, OBS, generator=g),
        "action": torch.rand(B, ACT, generator=g) * 2 - 1,
        "next": {"observation": torch.randn(B, OBS, generator=g), "reward": torch.randn(B, 1, generator=g),
                 "terminated": torch.rand(B, 1, generator=g) < 0.1},
    }, batch_size=[B])


# ----------------------------------------------------------------------------- the networks
def test_output_layers_are_fp32_and_hidden_layers_bf16_under_autocast() -> None:
    torch.manual_seed(0)
    net, batched = mlp(OBS, (32, 32), 3), BatchedMLP(2, OBS, (32, 32), 3)
    hidden = []
    net[1].register_forward_hook(lambda m, a, out: hidden.append(out.dtype))
    batched.act.register_forward_hook(lambda m, a, out: hidden.append(out.dtype))
    x = torch.randn(B, OBS)
    with lightning_autocast():
        out, out_batched = net(x), batched(x)
    assert hidden == [torch.bfloat16] * 3  # net's first ReLU, batched's two activations
    assert out.dtype == out_batched.dtype == torch.float32
    # not rounded to bf16 at the end: the output layer ran in fp32 on the bf16 hidden activations
    with lightning_autocast():
        last_hidden = net[:-1](x)
    expected = nn.functional.linear(last_hidden.float(), net[-1].weight, net[-1].bias)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert not torch.equal(out, out.bfloat16().float())


def test_output_linear_keeps_nn_linear_state_dict_keys() -> None:
    """Checkpoints written before ``OutputLinear`` load into it (same keys, same shapes)."""
    old = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    new = mlp(3, (4,), 2)
    assert isinstance(new[-1], OutputLinear)
    new.load_state_dict(old.state_dict())
    x = torch.randn(7, 3)
    torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- SAC's tensors and gradients
def sac_terms(actor, critic, target_critic, log_alpha, batch, enabled: bool) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)  # the same policy noise in both precisions
    with lightning_autocast(enabled):
        y = sac_losses.soft_td_target(batch["next", "reward"].squeeze(-1), batch["next", "terminated"].squeeze(-1),
                                      batch["next", "observation"], actor, target_critic, log_alpha.exp(), 0.99)
        critic_out = sac_losses.critic_loss(batch["observation"], batch["action"], y, critic)
        actor_out, log_prob = sac_losses.actor_loss(batch["observation"], actor, critic, log_alpha.exp())
        alpha = sac_losses.alpha_loss(log_alpha, log_prob, -ACT)
    return {"target": y, "log_prob": log_prob, "loss_critic": critic_out["loss_critic"],
            "loss_actor": actor_out["loss_actor"], "loss_alpha": alpha["loss_alpha"]}


@pytest.fixture
def sac_nets():
    torch.manual_seed(1)
    actor = TanhGaussianActor(OBS, ACT, (64, 64))
    critic = EnsembleQ(OBS, ACT, (64, 64))
    target = EnsembleQ(OBS, ACT, (64, 64)).requires_grad_(False)
    target.load_state_dict(critic.state_dict())
    log_alpha = nn.Parameter(torch.tensor(-1.0))
    return actor, critic, target, log_alpha


def test_losses_log_probs_and_targets_are_fp32_under_bf16(sac_nets) -> None:
    actor, critic, target, log_alpha = sac_nets
    terms = sac_terms(actor, critic, target, log_alpha, fixed_batch(), enabled=True)
    assert {name: t.dtype for name, t in terms.items()} == dict.fromkeys(terms, torch.float32)


@pytest.mark.parametrize("term, params, rel_tol", [
    ("loss_critic", "critic", 0.05),
    ("loss_actor", "actor", 0.05),
    ("loss_alpha", "log_alpha", 0.05),
])
def test_each_sac_loss_gradient_is_within_tolerance_of_fp32(sac_nets, term, params, rel_tol) -> None:
    """On a fixed batch, the gradient of each SAC loss term under bf16 autocast is within ``rel_tol`` (5%,
    relative L2 over the parameters it reaches) of fp32's; measured 0.3-1.5% (bf16 has an 8-bit mantissa,
    relative rounding 0.4% per operation)."""
    actor, critic, target, log_alpha = sac_nets
    owners = {"critic": list(critic.parameters()), "actor": list(actor.parameters()), "log_alpha": [log_alpha]}
    grads = {}
    for enabled in (False, True):
        terms = sac_terms(actor, critic, target, log_alpha, fixed_batch(), enabled)
        grads[enabled] = torch.autograd.grad(terms[term], owners[params])
    for g32, g16 in zip(grads[False], grads[True]):
        assert g16.dtype == torch.float32
    flat32 = torch.cat([g.flatten() for g in grads[False]])
    flat16 = torch.cat([g.flatten() for g in grads[True]])
    assert flat32.norm() > 0
    assert (flat16 - flat32).norm() <= rel_tol * flat32.norm(), float((flat16 - flat32).norm() / flat32.norm())


# ----------------------------------------------------------------------------- inside a Trainer
class Recorder(pl.Callback):
    """Wraps ``update`` to record, during a bf16-mixed fit, the dtypes the issue names."""

    def __init__(self) -> None:
        self.seen: dict[str, set] = {}

    def note(self, name: str, dtype) -> None:
        self.seen.setdefault(name, set()).add(dtype)

    def on_train_start(self, trainer, module) -> None:  # (the collector probed the policy once, in on_fit_start)
        module.actor.net[1].register_forward_hook(lambda m, a, out: self.note("actor_hidden", out.dtype))
        module.critic.net.act.register_forward_hook(lambda m, a, out: self.note("critic_hidden", out.dtype))
        update, td_target, actor_losses = module.update, module.td_target, module.actor_losses

        def recorded_update(batch):
            self.note("autocast_in_update", torch.is_autocast_enabled("cpu"))
            out = update(batch)
            for name, value in out.items():
                self.note(name, value.dtype)
            return out

        def recorded_target(*args, **kwargs):
            y = td_target(*args, **kwargs)
            self.note("td_target", y.dtype)
            return y

        def recorded_actor_losses(obs):
            _, log_prob = module.actor.sample(obs)
            self.note("log_prob", log_prob.dtype)
            return actor_losses(obs)

        module.update, module.td_target, module.actor_losses = recorded_update, recorded_target, recorded_actor_losses

    def on_train_end(self, trainer, module) -> None:
        for opt in trainer.optimizers:
            for state in opt.state.values():
                for key, value in state.items():
                    if key != "step":
                        self.note("optimizer_state", value.dtype)
        for p in module.parameters():
            self.note("parameters", p.dtype)
        for p in module.critic_target.parameters():
            self.note("target_parameters", p.dtype)


def test_a_bf16_mixed_fit_runs_hidden_layers_in_bf16_and_keeps_the_rest_fp32(tmp_path) -> None:
    module = SAC("Pendulum-v1", hidden=(32, 32), max_frames=40, init_random_frames=20, batch_size=16)
    recorder = Recorder()
    trainer = pl.Trainer(max_epochs=-1, precision="bf16-mixed", accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder], default_root_dir=tmp_path)
    trainer.fit(module)
    seen = recorder.seen
    assert module.updates == 20
    assert seen.pop("autocast_in_update") == {True}
    assert seen.pop("actor_hidden") == seen.pop("critic_hidden") == {torch.bfloat16}
    assert seen == dict.fromkeys(seen, {torch.float32}), seen
    assert {"loss_critic", "loss_actor", "loss_alpha", "td_target", "log_prob", "optimizer_state",
            "parameters", "target_parameters"} <= seen.keys()


def test_updates_under_a_caching_autocast_use_the_stepped_weights() -> None:
    """Two SAC updates in one autocast context with the weight-cast cache on (torch's default) equal the
    same two updates in Lightning's cache-off context, bit for bit: ``step_optimizers`` drops the cached
    bf16 copies after every step (``precision.parameters_changed``)."""
    results = []
    for cache in (False, True):
        module = SAC("Pendulum-v1", hidden=(32, 32), max_frames=10, init_random_frames=0)
        module.optimizer = dict(zip(("critic", "actor", "alpha"), module.configure_optimizers())).__getitem__
        module.manual_backward = lambda loss: loss.backward()
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=cache):
            for seed in (1, 2, 3):
                module.update(fixed_batch(seed))
        results.append([p.detach().clone() for p in module.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ----------------------------------------------------------------------------- full precision where it matters
def test_known_reward_functions_run_in_full_precision_under_autocast() -> None:
    from lightning_mbrl.envs.known_fns import reward_fn

    from lightning_mbrl.envs import env_spec

    with_x = {"exclude_current_positions_from_observation": False}
    fn = reward_fn("Humanoid-v5", with_x)  # forward kinematics by matrix products (envs/kinematics.py)
    g = torch.Generator().manual_seed(0)
    spec = env_spec("Humanoid-v5", **with_x)
    obs = torch.randn(32, spec.observation_dim, generator=g) * 0.1
    next_obs = obs + 0.01 * torch.randn(32, spec.observation_dim, generator=g)
    action = torch.rand(32, spec.action_dim, generator=g) * 2 - 1
    expected = fn(obs, action, next_obs)
    with lightning_autocast():
        got = fn(obs, action, next_obs)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_full_precision_turns_autocast_off_only_inside() -> None:
    seen = []

    @precision.full_precision
    def probe():
        seen.append(torch.is_autocast_enabled("cpu"))

    with lightning_autocast():
        probe()
        seen.append(torch.is_autocast_enabled("cpu"))
    assert seen == [False, True]


# ----------------------------------------------------------------------------- the default per machine
@pytest.mark.parametrize("amx, avx512_bf16, expected", [
    (True, False, "bf16-mixed"), (False, True, "bf16-mixed"), (False, False, "32-true"),
])
def test_default_precision_is_bf16_mixed_exactly_where_the_cpu_has_bf16_units(monkeypatch, amx, avx512_bf16,
                                                                               expected) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.default_precision() == expected
    assert precision.default_precision("cpu") == expected
    assert f"default here is {expected}" in precision.precision_reason("32-true", "cpu")


# ----------------------------------------------------------------------------- evaluators
@pytest.mark.parametrize("trainer_precision, expected", [("bf16-mixed", {True}), ("32-true", {False})])
def test_evaluation_runs_under_the_trainers_precision(tmp_path, trainer_precision, expected) -> None:
    """``PolicyEval`` (and the planners, through ``PlannerEval.make_actor``) run outside ``training_step``;
    they enter ``precision.evaluation_context``: autocast exactly when the trainer is bf16-mixed."""
    from callbacks.evaluation import PolicyEval

    module = SAC("Pendulum-v1", hidden=(16, 16), max_frames=20, init_random_frames=10, batch_size=8,
                 max_episode_steps=5)
    seen = []
    act = module.act

    def recorded_act(observation, deterministic=False):
        if deterministic:
            seen.append(torch.is_autocast_enabled("cpu"))
        return act(observation, deterministic)

    module.act = recorded_act
    trainer = pl.Trainer(max_epochs=-1, precision=trainer_precision, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[PolicyEval(every_frames=10, episodes=2)], default_root_dir=tmp_path)
    trainer.fit(module)
    assert seen and set(seen) == expected


# ----------------------------------------------------------------------------- subnormals
FLUSH_PROBE = """
import sys, torch
import recipes.mbpo_halfcheetah  # everything a recipe imports before the CLI starts
from lightning_mbrl.precision import flush_denormals
subnormal = torch.tensor([1e-39])  # made before the flush, one element (no parallel op)
if sys.argv[1] == "late":
    torch.ones(4_000_000).mul(2.0)  # a parallel op first: the thread pool exists before the flush
flush_denormals()
product = subnormal.expand(4_000_000) * 1.0  # split across both threads; DAZ reads the input as 0
print(int((product != 0).sum()))
"""


@pytest.mark.parametrize("when, expected_nonzero", [("first", 0), ("late", "some")])
def test_flush_denormals_reaches_every_intra_op_thread_when_called_first(when, expected_nonzero) -> None:
    """Called first, as the CLI does, subnormals flush to zero in the OpenMP workers too (they inherit the
    setting when the pool starts); called after the pool exists, only the calling thread flushes (the
    control, which shows the probe can tell)."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", FLUSH_PROBE, when], env=env, capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    nonzero = int(out.stdout.strip().splitlines()[-1])
    assert nonzero == 0 if expected_nonzero == 0 else 0 < nonzero < 4_000_000


@pytest.mark.parametrize("native", [True, False])
def test_recipes_default_to_bf16_mixed_only_for_algorithms_with_bf16_evidence(monkeypatch, native) -> None:
    """SAC, MBPO and MBSAC recipes default to bf16-mixed on hardware with native bf16 GEMMs (their learning
    tests pass in it); MAAC, DQN and OMD recipes stay 32-true; ``--trainer.precision`` overrides either."""
    from lightning_mbrl.algos.dqn import DQN
    from lightning_mbrl.algos.maac import MAAC
    from lightning_mbrl.algos.mbpo import MBPO
    from lightning_mbrl.algos.mbsac import MBSAC
    from lightning_mbrl.algos.omd import OMD
    from lightning_mbrl.algos.omd_sac import OMDSAC
    from lightning_mbrl.cli import run_recipe

    from tests.conftest import ROOT

    monkeypatch.setattr("lightning_mbrl.cli.default_precision", lambda: "bf16-mixed" if native else "32-true")
    cases = ((SAC, "sac_pendulum", True), (MBPO, "mbpo_invertedpendulum", True), (MBSAC, "mbsac_halfcheetah", True),
             (MAAC, "maac_pendulum", False), (DQN, "dqn_cartpole", False), (OMD, "omd_cartpole", False),
             (OMDSAC, "omd_halfcheetah", False))
    for cls, recipe, validated in cases:
        cli = run_recipe(cls, ROOT / "recipes" / f"{recipe}.yaml", [], run=False)
        assert cli.config.trainer.precision == ("bf16-mixed" if native and validated else "32-true"), recipe
    cli = run_recipe(MAAC, ROOT / "recipes" / "maac_pendulum.yaml", ["--trainer.precision", "bf16-mixed"], run=False)
    assert cli.config.trainer.precision == "bf16-mixed"


def test_checkpoints_carrying_the_retired_model_gemm_dtype_still_count_as_mbpo() -> None:
    """``model_gemm_dtype`` (MBPO's former fit-only bf16 switch) is in older checkpoints' hyperparameters;
    the CLI's algorithm check ignores it, and any other unknown key still marks another algorithm."""
    import inspect as _inspect

    from lightning_mbrl.algos.mbpo import MBPO
    from lightning_mbrl.cli import _other_algorithm

    hparams = {name: None for name in _inspect.signature(MBPO.__init__).parameters if name != "self"}
    assert _other_algorithm(MBPO, {**hparams, "model_gemm_dtype": "auto"}) is None
    assert "bogus" in _other_algorithm(MBPO, {**hparams, "model_gemm_dtype": "auto", "bogus": 1})
