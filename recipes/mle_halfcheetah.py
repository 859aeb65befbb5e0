"""MLE with SAC as the inner agent on HalfCheetah-v5 (paper 003, Appendix F):
``python -m recipes.mle_halfcheetah fit [--config recipes/tiny.yaml]``."""

from pathlib import Path

from lightning_mbrl.algos.omd_sac import OMDSAC
from lightning_mbrl.cli import run_recipe


def main(args=None):
    return run_recipe(OMDSAC, Path(__file__).with_suffix(".yaml"), args)


if __name__ == "__main__":
    main()
