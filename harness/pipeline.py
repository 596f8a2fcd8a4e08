"""Grading stage: execute jobs in a sandbox (resuming from the run store), score, write results."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import metrics, provenance
from harness.errors import UserInputError
from harness.progress import Progress
from harness.records import ExecJob, ExecResult, SampleResult, Status
from harness.sandbox import make_sandbox
from harness.sandbox.base import Limits, run_pool
from harness.store import RunStore, is_final, read_graded

RESULTS_SCHEMA_VERSION = 1


@dataclass
class GradeRequest:
    """Everything the grading stage needs besides the jobs."""

    benchmark: str
    dataset: dict  # name, version, path, sha256, tasks
    model_name: str
    out_dir: Path
    sandbox: str = "auto"
    workers: int = 4
    timeout_s: float = 3.0
    bootstrap_seed: int = 1234
    quiet: bool = False
    limits: Limits = field(default_factory=Limits)
    extra_provenance: dict = field(default_factory=dict)
    generation_errors: int = 0  # samples with no answer from the model backend (never scored)
    expected_samples: int | None = None


def check_run_dir(out_dir: Path, benchmark: str, dataset_sha: str) -> None:
    """Refuse a directory that holds results of another benchmark or dataset file."""
    import json

    results = out_dir / RunStore.RESULTS
    if not results.exists():
        return
    try:
        old = json.loads(results.read_text())
    except ValueError:
        raise UserInputError(f"{results}: not valid JSON; move it away to grade into this directory") from None
    old_sha = old.get("dataset", {}).get("sha256")
    if old.get("benchmark") != benchmark or (old_sha and old_sha != dataset_sha):
        raise UserInputError(
            f"{out_dir} holds results for {old.get('benchmark')} (dataset sha256 {old_sha}); "
            f"use another --out for {benchmark}"
        )


def grade(jobs: list[ExecJob], req: GradeRequest) -> dict:
    """Grade the jobs not yet graded in req.out_dir, then write samples.jsonl and results.json."""
    started = provenance.now_iso()
    t0 = time.monotonic()
    check_run_dir(req.out_dir, req.benchmark, req.dataset.get("sha256", ""))
    stored = read_graded(req.out_dir)
    todo = [j for j in jobs if not (j.key in stored and is_final(stored[j.key]))]
    sandbox = make_sandbox(req.sandbox, req.workers, req.limits) if todo else None
    sandbox_prov: dict = {"kind": req.sandbox, "note": "nothing left to grade"}
    stats = None
    with RunStore(req.out_dir) as store:
        final = {k: v for k, v in store.graded().items() if is_final(v)}
        todo = [j for j in jobs if j.key not in final]
        if todo and sandbox is not None:
            progress = Progress(len(todo), f"grading {req.benchmark}", quiet=req.quiet)

            def on_result(job: ExecJob, res: ExecResult, attempts: int) -> None:
                row = SampleResult(
                    job.task_id,
                    job.sample_id,
                    res.status,
                    res.duration_s,
                    res.detail,
                    job.program_sha256,
                    res.output if res.status is not Status.PASSED else "",
                    attempts,
                )
                store.append(row)
                final[job.key] = row
                progress.advance()

            try:
                stats = run_pool(sandbox, todo, on_result, stop=threading.Event())
            finally:
                progress.close()
            sandbox_prov = {
                **sandbox.provenance(),
                "runner": stats.runner_info,
                "instances_replaced": stats.replaced,
                "jobs_retried": stats.retried,
            }
        rows = [final[j.key] for j in jobs if j.key in final]
        store.finalize_samples(rows)
        results = score(rows, req)
        results["provenance"] = {
            **provenance.host(),
            "sandbox": sandbox_prov,
            "timeout_s": req.timeout_s,
            "workers": req.workers,
            "bootstrap": {"seed": req.bootstrap_seed, "resamples": metrics.BOOTSTRAP_RESAMPLES},
            "graded_this_session": len(todo),
            "resumed_from_store": len(jobs) - len(todo),
            "started_at": started,
            "finished_at": provenance.now_iso(),
            "wall_time_s": round(time.monotonic() - t0, 3),
            **req.extra_provenance,
        }
        store.write_results(results)
    return results


def score(rows: list[SampleResult], req: GradeRequest) -> dict:
    """results.json body (without provenance): pass@k, CI, counts. Infra errors are left out."""
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    counts = {s.value: 0 for s in Status}
    for r in rows:
        counts[r.status.value] += 1
        if r.status is Status.INFRA_ERROR:
            continue
        per_task[r.task_id][0] += 1
        per_task[r.task_id][1] += int(r.passed)
    pairs = [(n, c) for n, c in per_task.values() if n > 0]
    m: dict = metrics.pass_at_k_table(pairs)
    if pairs:
        lo, hi = metrics.bootstrap_ci([c / n for n, c in pairs], req.bootstrap_seed)
        m["pass@1_ci95"] = [lo, hi]
    complete = counts[Status.INFRA_ERROR.value] == 0 and req.generation_errors == 0
    reasons = []
    if counts["infra_error"]:
        reasons.append(f"{counts['infra_error']} sample(s) hit sandbox failures")
    if req.generation_errors:
        reasons.append(f"{req.generation_errors} sample(s) have no generation (backend errors)")
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "benchmark": req.benchmark,
        "model": req.model_name,
        "complete": complete,
        "incomplete_reason": None if complete else "; ".join(reasons) + "; resume to retry exactly those",
        "metrics": m,
        "counts": {
            "tasks": len(pairs),
            "dataset_tasks": req.dataset.get("tasks"),
            "samples": len(rows),
            "passed": counts["passed"],
            "failed": counts["failed"],
            "timeout": counts["timeout"],
            "error": counts["error"],
            "infra_error": counts["infra_error"],
            "generation_error": req.generation_errors,
        },
        "dataset": req.dataset,
    }
