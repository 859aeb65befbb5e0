"""SAC on HalfCheetah-v5: ``python -m recipes.sac_halfcheetah fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.sac import SAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(SAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
