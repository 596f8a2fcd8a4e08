"""The report's data files (SITE/data/*.json): a documented, versioned schema for other sites.

Every file carries `schema` ("harness-report/<kind>") and `schema_version`. Rates are fractions
in [0, 1] (the pages show percents); CIs are 95% percentile bootstrap intervals over tasks. The
JSON Schema of each file is written to SITE/data/schema/<kind>.schema.json from these models.
Version 1; a field is only ever added within a version, never renamed or removed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Headline(_Model):
    metric: str = Field(description="pass@1 for HumanEval(+), resolved for SWE-bench")
    value: float | None = Field(description="fraction in [0, 1]; null when nothing was graded")
    ci95: tuple[float, float] | None = Field(description="95% bootstrap CI over tasks")


class Decoding(_Model):
    prompt_mode: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int | None = Field(None, description="samples per task")
    seed: int | None = None


class Hardware(_Model):
    generation: str = Field(description="what generated the answers, e.g. '4x NVIDIA A100-SXM4-80GB'")
    gpu_type: str | None = None
    gpu_count: int = 0
    generation_cpu: str | None = Field(None, description="the CPU that generated, when no GPU did")
    grading_cpu: str | None = None


class CostSpeed(_Model):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    generation_wall_s: float | None = Field(None, description="all generation sessions, engine start included")
    tokens_per_s: float | None = Field(None, description="completion tokens per second of generation")
    gpu_hours: float | None = None
    price_per_1k_tasks: float | None = Field(None, description="cost of generating answers for 1,000 tasks")
    currency: str | None = None
    price_basis: str | None = Field(None, description="how the price was computed, with the prices-file entry")


class Source(_Model):
    path: str = Field(description="run directory the report read")
    results_sha256: str
    samples_sha256: str
    config_sha256: str | None = None


class RunSummary(_Model):
    run_id: str
    page: str = Field(description="path of the run page, relative to the site root")
    model: str
    benchmark: str
    dataset: dict = Field(description="name, version, sha256 and task count of the benchmark data")
    headline: Headline
    metrics: dict[str, float | tuple[float, float] | None]
    counts: dict[str, int | None]
    complete: bool = Field(description="no infra errors and no generation errors")
    incomplete_reason: str | None = None
    ranked: bool = Field(description="complete and covering every task of the dataset")
    not_ranked_reason: str | None = None
    rank: int | None = Field(None, description="1 = best headline value among ranked runs (ties share a rank)")
    samples_per_task: int | None = None
    decoding: Decoding | None = Field(None, description="null when graded from a samples file of unknown origin")
    finished_at: str | None = None
    hardware: Hardware
    harness_version: str | None = None
    harness_git_sha: str | None = None
    backend: str | None = None
    model_id: str | None = None
    model_revision: str | None = None
    sandbox: str | None = None
    cost: CostSpeed
    source: Source


class TaskOutcome(_Model):
    task_id: str
    n: int = Field(description="graded samples (infra errors excluded)")
    passed: int
    score: float | None = Field(description="passed / n; null when every sample hit an infra error")
    statuses: dict[str, int]


class RunDetail(_Model):
    schema_: Literal["harness-report/run"] = Field("harness-report/run", alias="schema")
    schema_version: int = SCHEMA_VERSION
    run: RunSummary
    provenance: dict = Field(description="results.json provenance, verbatim")
    config: dict | None = Field(None, description="the run's resolved config.yaml, when it has one")
    tasks: list[TaskOutcome]


class Leaderboard(_Model):
    schema_: Literal["harness-report/leaderboard"] = Field("harness-report/leaderboard", alias="schema")
    schema_version: int = SCHEMA_VERSION
    benchmark: str
    metric: str
    rows: list[RunSummary] = Field(description="ranked runs by rank, then the runs not ranked")


class McNemar(_Model):
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float = Field(description="exact two-sided McNemar (binomial test of the discordant tasks)")


class Paired(_Model):
    shared_tasks: int
    a_value: float = Field(description="A's mean per-task score on the shared tasks")
    b_value: float
    difference: float = Field(description="a_value - b_value")
    difference_ci95: tuple[float, float]
    mcnemar: McNemar
    solved_rule: str = Field(description="when a task counts as solved for McNemar and the solved-by lists")
    bootstrap_seed: int
    bootstrap_resamples: int


class Comparison(_Model):
    schema_: Literal["harness-report/comparison"] = Field("harness-report/comparison", alias="schema")
    schema_version: int = SCHEMA_VERSION
    id: str
    page: str
    benchmark: str
    a: RunSummary
    b: RunSummary
    paired: Paired
    only_a: list[str]
    only_b: list[str]
    both: list[str]
    neither: list[str]
    warnings: list[str]


Verdict = Literal["consistent", "below claim", "above claim", "not yet replicated"]


class ClaimRow(_Model):
    model: str
    vendor_model: str | None = None
    benchmark: str
    metric: str
    claimed: float = Field(description="the vendor's figure as a fraction")
    claimed_setting: str | None = None
    source: str
    date: str
    run_id: str | None = Field(None, description="the replicating run, null when there is none")
    replicated: float | None = None
    replicated_ci95: tuple[float, float] | None = None
    difference: float | None = Field(None, description="replicated - claimed")
    run_decoding: Decoding | None = None
    verdict: Verdict
    note: str | None = None


class Claims(_Model):
    schema_: Literal["harness-report/claims"] = Field("harness-report/claims", alias="schema")
    schema_version: int = SCHEMA_VERSION
    claims_file: str | None
    claims_sha256: str | None
    rows: list[ClaimRow]


class Index(_Model):
    schema_: Literal["harness-report/index"] = Field("harness-report/index", alias="schema")
    schema_version: int = SCHEMA_VERSION
    generated_at: str
    generator: dict = Field(description="harness version and commit that built the report")
    inputs: list[Source]
    prices: dict | None = Field(None, description="prices file path and sha256, when one was given")
    leaderboards: dict[str, str] = Field(description="benchmark -> data file")
    runs: dict[str, str] = Field(description="run_id -> data file")
    comparisons: dict[str, str] = Field(description="comparison id -> data file")
    claims: str = Field(description="data file of the claims table")


DATA_MODELS: dict[str, type[_Model]] = {
    "index": Index,
    "leaderboard": Leaderboard,
    "run": RunDetail,
    "comparison": Comparison,
    "claims": Claims,
}


def dump(model: _Model) -> dict:
    """JSON-ready dict with the public field names (`schema`, not `schema_`)."""
    return model.model_dump(mode="json", by_alias=True)
