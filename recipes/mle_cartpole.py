"""The MLE baseline of OMD on CartPole-v1 (paper 003, Section 7):
``python -m recipes.mle_cartpole fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.omd import OMD
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(OMD, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
