"""T1 smoke: gradient routing of every algorithm's update, in one process (the 2-process DDP test in
test_ddp.py checks the same reference per rank). An agent update changes only agent parameters and
steps only the agent's optimizers; a model step changes only the world model and steps only the
model optimizer; each optimizer's Adam step count equals the loop's own counter at the end.
(Before optimizers were named, SAC's update stepped whatever came after the actor optimizer:
MBPO's and MBSAC's model optimizer.)"""

import pytest
import torch

from tests.helpers import check_routing
from tests.smoke.test_recipes import fit

CASES = {
    "sac_pendulum": [],  # learned alpha
    "sac_pendulum/fixed_alpha": ["--model.alpha=0.2"],
    "mbpo_invertedpendulum": ["--model.model_train_freq=50", "--model.rollout_batch_size=100",
                              "--model.max_model_epochs=3", "--model.model_hidden=[32, 32]"],
    "mbsac_halfcheetah": ["--model.model_units=32", "--model.model_blocks=1"],  # fixed alpha 0.2
    "mbsac_halfcheetah/learned_alpha": ["--model.model_units=32", "--model.model_blocks=1", "--model.alpha=null"],
    "dqn_cartpole": [],
    "maac_pendulum": ["--model.model_train_freq=50", "--model.rollout_batch_size=100", "--model.max_model_epochs=3",
                      "--model.model_hidden=[32, 32]", "--model.ensemble_size=4", "--model.num_elites=4",
                      "--model.target_update_every=1"],  # the target moves at every update (its period: test_maac.py)
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_and_model_updates_reach_exactly_their_own_parameters_and_optimizers(case, in_tmp):
    recipe = case.split("/")[0]
    fit(recipe, *CASES[case], "--model.max_frames=150", "--eval.every_frames=0",
        "--trainer.callbacks+=tests.helpers.RoutingProbe", f"--trainer.callbacks.directory={in_tmp / 'probe'}")
    record = torch.load(in_tmp / "probe" / "routing0.pt")
    check_routing(record)
    assert ("model_step" in record) == recipe.startswith(("mbpo", "mbsac", "maac"))
