#!/usr/bin/env bash
# Creates .venv (if missing) and installs Lepton into it with the extras given as $1.
# torch is pinned to the CPU wheel that lies on these machines; a GPU machine with its own
# CUDA build of torch keeps it (the package itself only asks torch>=2.4).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q torch==2.13.0
fi
if [ -n "$extras" ]; then
  python -m pip install -q -e ".[$extras]"
else
  python -m pip install -q -e .
fi
