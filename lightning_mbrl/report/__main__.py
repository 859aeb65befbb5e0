"""``python -m lightning_mbrl.report``: see the package docstring."""

import sys

from lightning_mbrl.report.writer import main

sys.exit(main())
