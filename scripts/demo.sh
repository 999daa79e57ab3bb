#!/usr/bin/env bash
# Installs Lepton and runs the whole loop offline: `lepton demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
exec .venv/bin/lepton demo "$@"
