#!/usr/bin/env bash
# Create .venv and install lightning_mbrl with its dependencies (idempotent; re-runs when
# pyproject.toml changes). Sourced by scripts/main.sh and scripts/test.sh.
#
# torch: on a machine without an NVIDIA GPU the CPU build is installed first (torch==2.13.0; set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu where your pip would otherwise pick a CUDA
# build); with a GPU, pip's default CUDA build. The package's own torch range then keeps it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.lightning_mbrl-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  return 0 2>/dev/null || exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip_install "$TORCH_SPEC"
  else
    pip_install "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  fi
fi
pip_install -e ".[dev]"
echo "$want" > "$stamp"
