"""The scorer protocol: grade submissions, one verdict (SampleResult) per submission.

A scorer never writes files itself: the score stage (harness/pipeline.py) hands it the
submissions without a final verdict and appends each verdict to the run store as it arrives, so
grading resumes after a kill. A new scorer is one module with a subclass of `Scorer`, registered
by one line in harness/registry.py or by an entry point in the group `harness.scorers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from harness.config import ExecutorConfig, SandboxConfig
from harness.records import Sample, SampleResult, Status, Submission

if TYPE_CHECKING:
    from harness.benchmarks.base import Benchmark

OnResult = Callable[[SampleResult], None]


class Scorer(ABC):
    """Grades one benchmark's submissions. Built once per grading session."""

    # Statuses that results.json always counts (zero when absent), in display order.
    statuses: ClassVar[tuple[Status, ...]] = (
        Status.PASSED,
        Status.FAILED,
        Status.TIMEOUT,
        Status.ERROR,
        Status.INFRA_ERROR,
    )
    uses_sandbox: ClassVar[bool] = False  # reads the `sandbox` section (so --sandbox applies)
    remote: ClassVar[bool] = False  # can grade through a remote executor (executor: ray)

    def __init__(
        self,
        bench: Benchmark,
        sandbox: SandboxConfig,
        out_dir: Path,
        quiet: bool = False,
        model: str = "model",
        executor: ExecutorConfig | None = None,
    ) -> None:
        self.bench, self.sandbox_cfg, self.out_dir, self.quiet, self.model = bench, sandbox, out_dir, quiet, model
        self.executor_cfg = executor or ExecutorConfig()

    def check(self) -> None:  # noqa: B027 - optional hook
        """Pre-flight: raise EnvironmentNotReady (with the fixing command) if grading cannot run here."""

    # settings() keys that decide how fast grading runs, not what it finds.
    run_only_settings: ClassVar[tuple[str, ...]] = ("workers", "max_workers", "images", "executor")

    def settings(self) -> dict:
        """The grading settings, recorded in provenance."""
        return {}

    def verdict_settings(self) -> dict:
        """The settings that can change a verdict: a run directory's verdicts all share them."""
        return {k: v for k, v in self.settings().items() if k not in self.run_only_settings}

    @abstractmethod
    def grade(self, todo: Sequence[tuple[Sample, Submission]], on_result: OnResult) -> dict:
        """Grade every submission, calling on_result once per verdict (from the calling thread or
        under a lock); returns the provenance of this grading session."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what grading held (containers, clients)."""
