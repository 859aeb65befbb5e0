"""MAAC on InvertedPendulum-v5: ``python -m recipes.maac_invertedpendulum fit [--config recipes/tiny.yaml]``.

A small task with known reward and termination, for MAAC's learning test against SAC (not in the
paper's sweep: the values the MAAC code lacks for it come from MBPO's InvertedPendulum recipe)."""

from pathlib import Path

from lightning_mbrl.algos.maac import MAAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(MAAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
