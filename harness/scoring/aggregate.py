"""The aggregator: verdicts -> metrics, CIs, counts and completeness; the only writer of results.json.

Two metric families, chosen by the benchmark's headline metric:
- pass@k (the default): the unbiased estimator over tasks with graded samples, for every k not
  above the smallest per-task sample count, with a percentile bootstrap CI of pass@1 over tasks;
- resolved: resolved / selected tasks (the leaderboard's denominator: an instance without a
  verdict counts as not resolved), with a bootstrap CI over the same tasks.
Infrastructure errors are never scored; they and missing generations make a run incomplete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness import metrics
from harness.records import DatasetInfo, Headline, Results, SampleResult, Status
from harness.store import RunStore

if TYPE_CHECKING:
    from harness.benchmarks.base import Benchmark

RESULTS_SCHEMA_VERSION = 1


def compute(
    bench: Benchmark,
    rows: Sequence[SampleResult],
    selected: Sequence[str],
    info: DatasetInfo,
    statuses: Sequence[Status],
    model: str,
    expected_samples: int,
    generation_errors: int,
    seed: int,
    reference: bool = False,
    variant: str | None = None,
) -> Results:
    """results.json without provenance, from the verdicts of one run directory."""
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    counts: dict[str, int] = {s.value: 0 for s in statuses}
    for r in rows:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
        if r.status is not Status.INFRA_ERROR:
            per_task[r.task_id][0] += 1
            per_task[r.task_id][1] += int(r.passed)
    family = "resolved" if bench.headline_metric == "resolved" else "pass@k"
    m: dict = {}
    if family == "resolved":
        solved = [per_task[t][1] / per_task[t][0] if per_task[t][0] else 0.0 for t in selected]
        if solved:
            m["resolved"] = sum(solved) / len(solved)
            m["resolved_ci95"] = list(metrics.bootstrap_ci(solved, seed))
    else:
        pairs = [(n, c) for n, c in per_task.values() if n > 0]
        m = metrics.pass_at_k_table(pairs)
        if pairs:
            m["pass@1_ci95"] = list(metrics.bootstrap_ci([c / n for n, c in pairs], seed))
    infra = counts.get(Status.INFRA_ERROR.value, 0)
    missing = max(0, expected_samples - len(rows) - generation_errors)
    reasons = []
    if infra:
        reasons.append(f"{infra} sample(s) hit infrastructure failures (sandbox, container or grader)")
    if generation_errors:
        reasons.append(f"{generation_errors} sample(s) have no generation (backend errors)")
    if missing:
        reasons.append(f"{missing} sample(s) were not graded")
    complete = not reasons
    value = m.get(bench.headline_metric)
    return Results(
        schema_version=RESULTS_SCHEMA_VERSION,
        benchmark=bench.name,
        model=model,
        complete=complete,
        incomplete_reason=None if complete else "; ".join(reasons) + "; resume to retry exactly those",
        headline=Headline(metric=bench.headline_metric, value=value) if value is not None else None,
        leaderboard=bench.leaderboard(info) + (f"-{variant}" if variant else ""),
        variant=variant,
        metrics=m,
        counts={
            "tasks": len(selected),
            "graded_tasks": sum(1 for t in selected if per_task.get(t, [0])[0] > 0),
            "dataset_tasks": info.full_tasks or info.tasks,
            "samples": len(rows),
            **counts,
            "generation_error": generation_errors,
        },
        dataset=info.to_json(),
        selected=list(selected),
        expected_samples=expected_samples,
        **bench.results_extra(rows, selected, reference),
    )


def write(store: RunStore, results: Results) -> None:
    """The one write of results.json."""
    store.write_results(results)
