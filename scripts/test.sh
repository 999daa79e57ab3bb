#!/usr/bin/env bash
# Installs Lepton with everything its tests need (Python packages, PostgreSQL, Chromium),
# then runs ruff and the whole test suite. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/system-deps.sh
. .venv/bin/activate
ruff check lepton lepton_core tests benchmarks
python -m pytest "$@"
