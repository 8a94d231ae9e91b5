#!/usr/bin/env bash
# Set up the environment, lint, and run the whole test suite (fails if no test is collected).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check riskmodel tests benchmarks
# pytest exits with code 5 when nothing is collected: that fails this script, as it should.
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
