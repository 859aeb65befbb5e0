"""MAAC's policy-gradient error against the exact gradient on a double integrator (paper 004,
Section 5.2, Figure 3).

    python -m benchmarks.maac_gradient_error            # writes results/maac_gradient_error.{json,png}
    python -m benchmarks.maac_gradient_error --quick    # one seed, small fits: a sanity check

System: ``lightning_mbrl.envs.double_integrator`` (dt 0.1, gamma 0.95, Q = I, R = 0.1) under the linear
policy ``a = K s`` with ``K = [-1, -1.5]``. Per seed:

1. data: 4,000 transitions from start states ``N(0, I)`` with the behaviour policy ``K s + 0.3 xi``;
2. a learned model: ``EnsembleDynamics`` (1 member, 2 x 64) fitted by ``fit_ensemble`` on the data;
3. a learned Q: ``EnsembleQ`` (1 critic, 2 x 64) by fitted policy evaluation of ``K`` (TD(0) targets
   with the true reward, Polyak target, Adam);
4. for H = 0..10 the MAAC estimate ``objectives.maac.pathwise_actor_loss`` (no entropy, one value
   action, the true reward function) on 1,024 fresh start states, through the learned model and
   through the true dynamics (``TrueDynamics``, a ``WorldModel``), both with the learned Q; its
   gradient in ``K`` by autograd.

Errors (L1, per H, mean and standard deviation over seeds):

- ``learned_dynamics``, ``true_dynamics``: against the *oracle* estimate of the same H (true dynamics
  and the exact ``Q^K``): the error the learned parts cause, which is what the paper's Figure 3
  describes ("with the true dynamics the only source is the learned Q-function, weighted down by
  gamma^H");
- ``*_vs_return_gradient`` and ``oracle_vs_return_gradient``: against the exact gradient of
  ``mean_i V^K(s_i)`` on the same start states. The oracle itself is off by the estimator's own
  bias: a fixed Q ignores how ``Q^K`` changes with ``K`` after step H, a term of order gamma^H,
  which with start states from the start distribution (not the policy's visitation) does not vanish.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from benchmarks.common import RESULTS, write
from lightning_mbrl import keys
from lightning_mbrl.envs.double_integrator import DoubleIntegrator
from lightning_mbrl.models.critic import EnsembleQ
from lightning_mbrl.models.model_training import fit_ensemble, make_model_optimizer
from lightning_mbrl.models.rollout import WorldModel
from lightning_mbrl.models.utils import polyak_update
from lightning_mbrl.models.world_model import EnsembleDynamics
from lightning_mbrl.objectives.maac import pathwise_actor_loss

F64 = torch.float64
GAIN = [[-1.0, -1.5]]
NAMES = ("learned_dynamics", "true_dynamics", "learned_dynamics_vs_return_gradient", "true_dynamics_vs_return_gradient",
         "oracle_vs_return_gradient")


class LinearPolicy(nn.Module):
    """``a = K s``, deterministic (``sample`` returns a zero log-probability)."""

    def __init__(self, gain: Tensor) -> None:
        super().__init__()
        self.gain = nn.Parameter(gain.clone())

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return obs @ self.gain.T, torch.zeros(obs.shape[:-1], dtype=obs.dtype)


class TrueDynamics(WorldModel):
    """The double integrator itself through the world-model contract (reward and termination unused:
    the estimator takes the true reward function)."""

    def __init__(self, system: DoubleIntegrator) -> None:
        super().__init__()
        self.system = system

    def predict(self, td, *, members=False, **_):
        nxt = self.system.step(td[keys.OBSERVATION], td[keys.ACTION])
        zeros = torch.zeros(*nxt.shape[:-1], 1, dtype=nxt.dtype)
        return TensorDict({keys.OBSERVATION: nxt, "reward": zeros, "terminated": zeros.bool(),
                           "continue_prob": zeros + 1}, batch_size=nxt.shape[:-1])


class ExactQ(nn.Module):
    """``Q^K`` of the fixed gain as an ``EnsembleQ``-shaped critic (``[1, B]``), for reference runs."""

    def __init__(self, system: DoubleIntegrator, gain: Tensor) -> None:
        super().__init__()
        self.system, self.gain = system, gain.detach().clone()

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        return self.system.q_value(self.gain, obs, action).unsqueeze(0)


def collect(system: DoubleIntegrator, gain: Tensor, n: int, generator: torch.Generator) -> dict[str, Tensor]:
    state = torch.randn(n, 2, dtype=F64, generator=generator)
    action = state @ gain.T + 0.3 * torch.randn(n, 1, dtype=F64, generator=generator)
    return {"state": state, "action": action, "reward": system.reward(state, action),
            "next_state": system.step(state, action)}


def learn_model(data: dict[str, Tensor], epochs: int, generator: torch.Generator) -> EnsembleDynamics:
    model = EnsembleDynamics(2, 1, n_members=1, n_elites=1, hidden=(64, 64), weight_decays=(0.0, 0.0, 0.0)).double()
    inputs = model.make_inputs(data["state"], data["action"])
    targets = model.make_targets(data["state"], data["action"], data["reward"], data["next_state"])
    fit_ensemble(model.ensemble, inputs, targets, make_model_optimizer(model.ensemble, lr=1e-3), batch_size=256,
                 holdout_ratio=0.0, max_epochs=epochs, generator=generator)
    return model


def learn_q(system: DoubleIntegrator, gain: Tensor, data: dict[str, Tensor], steps: int,
            generator: torch.Generator) -> EnsembleQ:
    q = EnsembleQ(2, 1, (64, 64), n_critics=1).double()
    target = copy.deepcopy(q)
    optimizer = torch.optim.Adam(q.parameters(), lr=1e-3)
    n = data["state"].shape[0]
    next_action = data["next_state"] @ gain.T
    for _ in range(steps):
        idx = torch.randint(n, (256,), generator=generator)
        with torch.no_grad():
            y = data["reward"][idx] + system.gamma * target(data["next_state"][idx], next_action[idx])[0]
        loss = (q(data["state"][idx], data["action"][idx])[0] - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        polyak_update(target, q, 5e-3)
    return q


def maac_gradient(policy: LinearPolicy, model: WorldModel, critic: nn.Module, system: DoubleIntegrator,
                  start: Tensor, horizon: int) -> Tensor:
    reward = lambda s, a, s_next: system.reward(s, a)  # noqa: E731
    losses, _ = pathwise_actor_loss(start, policy, model, critic, torch.zeros((), dtype=F64), horizon=horizon,
                                    gamma=system.gamma, n_value_actions=1, reward_fn=reward, mode="mean")
    (grad,) = torch.autograd.grad(-losses["loss_actor"], policy.gain)
    return grad


def run_seed(seed: int, horizons: list[int], model_epochs: int, q_steps: int, n_data: int) -> dict[str, list[float]]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    system, gain = DoubleIntegrator(), torch.tensor(GAIN, dtype=F64)
    data = collect(system, gain, n_data, generator)
    model = learn_model(data, model_epochs, generator)
    critic = learn_q(system, gain, data, q_steps, generator)
    start = torch.randn(1024, 2, dtype=F64, generator=generator)
    exact_gain = gain.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(system.expected_return(exact_gain, start), exact_gain)
    policy = LinearPolicy(gain)
    out: dict[str, list[float]] = {name: [] for name in NAMES}
    for h in horizons:
        oracle = maac_gradient(policy, TrueDynamics(system), ExactQ(system, gain), system, start, h)
        learned = maac_gradient(policy, model, critic, system, start, h)
        true_dyn = maac_gradient(policy, TrueDynamics(system), critic, system, start, h)
        out["learned_dynamics"].append(float((learned - oracle).abs().sum()))
        out["true_dynamics"].append(float((true_dyn - oracle).abs().sum()))
        out["learned_dynamics_vs_return_gradient"].append(float((learned - exact).abs().sum()))
        out["true_dynamics_vs_return_gradient"].append(float((true_dyn - exact).abs().sum()))
        out["oracle_vs_return_gradient"].append(float((oracle - exact).abs().sum()))
    out["exact_gradient"] = exact.flatten().tolist()
    return out


def plot(horizons: list[int], summary: dict[str, dict[str, list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, label in (("learned_dynamics", "learned model, learned Q"), ("true_dynamics", "true dynamics, learned Q"),
                        ("oracle_vs_return_gradient", "oracle vs grad J (estimator bias)")):
        mean, std = summary[name]["mean"], summary[name]["std"]
        ax.plot(horizons, mean, marker="o", label=label)
        ax.fill_between(horizons, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
    ax.set_xlabel("horizon H")
    ax.set_ylabel("L1 gradient error (vs oracle)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "maac_gradient_error.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-horizon", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stdout", action="store_true",
                        help="print the result JSON on stdout (the table on stderr) and write no file "
                             "(python -m benchmarks.reproduce runs it so)")
    args = parser.parse_args(argv)
    log = sys.stderr if args.stdout else sys.stdout
    seeds = 1 if args.quick else args.seeds
    model_epochs, q_steps, n_data = (20, 300, 1000) if args.quick else (300, 5000, 4000)
    horizons = list(range(args.max_horizon + 1))
    runs = [run_seed(seed, horizons, model_epochs, q_steps, n_data) for seed in range(seeds)]
    summary = {}
    for name in NAMES:
        per_h = list(zip(*(r[name] for r in runs)))
        summary[name] = {"mean": [statistics.mean(v) for v in per_h],
                         "std": [statistics.pstdev(v) for v in per_h]}
    for h in horizons:
        print(f"H={h:2d}  vs oracle: learned model {summary['learned_dynamics']['mean'][h]:.4f} "
              f"+- {summary['learned_dynamics']['std'][h]:.4f}, true dynamics {summary['true_dynamics']['mean'][h]:.4f} "
              f"+- {summary['true_dynamics']['std'][h]:.4f} | vs grad J: learned "
              f"{summary['learned_dynamics_vs_return_gradient']['mean'][h]:.3f}, true "
              f"{summary['true_dynamics_vs_return_gradient']['mean'][h]:.3f}, oracle "
              f"{summary['oracle_vs_return_gradient']['mean'][h]:.3f}", file=log)
    result = {"seeds": seeds, "horizons": horizons, "gain": GAIN, "model_epochs": model_epochs, "q_steps": q_steps,
              "transitions": n_data, "errors": summary, "runs": runs}
    if args.stdout:
        print(json.dumps({"benchmark": "maac_gradient_error", **result}))
        return
    if args.quick:
        return
    plot(horizons, summary)
    write("maac_gradient_error", result)


if __name__ == "__main__":
    main()
