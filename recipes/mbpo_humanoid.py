"""MBPO on Humanoid-v5: ``python -m recipes.mbpo_humanoid fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.mbpo import MBPO
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(MBPO, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
