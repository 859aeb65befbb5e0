"""``python -m lightning_mbrl.envs.piecewise_linear``: the CLI of :mod:`.cli`."""

import sys

from lightning_mbrl.envs.piecewise_linear.cli import main

sys.exit(main())
