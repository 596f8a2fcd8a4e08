#!/usr/bin/env python3
"""Benchmark: grade the same predictions on the local SWE-bench-format dataset through the harness
(`harness evaluate swebench`) and through the package's own `run_evaluation` entry point, in one
run; prints both wall times, the ratio (target: harness within 10%) and the per-instance overhead.

The dataset is the test one (tests/integration/swebench_local.py), replicated into K instances
that share one image, with a mix of gold, wrong and empty predictions.

    .venv/bin/python scripts/bench_swebench.py [--instances 6] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import docker

    from tests.integration import swebench_local

    with tempfile.TemporaryDirectory(prefix="bench-swe-") as tmp_s:
        tmp = Path(tmp_s)
        local = swebench_local.build(docker.from_env(timeout=600), tmp)
        kinds = ["gold", "wrong", "gold", "breaks_p2p"]
        rows, preds = [], []
        for k in range(args.instances):
            iid = f"harness__calc-{k + 1}"
            rows.append(dict(local["instance"], instance_id=iid))
            preds.append(
                {
                    "instance_id": iid,
                    "model_name_or_path": "bench",
                    "model_patch": local["patches"][kinds[k % len(kinds)]],
                }
            )
        ds = tmp / "dataset.jsonl"
        ds.write_text("".join(json.dumps(r) + "\n" for r in rows))
        pf = tmp / "preds.jsonl"
        pf.write_text("".join(json.dumps(p) + "\n" for p in preds))
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "evaluate",
                "swebench",
                str(pf),
                "--dataset",
                str(ds),
                "--out",
                str(tmp / "ours"),
                "--workers",
                str(args.workers),
                "--timeout",
                "120",
                "--quiet",
            ],
            check=True,
            cwd=tmp,
        )
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "swebench.harness.run_evaluation",
                "-d",
                str(ds),
                "-p",
                str(pf),
                "-id",
                "pkg",
                "--max_workers",
                str(args.workers),
                "-t",
                "120",
            ],
            check=True,
            cwd=tmp,
            capture_output=True,
        )
        pkg = time.perf_counter() - t0
        summary = json.loads((tmp / "bench.pkg.json").read_text())
        mine = [json.loads(line) for line in (tmp / "ours/samples.jsonl").read_text().splitlines()]
        same = {r["task_id"] for r in mine if r["status"] == "resolved"} == set(summary["resolved_ids"])
    n = args.instances
    print(f"instances: {n} ({args.workers} workers); resolved sets identical: {same}")
    print(f"harness evaluate swebench: {ours:6.2f} s  ({ours / n:.2f} s/instance)")
    print(f"swebench run_evaluation:   {pkg:6.2f} s  ({pkg / n:.2f} s/instance)")
    print(f"ratio (harness / package): {ours / pkg:.3f}; overhead {(ours - pkg) / n:+.2f} s/instance")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
