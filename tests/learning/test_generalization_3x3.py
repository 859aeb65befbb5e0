"""Paper 001's 3x3 predictions (Section 2, Figure 1), learning tier: per dataset and agent, the paper's
pass/fail verdict holds at the settings of ``benchmarks.generalization_3x3`` (docs/generalization.md).

The predictions: All-Evaluation every agent passes; Path-to-Goal ER fails and both model agents pass;
Single-Cell only the 10-step model passes; No-Evaluation every agent fails. An agent passes a dataset
when in each of the 12 evaluation cells at least half of its seeds pick the correct greedy action (the
paper's majority rule).

Settings (the benchmark's; chosen for this CPU, not tuned toward the predictions): 10 seeds (the
paper: 30), Q step size 1e-3, rollout temperature 1, the model fitted first for 3,000 steps at 2e-4
and then fixed, 2,000 Q updates on All/No-Evaluation and 5,000 on Path-to-Goal/Single-Cell. The
statistical argument: each verdict is the paper's own rule on 10 seeds; where it is decided, it is
decided by a wide margin (the smallest per-cell fraction on a pass is 0.7, the largest on a fail is
0.2 or less in the failing cell; benchmarks/results/generalization_3x3.json).

One prediction does not hold here, measured and documented (docs/generalization.md): the 10-step
model on Path-to-Goal fails in the bottom-middle cell of the lower layout (0.1 of seeds correct). That
case asserts what was measured instead: every other cell passes and that cell alone fails. It fails if
the agent gets worse elsewhere, and also if the deviation goes away (then the docs and this test need
updating).

Each model case also checks the paper's footnote 3: the fitted model predicts the next agent cell of
every non-terminal evaluation transition, on every seed.

About 90 minutes of one core in all: ``bash scripts/test.sh -m slow -n 0 -k generalization_3x3``.
"""

import pytest

from benchmarks.generalization_3x3 import PREDICTED_PASS, run_one

UPDATES = {"all_evaluation": 2000, "no_evaluation": 2000, "path_to_goal": 5000, "single_cell": 5000}
#: (coverage, agent) -> the (layout, cell) that fails there, as measured (the lower layout's bottom-middle cell)
KNOWN_DEVIATION = {("path_to_goal", "model-10"): (0, 7)}
#: model-10 reuses model-1's fit of the same dataset when both run in one process (restoring the fit equals
#: refitting: ``benchmarks.generalization_3x3.run_one``).
_FITTED: dict[str, dict] = {}

CASES = [(coverage, agent) for coverage in UPDATES for agent in PREDICTED_PASS[coverage]]


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("coverage, agent", CASES)
def test_3x3_prediction_holds(coverage: str, agent: str):
    result, fitted = run_one(coverage, agent, seeds=10, updates=UPDATES[coverage], lr=1e-3, temperature=1.0,
                             model_first_updates=3000, fitted=_FITTED.get(coverage))
    if fitted is not None:
        _FITTED[coverage] = fitted
    fractions = [c["fraction_correct"] for c in result["cells"]]
    print(f"\n{coverage} {agent}: passes {result['passes']} (predicted {PREDICTED_PASS[coverage][agent]}), "
          f"per-cell fraction correct {fractions}, {result['ms_per_update']:.0f} ms/update")
    if result["model_position_accuracy"] is not None:  # footnote 3, every seed
        assert min(result["model_position_accuracy"]) == 1.0
    if (coverage, agent) in KNOWN_DEVIATION:  # the measured deviation, exactly (module docstring)
        failing = [(c["layout"], c["cell"]) for c in result["cells"] if c["fraction_correct"] < 0.5]
        assert failing == [KNOWN_DEVIATION[(coverage, agent)]]
        return
    assert result["passes"] == PREDICTED_PASS[coverage][agent]
