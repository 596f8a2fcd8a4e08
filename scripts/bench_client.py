#!/usr/bin/env python3
"""Benchmark: the hosted-endpoint client against a local OpenAI-compatible server that answers with a
fixed latency; achieved requests/s at max_concurrency 1, 8, 64 against concurrency / latency.

    .venv/bin/python scripts/bench_client.py [--latency 0.2] [--requests 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--requests", type=int, default=512)
    args = ap.parse_args()
    import subprocess

    from harness.config import OpenAIModel, SamplingConfig
    from harness.models.openai_api import OpenAIBackend
    from harness.records import Prompt

    prompts = [Prompt(f"T/{i}", messages=[{"role": "user", "content": f"task {i}"}]) for i in range(args.requests)]
    srv = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--latency", str(args.latency)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    base_url = srv.stdout.readline().strip()
    try:
        for conc in (1, 8, 64):
            n = min(args.requests, max(32, conc * 8))
            cfg = OpenAIModel(backend="openai", name="b", model="b", base_url=base_url, max_concurrency=conc)
            got = []
            backend = OpenAIBackend(cfg)
            t0 = time.perf_counter()
            backend.generate(prompts[:n], SamplingConfig(), {p.task_id: [0] for p in prompts[:n]}, got.extend)
            wall = time.perf_counter() - t0
            ideal = conc / args.latency
            print(
                f"max_concurrency={conc:3d}: {n} requests in {wall:6.2f} s = {n / wall:7.1f} req/s; "
                f"ideal {ideal:7.1f} req/s; achieved {n / wall / ideal * 100:5.1f}% "
                f"(client had at most {backend.stats['max_in_flight']} in flight)"
            )
            assert len(got) == n and all(g.error is None for g in got)
    finally:
        srv.stdin.close()
        srv.wait()


if __name__ == "__main__":
    main()
