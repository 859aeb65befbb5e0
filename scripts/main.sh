#!/usr/bin/env bash
# Install (if needed) and run the main job with the paper's defaults. Extra args go to the CLI,
# e.g. `bash scripts/main.sh --trainer.devices 1`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/python -m recipes.mbsac_humanoid fit "$@"
