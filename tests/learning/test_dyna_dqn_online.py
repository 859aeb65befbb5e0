"""Paper 001's online agents learn (slow): on 4-pipe PanFlute in the high-data regime, the greedy policy of
ER-DQN and of Dyna-DQN with the simple and the perfect model reaches a reward rate of at least 0.2 per
step on every one of 4 seeds (batched in one run).

The scale: the random policy's rate is about 1/n^n + 1/n^2 = 0.066 (the spontaneous event), the best
rate about 1/n plus the spontaneous event's share = 0.29, and the evaluation's 100 steps from the all-off
state cap it a little lower. The step size is 1e-3 for every agent (as in
``benchmarks.generalization_online``'s reduced runs: the tuned step sizes of REFERENCE 4.3 belong to 1M
updates), with each agent's tuned temperature; 1,000 warm-up steps, then 3,000 steps with one update each.
The score of a seed is the mean of its evaluations after 3,000 steps. The statistical argument: the bar
sits far from both ends (3x the random rate, 70% of the best), and every seed must clear it.

Measured (seed rates after 3,000 steps): ER 0.264-0.287, simple 0.217-0.289, perfect 0.239-0.277. At this
budget the Gaussian latent agent was at 0.119-0.223 (learning, below the bar) and the categorical one at
0.059-0.065 (the random rate), so the latent agents have their own test with longer budgets: 8,000 steps
(Gaussian) and 12,000 (categorical), same bar, each seed scored by the lower median of its last 8
evaluations. Measured on 2026-12-06: Gaussian 0.279, 0.278, 0.285, 0.287 (this test, 12.5 min beside two
other jobs); categorical 0.228, 0.282, 0.286, 0.275 (the same seeded computation run as a script, 55 min
beside two other jobs; docs/generalization.md).

``bash scripts/test.sh -m slow -n 0 -k dyna_dqn_online``: about 5 minutes of one core for the first three
agents, 10-15 for the Gaussian one and 35-55 for the categorical one.
"""

import pytest
import torch

from lightning_mbrl.algos.dyna_dqn import DynaDQN

STEPS, SEEDS, BAR = 4000, 4, 0.2


def trained(agent: str, steps: int) -> DynaDQN:
    """``SEEDS`` seeds of ``agent`` on PanFlute-4, high data, step size 1e-3, trained for ``steps`` env steps."""
    module = DynaDQN(env="gridworld/panflute-4", agent=agent, regime="high", seeds=SEEDS, steps=steps, lr=1e-3,
                     eval_every=250).standalone()
    for _ in range(steps):
        module.step()
    return module


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("agent", ["er", "simple", "perfect"])
def test_online_agent_learns_panflute_4(agent):
    module = trained(agent, STEPS)
    evals = torch.tensor(module.eval_curve_steps)
    final = module.eval_curve[evals > 3000].mean(0)
    print(f"\n{agent}: final reward rate per seed {[round(x, 3) for x in final.tolist()]}, "
          f"curve (seed mean) {[round(x, 3) for x in module.eval_curve.mean(1).tolist()]}")
    assert module.updates_done == STEPS - 1000
    assert bool((final >= BAR).all()), final.tolist()


# The latent agents need more steps (docs/generalization.md): (steps, evaluations from this step on are scored).
LATENT = {"gaussian": (8000, 6000), "categorical": (12000, 10000)}


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("agent", list(LATENT))
def test_latent_agent_learns_panflute_4(agent):
    """The same task and bar for the latent agents, with their longer budgets. Their greedy policy, once it has
    learned, still falls back to about the random rate in some evaluations (the Gaussian agent's seeds in 3 of
    8, 2 of 8, 0 and 0 of their last 8 in the measured run below), so a seed's score is the lower median of its
    8 scored evaluations (the 4th smallest), not the mean: a seed passes when at least 5 of them reach the bar."""
    steps, scored_from = LATENT[agent]
    module = trained(agent, steps)
    evals = torch.tensor(module.eval_curve_steps)
    scored = module.eval_curve[evals > scored_from]
    median = scored.median(0).values
    print(f"\n{agent}: scored evaluations per seed {scored.T.tolist()}, median {[round(x, 3) for x in median.tolist()]}")
    assert len(scored) == (steps - scored_from) // 250
    assert bool((median >= BAR).all()), median.tolist()
