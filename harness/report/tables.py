"""tables/*.md and tables/*.csv: the leaderboards, comparisons and claims, for citing.

CSV keeps full precision (fractions in [0, 1]); Markdown shows percents with one decimal and ends
with a line saying what generated it and from which runs, so a pasted table carries its source.
Each table is a list of (header, getter) columns, so CSV and Markdown cannot drift apart.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.report.schema import ClaimRow, Comparison, RunSummary
from harness.report.summary import decoding_text

if TYPE_CHECKING:
    from harness.report.agent import AgentInstance
    from harness.report.site import Report

Column = tuple[str, Callable[[Any], object]]


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _ci(ci: Sequence[float] | None, i: int) -> float | None:
    return ci[i] if ci else None


def _pct_range(ci: Sequence[float] | None, sep: str = "-") -> str:
    return f"{pct(ci[0])}{sep}{pct(ci[1])}" if ci else ""


def _dec(attr: str) -> Callable[[RunSummary], object]:
    return lambda r: getattr(r.decoding, attr) if r.decoding else None


LEADERBOARD_CSV: list[Column] = [
    ("rank", lambda r: r.rank),
    ("run_id", lambda r: r.run_id),
    ("model", lambda r: r.model),
    ("benchmark", lambda r: r.benchmark),
    ("metric", lambda r: r.headline.metric),
    ("value", lambda r: r.headline.value),
    ("ci95_low", lambda r: _ci(r.headline.ci95, 0)),
    ("ci95_high", lambda r: _ci(r.headline.ci95, 1)),
    ("tasks", lambda r: r.counts.get("tasks")),
    ("samples", lambda r: r.counts.get("samples")),
    ("samples_per_task", lambda r: r.samples_per_task),
    ("prompt_mode", _dec("prompt_mode")),
    ("temperature", _dec("temperature")),
    ("top_p", _dec("top_p")),
    ("max_tokens", _dec("max_tokens")),
    ("finished_at", lambda r: r.finished_at),
    ("generation_hardware", lambda r: r.hardware.generation),
    ("harness_version", lambda r: r.harness_version),
    ("harness_git_sha", lambda r: r.harness_git_sha),
    ("complete", lambda r: r.complete),
    ("ranked", lambda r: r.ranked),
    ("not_ranked_reason", lambda r: r.not_ranked_reason),
    ("results_sha256", lambda r: r.source.results_sha256),
    ("price_per_1k_tasks", lambda r: r.cost.price_per_1k_tasks),
    ("currency", lambda r: r.cost.currency),
]


def leaderboard_md(metric: str) -> list[Column]:
    return [
        ("Rank", lambda r: r.rank or "-"),
        ("Model", lambda r: r.model),
        ("Run", lambda r: r.run_id),
        (f"{metric} (%)", lambda r: pct(r.headline.value)),
        ("95% CI (%)", lambda r: _pct_range(r.headline.ci95)),
        ("Tasks", lambda r: r.counts.get("tasks")),
        ("Samples/task", lambda r: r.samples_per_task),
        ("Decoding", lambda r: decoding_text(r.decoding)),
        ("Date", lambda r: (r.finished_at or "")[:10]),
        ("Generation hardware", lambda r: r.hardware.generation),
        ("Harness", lambda r: f"{r.harness_version} ({(r.harness_git_sha or '?')[:12]})"),
        ("Status", lambda r: "complete" if r.ranked else (r.not_ranked_reason or "not ranked")),
    ]


COMPARISONS_CSV: list[Column] = [
    ("benchmark", lambda c: c.benchmark),
    ("a", lambda c: c.a.run_id),
    ("b", lambda c: c.b.run_id),
    ("shared_tasks", lambda c: c.paired.shared_tasks),
    ("a_value", lambda c: c.paired.a_value),
    ("b_value", lambda c: c.paired.b_value),
    ("difference", lambda c: c.paired.difference),
    ("difference_ci95_low", lambda c: c.paired.difference_ci95[0]),
    ("difference_ci95_high", lambda c: c.paired.difference_ci95[1]),
    ("only_a", lambda c: c.paired.mcnemar.only_a),
    ("only_b", lambda c: c.paired.mcnemar.only_b),
    ("both", lambda c: c.paired.mcnemar.both),
    ("neither", lambda c: c.paired.mcnemar.neither),
    ("mcnemar_p", lambda c: c.paired.mcnemar.p_value),
]

COMPARISONS_MD: list[Column] = [
    ("Benchmark", lambda c: c.benchmark),
    ("A", lambda c: c.a.run_id),
    ("B", lambda c: c.b.run_id),
    ("Shared tasks", lambda c: c.paired.shared_tasks),
    ("A (%)", lambda c: pct(c.paired.a_value)),
    ("B (%)", lambda c: pct(c.paired.b_value)),
    ("A-B (pts)", lambda c: pct(c.paired.difference)),
    ("95% CI (pts)", lambda c: _pct_range(c.paired.difference_ci95, " to ")),
    ("Only A", lambda c: c.paired.mcnemar.only_a),
    ("Only B", lambda c: c.paired.mcnemar.only_b),
    ("McNemar p", lambda c: f"{c.paired.mcnemar.p_value:.3g}"),
]

CLAIMS_CSV: list[Column] = [
    (name, (lambda attr: lambda c: getattr(c, attr))(name))
    for name in ("model", "vendor_model", "benchmark", "metric", "claimed", "claimed_setting", "source", "date")
] + [
    ("run_id", lambda c: c.run_id),
    ("replicated", lambda c: c.replicated),
    ("ci95_low", lambda c: _ci(c.replicated_ci95, 0)),
    ("ci95_high", lambda c: _ci(c.replicated_ci95, 1)),
    ("difference", lambda c: c.difference),
    ("verdict", lambda c: c.verdict),
    ("note", lambda c: c.note),
]

CLAIMS_MD: list[Column] = [
    ("Model", lambda c: c.model),
    ("Benchmark", lambda c: c.benchmark),
    ("Metric", lambda c: c.metric),
    ("Claimed (%)", lambda c: pct(c.claimed)),
    ("Source", lambda c: c.source),
    ("Run", lambda c: c.run_id or "-"),
    ("Replicated (%)", lambda c: pct(c.replicated)),
    ("95% CI (%)", lambda c: _pct_range(c.replicated_ci95)),
    ("Difference (pts)", lambda c: pct(c.difference)),
    ("Verdict", lambda c: c.verdict),
]


AGENT_CSV: list[Column] = [
    (name, (lambda attr: lambda i: getattr(i, attr))(name))
    for name in (
        "task_id", "status", "scored", "verdict", "resolved", "steps", "prompt_tokens", "completion_tokens",
        "wall_s", "cost", "error", "detail",
    )
]  # fmt: skip


def to_csv(columns: list[Column], items: Sequence[Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([h for h, _ in columns])
    for it in items:
        w.writerow(["" if (v := get(it)) is None else v for _, get in columns])
    return buf.getvalue()


def to_md(title: str, columns: list[Column], items: Sequence[Any], footer: str) -> str:
    def cell(v: object) -> str:
        return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {title}", "", "| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(get(it)) for _, get in columns) + " |" for it in items]
    return "\n".join(lines) + f"\n\n{footer}\n"


def write(report: Report, root: Path) -> None:
    out = root / "tables"
    out.mkdir(parents=True, exist_ok=True)
    sha = report.generator.get("harness_git_sha") or "unknown commit"
    source = (
        f"Generated by harness {report.generator['harness_version']} ({sha}) at {report.generated_at} from "
        f"{len(report.runs)} run directories; each run's results.json sha256 is in data/index.json."
    )
    for board, lb in report.leaderboards.items():
        rows: list[RunSummary] = lb.rows
        title = f"{report.board_titles.get(board, board)} leaderboard ({lb.metric})"
        (out / f"leaderboard-{board}.md").write_text(to_md(title, leaderboard_md(lb.metric), rows, source))
        (out / f"leaderboard-{board}.csv").write_text(to_csv(LEADERBOARD_CSV, rows))
    for rid, agent in report.agents.items():  # per instance: exit status, verdict, steps, tokens, cost
        instances: list[AgentInstance] = agent.instances
        (out / f"agent-{rid}.csv").write_text(to_csv(AGENT_CSV, instances))
    comparisons: list[Comparison] = report.comparisons
    (out / "comparisons.csv").write_text(to_csv(COMPARISONS_CSV, comparisons))
    (out / "comparisons.md").write_text(
        to_md("Pairwise comparisons (paired over shared tasks)", COMPARISONS_MD, comparisons, source)
    )
    claims: list[ClaimRow] = report.claims.rows
    (out / "claims.csv").write_text(to_csv(CLAIMS_CSV, claims))
    (out / "claims.md").write_text(to_md("Vendor claims against replicated figures", CLAIMS_MD, claims, source))
