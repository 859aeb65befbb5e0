"""MAAC on the MBBL HalfCheetah variant (paper 004, Table 1): ``python -m recipes.maac_halfcheetah fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.maac import MAAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(MAAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
