#!/usr/bin/env bash
# The agent solver's CPU smoke run, on a fresh Debian machine as root: set-up (Docker engine, venv
# with vLLM for CPU and mini-swe-agent), the tiny real model, the local SWE-bench-format instance
# (image built offline), then configs/smoke-agent-tiny.yaml.
#   bash scripts/run-agent-smoke.sh [extra `harness run` options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --vllm
HARNESS_TINY_MODEL="$(.venv/bin/python scripts/provision_tiny_model.py)"
HARNESS_AGENT_DATASET="$(.venv/bin/python scripts/build_swebench_local.py)"
export HARNESS_TINY_MODEL HARNESS_AGENT_DATASET
exec .venv/bin/harness run configs/smoke-agent-tiny.yaml "$@"
