#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine, as root: system packages, a running Docker engine,
# the project venv (.venv) and the sandbox image. Safe to run again; it skips what is there.
#   bash scripts/setup.sh            # core: grading in Docker / bubblewrap, tests
#   bash scripts/setup.sh --vllm     # also vLLM for CPU (or GPU wheels where CUDA is present)
#   bash scripts/setup.sh --tests    # also what only the tests need (Debian's chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_VLLM=0
WITH_TESTS=0
for arg in "$@"; do
  case "$arg" in
    --vllm) WITH_VLLM=1 ;;
    --tests) WITH_TESTS=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

log() { echo "[setup] $*" >&2; }

# 1. Debian packages: the Docker engine, debootstrap (offline image), bubblewrap; for the tests also
#    chromium (the report's pages are tested in real headless Chromium, driven by Playwright, which
#    never downloads a browser of its own).
packages=(docker.io debootstrap bubblewrap git)
[ "$WITH_TESTS" = 1 ] && packages+=(chromium)
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv python3-pip)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. A running Docker engine.
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (setsid dockerd >/var/log/harness-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/harness-dockerd.log" >&2; exit 1; }
fi

# 3. The project venv.
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.harness-installed-$(sha256sum pyproject.toml | cut -c1-16)-$WITH_VLLM"
if [ ! -e "$stamp" ]; then
  log "installing the harness into .venv"
  .venv/bin/pip install -q --upgrade pip
  # evalplus goes in last, without its dependencies: any install after it that touches a package
  # evalplus needs makes pip print red "ERROR: pip's dependency resolver ..." lines about the rest.
  # So on a re-install it leaves first (pip never warns about a --no-deps install itself).
  .venv/bin/pip uninstall -q -y evalplus 2>/dev/null || true
  .venv/bin/pip install -q -e ".[dev,swebench,agent,ray]"
  if [ "$WITH_VLLM" = 1 ]; then
    bash scripts/install-vllm.sh .venv
  fi
  # evalplus's checker, for the HumanEval+ parity tests only; its own dependencies (openai,
  # anthropic, vllm, ...) are for generation, which the tests do not use.
  .venv/bin/pip install -q --no-deps "evalplus==0.3.1"
  touch "$stamp"
fi

# 4. The sandbox image (from the Dockerfile where a registry answers, else offline).
.venv/bin/harness sandbox build >&2
log "ready"
