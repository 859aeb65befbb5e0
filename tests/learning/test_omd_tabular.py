"""T2 learning (slow): on the two-state MDP of paper 003 (REFERENCE 3.3), OMD with the exact implicit
gradient at the largest kappa of Figure 2 (kappa = 6 * 16 / 19 = 5.05) reaches within 1% of the optimal
return J*, the mean over the notebook's 10 seeds; the notebook's projected Adam (lr 0.01, 10,000
iterations, U(0, 1) initial values).

The statistical argument: every seed is an exact, deterministic computation (no sampling in J), so the
mean over seeds is the quantity itself; the test also asks the worst seed to be within 2% so that the
mean does not hide a failed run. Measured: mean J 1.0191 (worst seed 1.0131) against J* = 1.0273, 0.8%
below (benchmarks/results/omd_tabular.json). MLE reaches J* at this kappa too: here the claim is only that
OMD does not lose the optimum when the model class is large enough (where it is too small, OMD is above MLE:
the benchmark). With the model gradient cut (no gradient reaches the parameters) the mean is -0.68.
"""

import pytest
import torch

from lightning_mbrl.envs.tabular_omd import fit_model, optimal_return, two_state_mdp

KAPPA = float(torch.linspace(0, 6, 20, dtype=torch.float64)[16])  # Figure 2's largest plotted kappa


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tabular_omd_at_the_largest_kappa_is_within_one_percent_of_the_optimum():
    mdp = two_state_mdp()
    optimum = float(optimal_return(mdp))
    result = fit_model("omd", [KAPPA], list(range(1, 11)), iters=10_000, mdp=mdp)
    returns = result.returns[0]  # [seeds]
    print(f"\nkappa {KAPPA:.3f}: mean J {float(returns.mean()):.4f} (worst {float(returns.min()):.4f}), "
          f"J* {optimum:.4f}")
    assert float(returns.mean()) >= 0.99 * optimum
    assert float(returns.min()) >= 0.98 * optimum
