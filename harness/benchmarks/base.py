"""The benchmark protocol: what a benchmark contributes to the one pipeline.

A benchmark loads its samples (with the dataset's name, version and sha256), builds each prompt,
turns a model answer into a typed submission (a program, a patch, ...), names the scorer that
grades it, its headline metric and its leaderboard key, and reads prediction files made by other
tools. The core never asks which benchmark it runs; it asks the benchmark.

A new benchmark is one module with a subclass of `Benchmark` (and its `Config`), registered by
one line in harness/registry.py or by an entry point in the group `harness.benchmarks`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from harness.config import PluginConfig, PromptConfig
from harness.errors import UserInputError
from harness.records import Answer, DatasetInfo, Prompt, Sample, SampleResult, Submission


class BenchmarkConfig(PluginConfig):
    """Settings every benchmark takes; a benchmark's own Config adds its fields."""

    limit: int | None = Field(None, ge=1, description="only the first N tasks")


@dataclass
class Predictions:
    """Submissions read from an external predictions file, what identifies the file, the samples
    (tasks) they cover (the tasks a predictions file is graded on), and notes about the input."""

    path: Path
    sha256: str
    submissions: list[Submission]
    model_name: str | None
    samples: list[Sample]
    # One-line, human-readable remarks about the input that do not stop grading (duplicate lines,
    # a file that looks made for the other dataset variant...): shown in the summary, kept in provenance.
    notes: list[str] = field(default_factory=list)


class Benchmark(ABC):
    """One benchmark. Instances are built from the benchmark's Config; load() is called once."""

    name: ClassVar[str]
    Config: ClassVar[type[BenchmarkConfig]] = BenchmarkConfig
    scorer: ClassVar[str]  # name in the scorer registry
    headline_metric: ClassVar[str] = "pass@1"  # pass@1 (pass@k family) or resolved
    one_sample_per_task: ClassVar[bool] = False  # True: sampling.n must be 1
    # Where the CLI's generic grading flags land in this benchmark's configuration.
    workers_key: ClassVar[str] = "sandbox.workers"
    timeout_key: ClassVar[str] = "sandbox.timeout_s"
    default_timeout_s: ClassVar[float] = 3.0

    def __init__(self, cfg: BenchmarkConfig) -> None:
        self.cfg = cfg
        self._loaded: tuple[list[Sample], DatasetInfo] | None = None

    @classmethod
    def dataset_option(cls, value: str) -> dict:
        """Config fields that the CLI's `--dataset VALUE` sets for this benchmark."""
        raise UserInputError(f"--dataset: {cls.name} takes no dataset variants; use --dataset-path FILE")

    # -- data --------------------------------------------------------------------------------------
    @abstractmethod
    def _load(self) -> tuple[list[Sample], DatasetInfo]:
        """The selected samples (after the config's filters and limit) and the dataset's identity."""

    def load(self) -> tuple[list[Sample], DatasetInfo]:
        """Samples and dataset info, loaded (and checked) once per process."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def check(self) -> None:  # noqa: B027 - optional hook
        """Pre-flight of what this benchmark needs besides its scorer (extras, files); fail in seconds."""

    # -- generation ---------------------------------------------------------------------------------
    @abstractmethod
    def prompt(self, sample: Sample, cfg: PromptConfig) -> Prompt:
        """What the model is asked for this sample."""

    def prompt_sha256(self, cfg: PromptConfig) -> str:
        """Identifies the prompt template (recorded in the generation provenance)."""
        return hashlib.sha256(repr((self.name, cfg.mode, cfg.system, cfg.template)).encode()).hexdigest()

    @abstractmethod
    def answer(self, sample: Sample, raw: str, cfg: PromptConfig) -> Answer:
        """What to keep of a raw model answer (the code block, the diff...)."""

    @abstractmethod
    def submission(self, sample: Sample, sample_id: int, answer: Answer) -> Submission:
        """The typed thing the scorer grades, built from a kept answer."""

    # -- external predictions -----------------------------------------------------------------------
    @abstractmethod
    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> Predictions:
        """Parse a predictions file made by any tool; UserInputError names the file and line."""

    def reference_predictions(self, samples: Sequence[Sample]) -> list[Submission]:
        """The dataset's own solutions (`--set benchmark.gold=true` where a benchmark takes it)."""
        raise UserInputError(f"{self.name} has no reference solutions to grade")

    def program_suffix(self, task_id: str) -> str:
        """The end every program of this task shares (its tests), after the sample's own code and a newline.

        A sandbox runner compiles it once per task instead of once per sample; "" when there is none.
        """
        return ""

    # -- results ------------------------------------------------------------------------------------
    @classmethod
    def leaderboard(cls, info: DatasetInfo) -> str:
        """The key the report groups runs by: runs on one leaderboard are comparable."""
        return cls.name

    def results_extra(self, verdicts: Sequence[SampleResult], selected: Sequence[str], reference: bool) -> dict:
        """Benchmark-specific fields added to results.json. When the dataset's own reference solutions
        were graded, `gold_check` says whether every one passed (the sandbox or images can be trusted).
        Computed from the arguments alone (not the config): the report recomputes it from samples.jsonl."""
        if not reference:
            return {}
        bad = reference_failures(verdicts, selected)
        return {
            "gold_check": {
                "passed": len(selected) - len(bad),
                "total": len(selected),
                "trusted": not bad,
                "not_passed": bad,
            }
        }


def reference_failures(verdicts: Sequence[SampleResult], selected: Sequence[str]) -> list[str]:
    """Tasks whose reference solution did not pass every one of its verdicts (or has none)."""
    failed = {v.task_id for v in verdicts if not v.passed}
    graded = {v.task_id for v in verdicts}
    return [t for t in selected if t in failed or t not in graded]


def select(samples: list[Sample], task_ids: Sequence[str] | None, limit: int | None, what: str) -> list[Sample]:
    """The samples named by task_ids (in that order), then the first `limit`."""
    if task_ids:
        by_id = {s.task_id: s for s in samples}
        unknown = [t for t in task_ids if t not in by_id]
        if unknown:
            raise UserInputError(f"benchmark.task_ids: unknown task ids {unknown[:5]} for {what}")
        samples = [by_id[t] for t in task_ids]
    return samples[:limit] if limit else samples
