"""A toy benchmark and its scorer, defined outside the harness package as a third party would.

It is found through entry points (groups `harness.benchmarks` and `harness.scorers`) written by
the test into a dist-info directory; nothing under harness/ names it. Tasks are additions
("What is 2 + 3?"); the answer is the first integer in the reply; the scorer compares it with
the sum, no sandbox needed (the answer is never executed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from harness.benchmarks.base import Benchmark, BenchmarkConfig, Predictions
from harness.config import PromptConfig
from harness.records import Answer, DatasetInfo, Prompt, Sample, SampleResult, Status, Submission
from harness.scoring.base import OnResult, Scorer

TASKS = [(f"Toy/{i}", 3 * i + 1, i + 2) for i in range(8)]


class ToyConfig(BenchmarkConfig):
    name: Literal["toy-arith"]
    offset: int = 0  # a setting of the toy's own, reachable through --set benchmark.offset=N


class ToyBenchmark(Benchmark):
    name = "toy-arith"
    Config = ToyConfig
    scorer = "toy-exact"

    def _load(self) -> tuple[list[Sample], DatasetInfo]:
        log = os.environ.get("TOY_LOAD_LOG")
        if log:  # lets the test count how often a run loads its dataset
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
        samples = [Sample(t, (a + self.cfg.offset, b)) for t, a, b in TASKS][: self.cfg.limit]
        return samples, DatasetInfo(name="toy-arith", version="1", sha256="0" * 64, tasks=len(TASKS))

    def prompt(self, sample: Sample, cfg: PromptConfig) -> Prompt:
        a, b = sample.data
        return Prompt(sample.task_id, messages=[{"role": "user", "content": f"What is {a} + {b}?"}])

    def answer(self, sample: Sample, raw: str, cfg: PromptConfig) -> Answer:
        m = re.search(r"-?\d+", raw)
        return Answer("number", m.group(0) if m else "")

    def submission(self, sample: Sample, sample_id: int, answer: Answer) -> Submission:
        return Submission(sample.task_id, sample_id, "text", answer.code)

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> Predictions:
        raise NotImplementedError


class ToyScorer(Scorer):
    def grade(self, todo: Sequence[tuple[Sample, Submission]], on_result: OnResult) -> dict:
        for sample, sub in todo:
            ok = sub.content == str(sum(sample.data))
            status = Status.PASSED if ok else Status.FAILED
            on_result(SampleResult(sub.task_id, sub.sample_id, status, 0.0, "" if ok else "wrong sum", sub.sha256))
        return {"grader": {"package": "toy-exact"}}
