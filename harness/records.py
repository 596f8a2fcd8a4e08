"""Typed records passed between stages (no free-form dicts cross a boundary)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    """Verdict of one sample. Only PASSED counts as a pass; INFRA_ERROR is never a model failure."""

    PASSED = "passed"
    FAILED = "failed"  # ran, but a test failed, an exception escaped, or it exited early
    TIMEOUT = "timeout"  # killed at the per-sample deadline
    ERROR = "error"  # did not compile, or died from a signal / resource limit
    INFRA_ERROR = "infra_error"  # the sandbox failed, not the model
    # SWE-bench instance outcomes (graded by the official swebench package)
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    PATCH_FAILED = "patch_failed"  # the patch did not apply (or is not a unified diff)
    EMPTY_PATCH = "empty_patch"  # no diff in the answer, or no prediction for the instance

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Task:
    """One benchmark problem."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str = ""


@dataclass(frozen=True)
class ExecJob:
    """One program to run in a sandbox. `key` identifies it in the run store."""

    task_id: str
    sample_id: int
    program: str
    program_sha256: str
    timeout_s: float

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.task_id, self.sample_id, self.program_sha256)


@dataclass(frozen=True)
class ExecResult:
    """What the sandbox saw when it ran a job."""

    status: Status
    duration_s: float
    detail: str = ""
    output: str = ""


_CORE_FIELDS = {
    "task_id",
    "sample_id",
    "status",
    "passed",
    "duration_s",
    "detail",
    "program_sha256",
    "output",
    "attempts",
}


@dataclass(frozen=True)
class SampleResult:
    """One line of samples.jsonl."""

    task_id: str
    sample_id: int
    status: Status
    duration_s: float
    detail: str = ""
    program_sha256: str = ""
    output: str = ""
    attempts: int = 1
    extra: dict = field(default_factory=dict, compare=False)  # benchmark-specific (SWE-bench test outcomes)

    @property
    def passed(self) -> bool:
        return self.status in (Status.PASSED, Status.RESOLVED)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.task_id, self.sample_id, self.program_sha256)

    def to_json(self) -> dict:
        row = {
            "task_id": self.task_id,
            "sample_id": self.sample_id,
            "status": self.status.value,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 4),
            "detail": self.detail,
            "program_sha256": self.program_sha256,
            "attempts": self.attempts,
        }
        if self.output:
            row["output"] = self.output
        row.update(self.extra)
        return row

    @classmethod
    def from_json(cls, row: dict) -> SampleResult:
        return cls(
            task_id=row["task_id"],
            sample_id=int(row["sample_id"]),
            status=Status(row["status"]),
            duration_s=float(row.get("duration_s", 0.0)),
            detail=row.get("detail", ""),
            program_sha256=row.get("program_sha256", ""),
            output=row.get("output", ""),
            attempts=int(row.get("attempts", 1)),
            extra={k: v for k, v in row.items() if k not in _CORE_FIELDS},
        )


@dataclass(frozen=True)
class Prompt:
    """What a backend sends for one task: chat messages or raw completion text."""

    task_id: str
    messages: list[dict] | None = None
    text: str | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One sample from a backend. `error` set means no answer was obtained (never scored)."""

    task_id: str
    sample_id: int
    raw: str | None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    seed: int | None = None
    error: str | None = None
    attempts: int = 1
