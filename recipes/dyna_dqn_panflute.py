"""Paper 001 online on PanFlute: ``python -m recipes.dyna_dqn_panflute fit [--model.agent er] [--model.regime low]``
(``--config recipes/tiny_seeds.yaml`` shrinks it to seconds)."""

from pathlib import Path

from lightning_mbrl.algos.dyna_dqn import DynaDQN
from lightning_mbrl.cli import run_seeds_recipe

SEEDED = True  # S seeds as one run: recipes/tiny_seeds.yaml, not tiny.yaml, shrinks it


def main(args=None):
    return run_seeds_recipe(DynaDQN, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
