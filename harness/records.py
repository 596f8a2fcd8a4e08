"""Typed records passed between stages (no free-form dicts cross a boundary).

Each file of a run directory has one record type here, one reader and one writer (rundir.py for
config.yaml, generations.jsonl and generation.json; store.py for samples.jsonl and results.json).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict


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
    suffix: str = ""  # the end of `program` (after a newline) that every program of the task shares

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


@dataclass(frozen=True)
class Sample:
    """One task as its benchmark loaded it; `data` is the benchmark's own object (never read by the core)."""

    task_id: str
    data: Any


@dataclass(frozen=True)
class Answer:
    """What a benchmark extracted from a raw model answer: a completion, a whole program, a patch..."""

    kind: str
    code: str


@dataclass(frozen=True)
class Submission:
    """What a scorer grades for one (task, sample): a program or a patch. `note` says why it is empty."""

    task_id: str
    sample_id: int
    kind: str  # program | patch | text (the scorer decides what it accepts)
    content: str
    note: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.task_id, self.sample_id, self.sha256)


_GEN_FIELDS = (
    "raw",
    "kind",
    "code",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "seed",
    "error",
    "attempts",
    "info",
)


@dataclass(frozen=True)
class GenerationRow(Generation):
    """One line of generations.jsonl: a backend's Generation and what the benchmark kept of it."""

    kind: str | None = None
    code: str | None = None
    info: dict | None = None  # the solver's own record of the sample (an agent's exit status, steps, diff)

    @property
    def ok(self) -> bool:
        """An answer was obtained and extracted (an error row is retried on resume, never scored)."""
        return self.error is None and self.code is not None

    @property
    def answer(self) -> Answer:
        return Answer(self.kind or "", self.code or "")

    def to_json(self) -> dict:
        return {"task_id": self.task_id, "sample_id": self.sample_id, **{k: getattr(self, k) for k in _GEN_FIELDS}}

    @classmethod
    def from_json(cls, row: dict) -> GenerationRow:
        fields = {k: row.get(k) for k in _GEN_FIELDS if k != "attempts"}
        return cls(
            task_id=row["task_id"], sample_id=int(row["sample_id"]), attempts=int(row.get("attempts") or 1), **fields
        )

    @classmethod
    def of(cls, g: Generation, answer: Answer | None, info: dict | None = None) -> GenerationRow:
        kept = {"kind": answer.kind, "code": answer.code} if answer else {}
        return cls(**dataclasses.asdict(g), **kept, info=info)


class DatasetInfo(BaseModel):
    """What a benchmark loaded: recorded in results.json under `dataset`. Only fields set are written."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str | None = None
    path: str | None = None
    source: str | None = None
    sha256: str
    tasks: int  # tasks selected for this run (after limit / ids / filters)
    split: str | None = None
    full_tasks: int | None = None  # tasks before the filters: a filtered run is partial
    patched_tasks: list[str] | None = None

    def to_json(self) -> dict:
        return self.model_dump(exclude_unset=True)


class Headline(BaseModel):
    """The metric a leaderboard ranks by, and its value."""

    metric: str
    value: float


class Results(BaseModel):
    """results.json (schema_version 1). Written only by scoring.aggregate; read by evaluate and report."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    schema_version: int
    benchmark: str
    model: str
    complete: bool
    incomplete_reason: str | None = None
    headline: Headline | None = None  # absent in files written before it existed: the report derives it
    leaderboard: str | None = None
    variant: str | None = None  # the solver's own leaderboard (e.g. agent-tools); None: single-turn
    metrics: dict[str, Any]
    counts: dict[str, int | None]
    dataset: dict[str, Any]
    # What the figures are over, so that a reader can recompute every one from samples.jsonl
    # (absent in files written before they existed).
    selected: list[str] | None = None
    expected_samples: int | None = None
    provenance: dict[str, Any] = {}

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=False)
