"""One leaderboard row per run: headline metric, settings, hardware, provenance, cost; ranking.

Each run is its own row: two runs of a model with different settings (or the same settings twice)
are never merged. Only complete runs that cover every task of their dataset are ranked; the rest
are listed under the ranked rows with the reason.
"""

from __future__ import annotations

from urllib.parse import urlparse

from harness.report.agent import ACTIONS, actions_of
from harness.report.prices import PricesFile, cost_speed
from harness.report.runs import Run
from harness.report.schema import Decoding, Hardware, Headline, RunSummary, Source, TaskOutcome


def _hosts(base_url: str | list | None) -> str:
    """The endpoint's host, or its replicas' hosts (model.base_url may be a list)."""
    urls = [base_url] if isinstance(base_url, str) else list(base_url or [])
    hosts = list(dict.fromkeys(urlparse(str(u)).hostname or "unknown host" for u in urls)) or ["unknown host"]
    return hosts[0] if len(hosts) == 1 else f"{len(urls)} replicas: " + ", ".join(hosts)


def hardware(run: Run) -> Hardware:
    """What generated the answers, from the generation provenance; the grading host's CPU beside it."""
    prov = run.results.provenance
    gen = prov.get("model") or {}
    grading = f"{prov['cpu_model']} ({prov.get('cpu_count')} cores)" if prov.get("cpu_model") else None
    backend = gen.get("backend")
    if not backend:
        return Hardware(generation="not recorded (graded from a predictions or samples file)", grading_cpu=grading)
    if backend == "openai":
        host = _hosts(gen.get("base_url"))
        return Hardware(generation=f"hosted endpoint ({host})", grading_cpu=grading)
    if backend == "vllm-server" and not gen.get("started_server", True):
        host = _hosts(gen.get("base_url"))
        return Hardware(generation=f"running vLLM server at {host} (hardware not recorded)", grading_cpu=grading)
    host_cpu = (gen.get("host") or {}).get("cpu_model")
    gpus = gen.get("gpus") or []
    if backend in ("vllm", "vllm-server") and not gen.get("cpu_build") and gpus:
        par = gen.get("parallel") or {}
        count = int(par.get("tensor", 1)) * int(par.get("pipeline", 1)) * int(par.get("data", 1))
        name = gpus[0].get("name") or "GPU"
        return Hardware(generation=f"{count}x {name}", gpu_type=name, gpu_count=count, grading_cpu=grading)
    where = f"CPU: {host_cpu}" if host_cpu else "CPU (host not recorded)"
    if backend in ("vllm", "vllm-server"):
        return Hardware(generation=f"{where}, vLLM CPU build", generation_cpu=host_cpu, grading_cpu=grading)
    device = str(((run.config or {}).get("model") or {}).get("device") or "not recorded")
    on_cpu = device == "cpu"
    return Hardware(
        generation=f"{backend} on device {device}" + (f" ({where})" if on_cpu else ""),
        generation_cpu=host_cpu if on_cpu else None,
        grading_cpu=grading,
    )


def decoding(run: Run) -> Decoding | None:
    gen = run.results.provenance.get("model") or {}
    s = gen.get("sampling")
    if not isinstance(s, dict):
        return None
    mode = gen.get("prompt_mode")
    if run.is_agent:  # the scaffold's own prompts over many turns, not the benchmark's prompt
        actions = actions_of(run)
        mode = f"agent, {ACTIONS.get(actions or '', actions or 'actions not recorded')}"
    return Decoding(
        prompt_mode=mode,
        temperature=s.get("temperature"),
        top_p=s.get("top_p"),
        max_tokens=s.get("max_tokens"),
        n=s.get("n"),
        seed=s.get("seed"),
    )


def decoding_text(d: Decoding | None) -> str:
    """Short human form: 'chat, T=0, n=1, max 512 tokens'."""
    if d is None:
        return "not recorded"
    parts = [d.prompt_mode or "?"]
    if d.temperature is not None:
        parts.append("greedy" if d.temperature == 0 else f"T={d.temperature:g}")
    if d.top_p is not None and d.top_p != 1:
        parts.append(f"top_p={d.top_p:g}")
    if d.n is not None:
        parts.append(f"n={d.n}")
    if d.max_tokens is not None:
        parts.append(f"max {d.max_tokens} tokens")
    return ", ".join(parts)


def headline(run: Run) -> Headline:
    m = run.results.metrics
    ci = m.get(f"{run.headline_metric}_ci95")
    value = m.get(run.headline_metric)  # absent when no sample has a verdict (every generation failed)
    return Headline(
        metric=run.headline_metric, value=None if value is None else float(value), ci95=tuple(ci) if ci else None
    )


def _coverage_gap(run: Run) -> str | None:
    c = run.results.counts
    ds = run.results.dataset
    total = c.get("dataset_tasks") or ds.get("full_tasks") or ds.get("tasks")  # full_tasks: SWE-bench before filters
    graded = c.get("graded_tasks", c.get("tasks")) or 0
    if total and graded < total:
        return f"covers {graded} of the dataset's {total} tasks"
    return None


def _grader(prov: dict) -> str | None:
    """A scorer without a sandbox records the package that graded (the official SWE-bench harness)."""
    grader = prov.get("grader")
    return f"{grader.get('package', 'grader')} images" if isinstance(grader, dict) else None


def summarize(run: Run, prices: PricesFile | None) -> RunSummary:
    prov = run.results.provenance
    gen = prov.get("model") or {}
    gap = _coverage_gap(run)
    reason = None
    if not run.results.complete:
        reason = f"incomplete: {run.results.incomplete_reason or 'the run did not finish'}"
    elif gap:
        reason = f"partial: {gap}"
    hw = hardware(run)
    dec = decoding(run)
    per_task = max((t.n for t in run.tasks), default=0)
    tasks = int(run.results.counts.get("tasks") or len(run.tasks))
    sandbox = prov.get("sandbox")
    return RunSummary(
        run_id=run.run_id,
        page=f"runs/{run.run_id}.html",
        model=run.results.model,
        benchmark=run.leaderboard,
        dataset={k: run.results.dataset.get(k) for k in ("name", "version", "sha256", "tasks")},
        headline=headline(run),
        metrics={k: (tuple(v) if isinstance(v, list) else v) for k, v in run.results.metrics.items()},
        counts=dict(run.results.counts),
        complete=run.results.complete,
        incomplete_reason=run.results.incomplete_reason,
        ranked=reason is None,
        not_ranked_reason=reason,
        samples_per_task=dec.n if dec and dec.n else per_task or None,
        decoding=dec,
        finished_at=prov.get("finished_at"),
        hardware=hw,
        harness_version=prov.get("harness_version"),
        harness_git_sha=prov.get("harness_git_sha"),
        backend=gen.get("backend"),
        model_id=gen.get("model_id"),
        model_revision=gen.get("resolved_revision") or gen.get("revision"),
        sandbox=sandbox.get("kind") if isinstance(sandbox, dict) else _grader(prov),
        cost=cost_speed(run, hw, tasks, prices),
        source=Source(
            path=str(run.path),
            results_sha256=run.results_sha256,
            samples_sha256=run.samples_sha256,
            config_sha256=run.config_sha256,
        ),
    )


def rank(rows: list[RunSummary]) -> list[RunSummary]:
    """Ranked rows by headline value (competition ranking: ties share a rank), then the unranked rows."""
    ranked = sorted((r for r in rows if r.ranked), key=lambda r: (-r.headline.value, r.run_id))
    for i, r in enumerate(ranked):
        prev = ranked[i - 1] if i else None
        r.rank = prev.rank if prev is not None and prev.headline.value == r.headline.value else i + 1
    rest = sorted((r for r in rows if not r.ranked), key=lambda r: (-(r.headline.value or -1.0), r.run_id))
    return ranked + rest


def task_outcomes(run: Run) -> list[TaskOutcome]:
    return [
        TaskOutcome(task_id=t.task_id, n=t.n, passed=t.passed, score=t.score, statuses=dict(t.statuses))
        for t in run.tasks
    ]
