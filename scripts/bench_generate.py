#!/usr/bin/env python3
"""Benchmark: the same prompts and sampling through `harness generate` (vllm backend) and through a
bare `vllm.LLM.chat` call, in one run; prints both wall times and the ratio (target <= 1.05).

Both sides are whole processes timed from start to exit (engine start included), on the tiny model
and configs/smoke-tiny.yaml unless told otherwise.

    .venv/bin/python scripts/bench_generate.py [--limit N] [--config configs/smoke-tiny.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BARE = r"""
import json, sys, time
from vllm import LLM, SamplingParams
args = json.loads(sys.argv[1])
if __name__ == "__main__":
    llm = LLM(**args["engine"])
    params = [SamplingParams(**args["sampling"], seed=s) for s in args["seeds"]]
    t0 = time.monotonic()
    outs = llm.chat(args["messages"], params, use_tqdm=False)
    gen_s = time.monotonic() - t0
    print(json.dumps({"tokens": sum(len(o.token_ids) for out in outs for o in out.outputs), "generate_s": gen_s}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs/smoke-tiny.yaml")
    ap.add_argument("--limit", type=int, default=164)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if "HARNESS_TINY_MODEL" not in os.environ:
        out = subprocess.run(
            [sys.executable, str(REPO / "scripts/provision_tiny_model.py")],
            capture_output=True,
            text=True,
            check=True,
        )
        os.environ["HARNESS_TINY_MODEL"] = out.stdout.strip().splitlines()[-1]
    from harness.config import load_config
    from harness.models.base import request_seed
    from harness.models.vllm_engine import engine_kwargs
    from harness.pipeline import load_benchmark

    cfg = load_config(args.config, [f"benchmark.limit={args.limit}", "model.chunk_size=100000"])
    bench = load_benchmark(cfg.benchmark)
    tasks = bench.load()[0]
    prompts = [bench.prompt(t, cfg.prompt) for t in tasks]
    s = cfg.sampling
    bare_args = {
        "engine": engine_kwargs(cfg.model),
        "sampling": {"n": s.n, "temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens},
        "seeds": [request_seed(s.seed, t.task_id) for t in tasks],
        "messages": [p.messages for p in prompts],
    }
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "generate",
                str(args.config),
                "--limit",
                str(args.limit),
                "--set",
                "model.chunk_size=100000",
                "--out",
                tmp,
                "--run-id",
                "g",
                "--quiet",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        h_wall = time.perf_counter() - t0
        prov = json.loads((Path(tmp) / "g" / "generation.json").read_text())
        t0 = time.perf_counter()
        bare = subprocess.run(
            [sys.executable, "-c", BARE, json.dumps(bare_args)],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        b_wall = time.perf_counter() - t0
    b = json.loads(next(line for line in bare.stdout.splitlines() if line.startswith('{"tokens"')))
    print(f"prompts: {len(tasks)}  n={s.n}  T={s.temperature}  max_tokens={s.max_tokens}  model={cfg.model.model}")
    print(
        f"harness generate: {h_wall:7.2f} s wall  ({prov['completion_tokens']} tokens, "
        f"{prov['generate_s']:.2f} s in generate, {prov['tokens_per_s']} tokens/s)"
    )
    print(
        f"bare vllm.LLM.chat: {b_wall:7.2f} s wall  ({b['tokens']} tokens, {b['generate_s']:.2f} s in chat, "
        f"{b['tokens'] / b['generate_s']:.1f} tokens/s)"
    )
    print(f"ratio (harness / bare): {h_wall / b_wall:.3f}")


if __name__ == "__main__":
    main()
