#!/usr/bin/env bash
# Installs Lepton with everything its tests need (Python packages, PostgreSQL, Chromium),
# then runs ruff, mypy and the whole test suite. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/system-deps.sh
. .venv/bin/activate
ruff check lepton lepton_core tests benchmarks
mypy  # lepton/artifact, lepton/serve (pyproject.toml [tool.mypy])
python -m pytest "$@"
