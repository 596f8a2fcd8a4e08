#!/usr/bin/env bash
# The main job on the built-in default, on a fresh Debian machine as root: set-up (Docker engine,
# sandbox image, venv with vLLM for CPU), the tiny real model, then the CPU smoke run
# (SmolLM2-135M-Instruct, greedy chat pass@1 on the full HumanEval, graded in the Docker sandbox).
#   bash scripts/run-default.sh [extra `harness run` options, e.g. --limit 20]
# The console shows the run's progress and result table; vLLM's own log goes to RUN_DIR/engine.log
# (a failed engine start prints the errors from it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --vllm
HARNESS_TINY_MODEL="$(.venv/bin/python scripts/provision_tiny_model.py)"
export HARNESS_TINY_MODEL
exec .venv/bin/harness run configs/smoke-tiny.yaml "$@"
