#!/usr/bin/env bash
# Set up the environment and run the main job: riskmodel demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/riskmodel demo "$@"
