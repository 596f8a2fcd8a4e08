"""The exec scorer: programs run in the sandbox pool (Docker or bubblewrap), one verdict each."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from harness.progress import Progress
from harness.records import ExecJob, ExecResult, Sample, SampleResult, Status, Submission
from harness.scoring.base import OnResult, Scorer


class ExecScorer(Scorer):
    """Runs each program submission in a warm pool of sandbox instances, with the task's timeout."""

    uses_sandbox = True

    @property
    def timeout_s(self) -> float:
        return self.sandbox_cfg.timeout_s or self.bench.default_timeout_s

    @property
    def workers(self) -> int:
        return self.sandbox_cfg.workers or os.cpu_count() or 2

    def _sandbox(self, workers: int):
        from harness.sandbox import make_sandbox
        from harness.sandbox.base import Limits

        limits = Limits(memory_mb=self.sandbox_cfg.memory_mb)
        return make_sandbox(self.sandbox_cfg.kind, workers, limits, owner=self.out_dir)

    def check(self) -> None:
        sb = self._sandbox(1)
        # `auto` resolves per machine: the kind and image that will run the programs are what decide verdicts.
        self._resolved = {"sandbox_kind": sb.kind, "image": getattr(sb, "image", None)}

    def settings(self) -> dict:
        cfg = self.sandbox_cfg
        # Before check() (nothing left to grade) only a named kind is known; `auto` is not compared.
        resolved = getattr(self, "_resolved", {} if cfg.kind == "auto" else {"sandbox_kind": cfg.kind})
        return {
            "timeout_s": self.timeout_s,
            **resolved,
            "memory_mb": cfg.memory_mb,
            "workers": self.workers,
        }

    def grade(self, todo: Sequence[tuple[Sample, Submission]], on_result: OnResult) -> dict:
        from harness.sandbox.pool import run_pool

        sandbox = self._sandbox(self.workers)
        suffixes = {s.task_id: self.bench.program_suffix(s.task_id) for _, s in todo}
        jobs = [
            ExecJob(s.task_id, s.sample_id, s.content, s.sha256, self.timeout_s, suffixes[s.task_id]) for _, s in todo
        ]
        progress = Progress(len(jobs), f"grading {self.bench.name}", quiet=self.quiet)

        def done(job: ExecJob, res: ExecResult, attempts: int) -> None:
            on_result(
                SampleResult(
                    job.task_id,
                    job.sample_id,
                    res.status,
                    res.duration_s,
                    res.detail,
                    job.program_sha256,
                    res.output if res.status is not Status.PASSED else "",
                    attempts,
                )
            )
            progress.advance()

        try:
            stats = run_pool(sandbox, jobs, done, stop=threading.Event())
        finally:
            progress.close()
        return {
            "sandbox": {
                **sandbox.provenance(),
                "runner": stats.runner_info,
                "instances_replaced": stats.replaced,
                "jobs_retried": stats.retried,
                "jobs_lent": stats.lent,
                "extra_instances": stats.extra_instances,
            },
            **self.settings(),
        }
