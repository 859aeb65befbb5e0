#!/usr/bin/env bash
# Install (if needed) and run the CI test tiers: unit + smoke. Extra args go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the learning tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/python -m pytest "$@"
