#!/usr/bin/env bash
# The test suite, after the set-up it needs (idempotent): bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --vllm --tests
exec .venv/bin/python -m pytest "$@"
