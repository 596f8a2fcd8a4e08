"""Agent runs in the report: one row per instance, the title of their leaderboard, their data file.

An agent run (generation provenance `solver: agent`) is graded like any SWE-bench run, but its
answers come from many model turns, so its run page also lists each instance's exit status, steps,
tokens, wall time and cost, with a link to the instance's trajectory page (harness/report/
trajectory.py). These rows come from generations.jsonl (read once, by harness.rundir), joined with
the verdicts of samples.jsonl; every text taken from the run directory is redacted with the run's
secrets, as config.yaml and provenance are.

Agent runs already sit on their own leaderboard: results.json's key carries the solver's variant
(`swebench-verified-agent-tools`), so they are never ranked beside single-turn runs. The board's
title here only spells that key out with the scaffold and the action format.

The data file is SITE/data/agent/<run_id>.json (schema `harness-report/agent-run`, its JSON Schema in
data/schema/agent-run.schema.json), written only when the report holds an agent run, so a site
without one has exactly the files it had before agent runs existed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field

from harness.agent import INFRA_STATUSES, MODEL_STATUSES  # no mini-swe-agent import: the report needs none
from harness.redact import redact_text
from harness.report.prices import PricesFile, token_cost, token_price
from harness.report.runs import Run
from harness.report.schema import SCHEMA_VERSION, _Model

NOT_RUN = "not run"  # selected, but no row: the instance was in flight when the run stopped
ACTIONS = {"tools": "tool calls", "text": "text actions"}


class AgentInstance(_Model):
    task_id: str
    status: str = Field(description="exit status (submitted, step_limit, ..., env_error) or 'not run'")
    scored: bool = Field(description="the model's outcome (graded); false for infrastructure errors and 'not run'")
    verdict: str | None = Field(None, description="the grader's status (resolved, unresolved, ...); null: not graded")
    resolved: bool = False
    steps: int | None = Field(None, description="model calls")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    wall_s: float | None = None
    cost: float | None = Field(None, description="this instance's tokens at the model's token price")
    error: str | None = Field(None, description="the infrastructure error of an error row")
    detail: str | None = Field(None, description="why a context_overflow or disk_limit ended the instance")
    trajectory: str | None = Field(None, description="the trajectory's directory inside the run directory")
    page: str = Field(description="path of the instance's trajectory page, relative to the site root")


class AgentRun(_Model):
    schema_: Literal["harness-report/agent-run"] = Field("harness-report/agent-run", alias="schema")
    schema_version: int = SCHEMA_VERSION
    run_id: str
    leaderboard: str
    leaderboard_title: str
    scaffold: dict = Field(description="package, version, config file and its sha256, from generation provenance")
    actions: str | None = Field(None, description="tools (OpenAI tool calls) or text (one code block per reply)")
    settings: dict = Field(description="the solver's settings (step limit, time limit, container limits)")
    statuses: dict[str, int] = Field(description="instances by exit status")
    scored_instances: int
    steps: int = Field(description="model calls over the scored instances")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    wall_s: float | None = Field(None, description="instance wall times summed over the scored instances")
    cost: float | None = Field(None, description="the scored instances' tokens at the model's token price")
    currency: str | None = None
    cost_basis: str | None = None
    instances: list[AgentInstance]


def scaffold_of(run: Run) -> dict:
    """The scaffold's package, version, config and sha256 as the generation provenance recorded them."""
    return ((run.results.provenance.get("model") or {}).get("agent") or {}).get("scaffold") or {}


def actions_of(run: Run) -> str | None:
    """The action format (tools | text): from the generation provenance, else the run's config."""
    agent = (run.results.provenance.get("model") or {}).get("agent") or {}
    solver = (run.config or {}).get("solver") if isinstance(run.config, dict) else None
    return agent.get("actions") or (solver.get("actions") if isinstance(solver, dict) else None)


def board_title(key: str, runs: list[Run]) -> str:
    """'swebench-verified — agent (mini-swe-agent 2.4.6, tool calls)' for a board of agent runs; the key
    itself for any other board (their pages stay as they were)."""
    agents = [r for r in runs if r.is_agent]
    if not agents:
        return key
    base = key
    for r in agents:
        suffix = f"-{r.results.variant}" if r.results.variant else ""
        if suffix and base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    scaffolds = sorted({f"{s.get('package', 'scaffold')} {s.get('version', '?')}" for s in map(scaffold_of, agents)})
    actions = sorted({ACTIONS.get(a or "", a or "actions not recorded") for a in map(actions_of, agents)})
    return f"{base} — agent ({', '.join(scaffolds)}, {', '.join(actions)})"


def page_name(task_id: str) -> str:
    """A file name for an instance's page: the id when it is safe, else a slug with a hash of the id
    (ids come from the dataset file; two ids never share a name, and none can climb out of traj/)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", task_id).strip("-.")
    if slug != task_id or not slug:
        slug = f"{slug or 'instance'}-{hashlib.sha256(task_id.encode()).hexdigest()[:10]}"
    return f"{slug}.html"


def traj_page(run_id: str, task_id: str) -> str:
    """The trajectory page of an instance, relative to the site root (beside its run page)."""
    return f"runs/{run_id}/traj/{page_name(task_id)}"


def _verdict(statuses: dict[str, int]) -> str | None:
    if not statuses:
        return None
    return ", ".join(k if v == 1 else f"{k} x{v}" for k, v in sorted(statuses.items()))


def _status_order(status: str) -> tuple[int, str]:
    known = (*MODEL_STATUSES, *INFRA_STATUSES, NOT_RUN)
    return (known.index(status) if status in known else len(known), status)


def agent_run(run: Run, board: str, title: str, prices: PricesFile | None, secrets: list[str]) -> AgentRun:
    """The per-instance table of one agent run, in the dataset's order (then any instance outside it)."""
    rows = run.agent_rows or {}
    verdicts = run.by_task()
    price = token_price(run, prices)
    selected = run.results.selected or []
    instances: list[AgentInstance] = []
    for task in [*selected, *(t for t in rows if t not in set(selected))]:
        g = rows.get(task)
        page = traj_page(run.run_id, task)
        if g is None:
            instances.append(AgentInstance(task_id=task, status=NOT_RUN, scored=False, page=page))
            continue
        info = g.info or {}
        status = str(info.get("status") or g.finish_reason or ("generation_error" if g.error else "unknown"))
        ts = verdicts.get(task)
        pt, ct = g.prompt_tokens, g.completion_tokens
        detail = info.get("detail")
        instances.append(
            AgentInstance(
                task_id=task,
                status=status,
                scored=g.error is None,
                verdict=_verdict(ts.statuses) if ts else None,
                resolved=bool(ts and ts.passed),
                steps=info.get("steps"),
                prompt_tokens=pt,
                completion_tokens=ct,
                wall_s=info.get("wall_s", g.latency_s),
                cost=round(token_cost(price, pt or 0, ct or 0), 6) if price and (pt or ct) else None,
                error=redact_text(g.error, secrets) if g.error else None,
                detail=redact_text(str(detail), secrets) if detail else None,
                trajectory=info.get("trajectory"),
                page=page,
            )
        )
    scored = [i for i in instances if i.scored]
    counts: dict[str, int] = {}
    for i in sorted(instances, key=lambda i: _status_order(i.status)):
        counts[i.status] = counts.get(i.status, 0) + 1

    def total(attr: str) -> float | None:  # None when no scored instance recorded the figure
        vals = [v for i in scored if (v := getattr(i, attr)) is not None]
        return sum(vals) if vals else None

    tokens = {k: None if (v := total(k)) is None else int(v) for k in ("prompt_tokens", "completion_tokens")}
    wall, cost = total("wall_s"), total("cost") if price else None
    return AgentRun(
        run_id=run.run_id,
        leaderboard=board,
        leaderboard_title=title,
        scaffold={k: v for k, v in scaffold_of(run).items() if k != "unused_model_keys"},
        actions=actions_of(run),
        settings=((run.results.provenance.get("model") or {}).get("agent") or {}).get("settings") or {},
        statuses=counts,
        scored_instances=len(scored),
        steps=sum(i.steps or 0 for i in scored),
        **tokens,
        wall_s=None if wall is None else round(wall, 3),
        cost=None if cost is None else round(cost, 6),
        currency=prices.currency if price and prices else None,
        cost_basis=(
            f"{price.input_per_million:g} / {price.output_per_million:g} {prices.currency} per million input / "
            f"output tokens for {price.model} ({price.source}, {price.as_of})"
            if price and prices
            else None
        ),
        instances=instances,
    )
