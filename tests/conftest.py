import os
import pathlib
import random
import warnings

import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")

os.environ.setdefault("MUJOCO_GL", "egl")
warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")


#: The seed of torch's, numpy's and Python's global generators at the start of every test.
TEST_SEED = 0


@pytest.fixture(autouse=True)
def seed_global_rngs():
    """Safety net against order-dependent randomness: every test starts from the same global RNG
    states (torch, numpy, ``random``), whatever ran before it in the session. Tests still seed
    what they rely on themselves (``torch.manual_seed``, a ``torch.Generator``, ``space.seed``)."""
    torch.manual_seed(TEST_SEED)
    np.random.seed(TEST_SEED)
    random.seed(TEST_SEED)
    yield


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary directory so runs/ and logs land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_addoption(parser):
    parser.addoption("--precision", default=None, choices=("32-true", "bf16-mixed"),
                     help="--trainer.precision for the learning tests' runs (default: the recipes' own, "
                          "lightning_mbrl.precision.default_precision)")


@pytest.fixture
def precision_args(request) -> list[str]:
    """``["--trainer.precision=<p>"]`` when pytest ran with ``--precision <p>``, else nothing (the recipes'
    default): ``bash scripts/test.sh -m slow --precision 32-true`` reruns the learning tests in fp32."""
    chosen = request.config.getoption("--precision")
    return [f"--trainer.precision={chosen}"] if chosen else []
