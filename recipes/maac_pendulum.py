"""MAAC on Pendulum-v1: ``python -m recipes.maac_pendulum fit [--config recipes/tiny.yaml]``.

A small task with an exact known reward, for checking MAAC end to end and its learning test; the
paper's MuJoCo settings are the code's defaults of ``algos.maac.MAAC``."""

from pathlib import Path

from lightning_mbrl.algos.maac import MAAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(MAAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
