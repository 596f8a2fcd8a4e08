"""`harness report`: run directories -> a static site, data/*.json and tables/*.md|csv.

Every input is read and checked before anything is written, and stripped of URL credentials and
echoed keys (harness/redact.py); the site is built in a temporary directory beside SITE_DIR and
swapped in at the end, so an error leaves the previous site (or nothing) in place. A SITE_DIR that
holds anything but an earlier report is never overwritten.

Agent runs (harness/report/agent.py) add a table of instances to their run page, one trajectory
page per instance (runs/<run_id>/traj/<instance>.html; trajectories are read while the pages are
written, one at a time, as they can be large) and data/agent/<run_id>.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__, provenance
from harness.errors import UserInputError
from harness.redact import redact_run, secrets_in
from harness.report import pages, tables
from harness.report.agent import AgentRun, agent_run, board_title
from harness.report.claims import claim_rows, load_claims
from harness.report.compare import auto_pairs, compare, requested_pairs
from harness.report.prices import load_prices
from harness.report.runs import Run, load_runs
from harness.report.schema import DATA_MODELS, Claims, Comparison, Index, Leaderboard, RunDetail, dump
from harness.report.summary import rank, summarize, task_outcomes
from harness.store import sha256_file

MARKER = ".harness-report"


@dataclass
class ReportRequest:
    run_paths: list[Path]
    out: Path
    claims: Path | None = None
    prices: Path | None = None
    compare: list[tuple[str, str]] = field(default_factory=list)
    auto_compare: bool = True
    seed: int = 1234
    title: str = "Replicated results"


@dataclass
class Report:
    """Everything the pages, tables and data files are made from."""

    title: str
    runs: list[Run]
    details: dict[str, RunDetail]
    leaderboards: dict[str, Leaderboard]
    comparisons: list[Comparison]
    claims: Claims
    index: Index
    board_titles: dict[str, str] = field(default_factory=dict)  # leaderboard key -> heading
    agents: dict[str, AgentRun] = field(default_factory=dict)  # run_id -> instances, for agent runs
    secrets: dict[str, list[str]] = field(default_factory=dict)  # run_id -> what its trajectories must not show

    @property
    def generated_at(self) -> str:
        return self.index.generated_at

    @property
    def generator(self) -> dict:
        return self.index.generator


def generated_at() -> str:
    """Now, or SOURCE_DATE_EPOCH (reproducible builds: the same inputs give byte-identical files)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if not epoch.isdigit():
        raise UserInputError(f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since 1970-01-01 UTC")
    return dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc).isoformat(timespec="seconds")


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UserInputError(
            f"--out {out}: exists and is not a report written by `harness report`; choose another directory"
        )


def assemble(req: ReportRequest) -> Report:
    """Read and check every input, compute every table; writes nothing."""
    _check_out(req.out)
    claims_file = load_claims(req.claims) if req.claims else None
    prices = load_prices(req.prices) if req.prices else None
    runs = load_runs(req.run_paths)
    secrets: dict[str, list[str]] = {}
    for r in runs:
        # Found before redaction (which masks the URLs they are read from): agent rows and
        # trajectories are redacted with them later.
        secrets[r.run_id] = secrets_in([r.config, r.config_text or "", r.results.provenance])
        # Everything published comes from these fields; run directories written before the harness
        # redacted its records may hold URL credentials or echoed keys.
        r.config, r.config_text, r.results.provenance = redact_run(r.config, r.config_text, r.results.provenance)
    summaries = {r.run_id: summarize(r, prices) for r in runs}
    boards: dict[str, list] = {}
    for r in runs:
        boards.setdefault(r.leaderboard, []).append(summaries[r.run_id])
    leaderboards = {
        b: Leaderboard(benchmark=b, metric=rows[0].headline.metric, rows=rank(rows))
        for b, rows in sorted(boards.items())
    }
    pairs = requested_pairs(req.compare, runs)
    seen = {frozenset((a.run_id, b.run_id)) for a, b in pairs}
    for a, b in auto_pairs(runs, summaries) if req.auto_compare else []:
        if frozenset((a.run_id, b.run_id)) not in seen:
            seen.add(frozenset((a.run_id, b.run_id)))
            pairs.append((a, b))
    comparisons = [compare(a, b, summaries[a.run_id], summaries[b.run_id], req.seed) for a, b in pairs]
    details = {
        r.run_id: RunDetail(
            run=summaries[r.run_id], provenance=r.results.provenance, config=r.config, tasks=task_outcomes(r)
        )
        for r in runs
    }
    claims = claim_rows(claims_file, req.claims, runs, summaries)
    titles = {b: board_title(b, [r for r in runs if r.leaderboard == b]) for b in leaderboards}
    agents = {
        r.run_id: agent_run(r, r.leaderboard, titles[r.leaderboard], prices, secrets[r.run_id])
        for r in runs
        if r.is_agent
    }
    index = Index(
        generated_at=generated_at(),
        generator={"harness_version": __version__, "harness_git_sha": provenance.git_sha()},
        inputs=[summaries[r.run_id].source for r in runs],
        prices={"path": str(req.prices), "sha256": sha256_file(req.prices)} if req.prices else None,
        leaderboards={b: f"data/leaderboard-{b}.json" for b in leaderboards},
        runs={r.run_id: f"data/runs/{r.run_id}.json" for r in runs},
        comparisons={c.id: f"data/compare/{c.id}.json" for c in comparisons},
        claims="data/claims.json",
    )
    return Report(req.title, runs, details, leaderboards, comparisons, claims, index, titles, agents, secrets)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_data(report: Report, root: Path) -> None:
    """data/*.json and the JSON Schema of each kind of file."""
    _write_json(root / "data/index.json", dump(report.index))
    for b, board in report.leaderboards.items():
        _write_json(root / f"data/leaderboard-{b}.json", dump(board))
    for rid, detail in report.details.items():
        _write_json(root / f"data/runs/{rid}.json", dump(detail))
    for c in report.comparisons:
        _write_json(root / f"data/compare/{c.id}.json", dump(c))
    _write_json(root / "data/claims.json", dump(report.claims))
    for kind, model in DATA_MODELS.items():
        _write_json(root / f"data/schema/{kind}.schema.json", model.model_json_schema(by_alias=True))
    # Written only when there are agent runs, so that sites without any keep exactly their files.
    for rid, agent in report.agents.items():
        _write_json(root / f"data/agent/{rid}.json", dump(agent))
    if report.agents:
        _write_json(root / "data/schema/agent-run.schema.json", AgentRun.model_json_schema(by_alias=True))


def build(req: ReportRequest) -> Report:
    """Assemble, render into a temporary directory, then swap it in for req.out."""
    report = assemble(req)
    out = req.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        write_data(report, tmp)
        tables.write(report, tmp)
        pages.write(report, tmp)
        (tmp / MARKER).write_text(f"written by harness {__version__} at {report.generated_at}\n")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return report
