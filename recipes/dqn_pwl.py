"""DQN and BOOTS-DQN on a 1-D piecewise-linear MDP (Dong et al. 2020, Figure 5):
``python -m recipes.dqn_pwl fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.dqn import DQN
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(DQN, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
