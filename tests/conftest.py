import os
import pathlib
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny.yaml")

os.environ.setdefault("MUJOCO_GL", "egl")
warnings.filterwarnings("ignore", message=".*precision lowered by casting.*")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a temporary directory so runs/ and logs land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
