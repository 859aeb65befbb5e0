"""Lightning callbacks: thin adapters over the library (evaluation, progress)."""

from callbacks.evaluation import PolicyEval

__all__ = ["PolicyEval"]
