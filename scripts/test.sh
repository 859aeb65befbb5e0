#!/usr/bin/env bash
# Install (if needed) and run the CI test tiers: unit + smoke. Extra args go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the learning tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export MUJOCO_GL=${MUJOCO_GL:-egl}
# With two or more cores, one pytest worker per core (pytest-xdist) and one torch thread per worker,
# unless the arguments pick the workers themselves (-n / --numprocesses; -n 0 runs in one process).
if [ "$(nproc)" -gt 1 ] && [[ " $* " != *" -n "* && " $* " != *" --numprocesses"* ]]; then
  set -- -n auto "$@"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
exec .venv/bin/python -m pytest "$@"
