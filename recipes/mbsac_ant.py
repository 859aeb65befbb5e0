"""MBSAC on Ant-v5: ``python -m recipes.mbsac_ant fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.mbsac import MBSAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(MBSAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
