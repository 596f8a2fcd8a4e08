"""Vendor claims (configs/claims.yaml) against replicated figures.

A claim is replicated by the ranked runs (complete, every task graded) of the same model name,
benchmark and metric. Each such run gives a row with a verdict from its 95% CI: "consistent"
when the claim lies inside it, "below claim" when the whole CI lies below the claim, "above
claim" when above. A claim without such a run is "not yet replicated", and the row names any
incomplete or partial runs that were not counted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness import metrics
from harness.report.runs import Run
from harness.report.schema import ClaimRow, Claims, RunSummary
from harness.store import sha256_file
from harness.yamlfile import SourceURL, load_yaml_model

METRICS = ("pass@1", "pass@10", "pass@100", "resolved")


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str = Field(description="model.name of the runs that replicate the claim")
    vendor_model: str | None = Field(None, description="the model as the vendor names it")
    benchmark: str = Field(description="humaneval, humaneval-plus, swebench-lite, swebench-verified, ...")
    metric: str = "pass@1"
    value_percent: float = Field(ge=0, le=100, description="the claimed figure, in percent as published")
    setting: str | None = Field(None, description="the conditions the vendor states (shots, decoding)")
    source: SourceURL = Field(description="the publication")
    date: dt.date
    note: str | None = None

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"must be one of {', '.join(METRICS)}")
        return v


class ClaimsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    claims: list[Claim]


def load_claims(path: Path) -> ClaimsFile:
    return load_yaml_model(path, ClaimsFile, "claims")


def metric_ci(run: Run, metric: str) -> tuple[float, float] | None:
    """The stored 95% CI of a metric, or a bootstrap over per-task pass@k with the run's own seed."""
    stored = run.results.metrics.get(f"{metric}_ci95")
    if stored:
        return (float(stored[0]), float(stored[1]))
    if not metric.startswith("pass@"):
        return None
    k = int(metric.split("@")[1])
    scored = [t for t in run.tasks if t.n >= k]
    if not scored:
        return None
    seed = int((run.results.provenance.get("bootstrap") or {}).get("seed", 1234))
    return metrics.bootstrap_ci([metrics.pass_at_k(t.n, t.passed, k) for t in scored], seed)


def verdict(claimed: float, ci: tuple[float, float]) -> str:
    lo, hi = ci
    if claimed > hi:
        return "below claim"
    if claimed < lo:
        return "above claim"
    return "consistent"


def claim_rows(
    claims: ClaimsFile | None, path: Path | None, runs: list[Run], summaries: dict[str, RunSummary]
) -> Claims:
    rows: list[ClaimRow] = []
    for c in claims.claims if claims else []:
        claimed = round(c.value_percent / 100, 10)  # 67.8 -> 0.678, not 0.6779999999999999
        base = {
            "model": c.model,
            "vendor_model": c.vendor_model,
            "benchmark": c.benchmark,
            "metric": c.metric,
            "claimed": claimed,
            "claimed_setting": c.setting,
            "source": c.source,
            "date": c.date.isoformat(),
        }
        matching = [r for r in runs if (r.results.model, r.leaderboard) == (c.model, c.benchmark)]
        matching = [r for r in matching if c.metric in r.results.metrics]
        counted = [r for r in matching if summaries[r.run_id].ranked]
        for r in counted:
            value = float(r.results.metrics[c.metric])
            ci = metric_ci(r, c.metric)
            rows.append(
                ClaimRow(
                    **base,
                    run_id=r.run_id,
                    replicated=value,
                    replicated_ci95=ci,
                    difference=value - claimed,
                    run_decoding=summaries[r.run_id].decoding,
                    verdict=verdict(claimed, ci) if ci else "not yet replicated",
                    note=c.note if ci else "the run has no confidence interval for this metric",
                )
            )
        if not counted:
            skipped = [f"{r.run_id} ({summaries[r.run_id].not_ranked_reason})" for r in matching]
            note = ("not counted: " + "; ".join(skipped)) if skipped else c.note
            rows.append(ClaimRow(**base, verdict="not yet replicated", note=note))
    return Claims(
        claims_file=str(path) if path else None,
        claims_sha256=sha256_file(path) if path else None,
        rows=rows,
    )
