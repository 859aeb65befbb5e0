"""Lightning callbacks: thin adapters over the library (evaluation of the policy, BOOTS, MPC; videos; checkpoints;
the progress bar)."""

from callbacks.checkpoint import FrameCheckpoint
from callbacks.evaluation import PolicyEval
from callbacks.optimal import OptimalReturn
from callbacks.planning import BootsEval, MPCEval
from callbacks.progress import FrameProgressBar
from callbacks.video import VideoEval

__all__ = ["BootsEval", "FrameCheckpoint", "FrameProgressBar", "MPCEval", "OptimalReturn", "PolicyEval", "VideoEval"]
