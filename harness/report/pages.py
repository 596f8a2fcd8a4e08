"""The HTML pages, rendered with jinja2 (autoescaped) from the assembled report.

Pages link to each other with relative paths only and embed their CSS, charts (inline SVG) and the
one small script (sortable tables), so the site works from file:// and from any static host.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness.report import svg
from harness.report.summary import decoding_text
from harness.report.trajectory import diff_lines, read_trajectory, shown

if TYPE_CHECKING:
    from harness.report.schema import Comparison, RunDetail
    from harness.report.site import Report

GROUP_COLOURS = {"both": svg.BLUE, "only_a": svg.ORANGE, "only_b": svg.PURPLE, "neither": svg.LIGHT}


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def pvalue(p: float) -> str:
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Provenance as key.path -> value rows (lists of scalars and empty containers kept as JSON)."""
    if isinstance(data, dict) and data:
        rows: list[tuple[str, str]] = []
        for k, v in data.items():
            rows += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        rows = []
        for i, v in enumerate(data):
            rows += flatten(v, f"{prefix}[{i}]")
        return rows
    text = data if isinstance(data, str) else json.dumps(data)
    return [(prefix, text)]


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(pct=pct, pts=pts, pvalue=pvalue, decoding=decoding_text, flatten=flatten, diff_lines=diff_lines)
    return env


def _run_grid(detail: RunDetail):
    cells = []
    for t in detail.tasks:
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(t.statuses.items()))
        tip = f"{t.passed}/{t.n} passed ({statuses})" if t.n else f"not graded ({statuses})"
        cells.append(svg.Cell(t.task_id, svg.score_colour(t.score), tip))
    return svg.task_grid(cells, f"Per-task outcomes of {detail.run.run_id}")


def _compare_grid(c: Comparison, report: Report):
    group_of = {t: g for g in GROUP_COLOURS for t in getattr(c, g)}
    names = {"both": "solved by both", "only_a": "solved only by A", "only_b": "solved only by B"}
    names["neither"] = "solved by neither"
    cells = []
    for t in report.details[c.a.run_id].tasks:
        g = group_of.get(t.task_id)
        colour = GROUP_COLOURS[g] if g else svg.GREY
        cells.append(svg.Cell(t.task_id, colour, names[g] if g else "not graded by both runs"))
    return svg.task_grid(cells, f"Per-task outcomes: {c.a.run_id} against {c.b.run_id}")


def write(report: Report, root: Path) -> None:
    env = environment()
    claimed = {(r.model, r.benchmark, r.metric, r.claimed, r.source, r.date) for r in report.claims.rows}
    common = {"report": report, "boards": list(report.leaderboards), "claims_count": len(claimed)}
    common["board_titles"] = {b: report.board_titles.get(b, b) for b in report.leaderboards}

    def render(template: str, path: str, **ctx: Any) -> None:
        depth = path.count("/")
        html = env.get_template(template).render(**common, root="../" * depth or "./", page_path=path, **ctx)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(html, encoding="utf-8")

    def board_chart(b: str, root_prefix: str):
        lb = report.leaderboards[b]
        bars = [
            svg.Bar(r.run_id, r.headline.value, r.headline.ci95, not r.ranked, root_prefix + r.page) for r in lb.rows
        ]
        return svg.bar_chart(bars, f"{b}: {lb.metric} with 95% CI")

    for b, lb in report.leaderboards.items():
        render("leaderboard.html.j2", f"leaderboard/{b}.html", lb=lb, chart=board_chart(b, "../"))
    render("index.html.j2", "index.html", charts={b: board_chart(b, "") for b in report.leaderboards})
    by_run = {rid: [c for c in report.comparisons if rid in (c.a.run_id, c.b.run_id)] for rid in report.details}
    config_texts = {r.run_id: r.config_text for r in report.runs}
    for rid, detail in report.details.items():
        render(
            "run.html.j2",
            detail.run.page,
            d=detail,
            grid=_run_grid(detail),
            config_text=config_texts[rid],
            comparisons=by_run[rid],
            agent=report.agents.get(rid),
        )
    _trajectory_pages(report, render)
    for c in report.comparisons:
        bars = [
            svg.Bar(f"A: {c.a.run_id}", c.a.headline.value, c.a.headline.ci95, not c.a.ranked),
            svg.Bar(f"B: {c.b.run_id}", c.b.headline.value, c.b.headline.ci95, not c.b.ranked),
        ]
        chart = svg.bar_chart(bars, f"{c.benchmark}: headline {c.a.headline.metric} with 95% CI")
        render("compare.html.j2", c.page, c=c, chart=chart, grid=_compare_grid(c, report))
    points = [
        (
            f"{r.model} {r.metric}" + (f" → {r.run_id}" if r.run_id else ""),
            r.claimed,
            r.replicated,
            r.replicated_ci95,
        )
        for r in report.claims.rows
    ]
    plot = svg.claim_plot(points, "Claimed (orange) and replicated with 95% CI (blue)") if points else None
    render("claims.html.j2", "claims.html", plot=plot)


def _trajectory_pages(report: Report, render: Any) -> None:
    """One page per instance of each agent run; trajectories are read one at a time (they can be large)."""
    from harness.redact import redact_text

    runs = {r.run_id: r for r in report.runs}
    for rid, agent in report.agents.items():
        run, secrets = runs[rid], report.secrets.get(rid, [])
        pages = [i.page for i in agent.instances]
        for n, inst in enumerate(agent.instances):
            row = (run.agent_rows or {}).get(inst.task_id)
            traj = read_trajectory(run.path, inst.trajectory, inst.task_id, secrets)
            where = "generations.jsonl" if row is not None else traj.source
            # The graded patch is generations.jsonl's; the exit event holds the same when the row is absent.
            patch = row.code if row is not None and row.error is None else (traj.exit or {}).get("submission")
            tree = ((row.info or {}) if row is not None else {}).get("worktree_diff")
            if tree is None:
                tree = (traj.exit or {}).get("worktree_diff")
            render(
                "trajectory.html.j2",
                inst.page,
                d=report.details[rid],
                agent=agent,
                i=inst,
                traj=traj,
                submission=shown(redact_text(patch, secrets), where) if patch else None,
                worktree=shown(redact_text(tree, secrets), where) if tree is not None else None,
                prev_page=pages[n - 1] if n else None,
                next_page=pages[n + 1] if n + 1 < len(pages) else None,
            )
