"""Reading run directories for the report: results.json (schema 1), samples.jsonl, config, generations.

A run is read only if its files agree: samples.jsonl must hold the number of verdicts results.json
counts, and the headline metric recomputed from the verdicts must equal the one in results.json.
So every number the report shows traces to a verdict in a run directory, and a run caught
mid-write (or edited by hand) is refused with the reason instead of being published.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserInputError
from harness.records import DatasetInfo, GenerationRow, Results, SampleResult, Status
from harness.rundir import read_generations
from harness.store import read_jsonl_tolerant, sha256_file
from harness.store import read_results as store_read_results


def _headline_metric(res: Results) -> str:
    """From results.json; files written before it carried `headline` ask the benchmark's plug-in."""
    if res.headline is not None:
        return res.headline.metric
    return _benchmark_class(res).headline_metric


def _benchmark_class(res: Results, needed: bool = True) -> Any:
    from harness.registry import BENCHMARKS

    try:
        return BENCHMARKS.load(res.benchmark)
    except KeyError:
        if not needed:
            return None
        raise UserInputError(
            f"results.json of benchmark {res.benchmark!r} has no `headline`, and no installed plug-in is called "
            f"{res.benchmark!r}; install the plug-in that wrote it"
        ) from None


@dataclass
class TaskScore:
    """Verdicts of one task: n graded samples (infra errors excluded), how many passed, by status."""

    task_id: str
    n: int = 0
    passed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        return self.passed / self.n if self.n else None


@dataclass
class Run:
    """One run directory, read and cross-checked."""

    run_id: str
    path: Path
    results: Results
    tasks: list[TaskScore]
    config: dict | None
    config_text: str | None  # config.yaml verbatim (its sha256 is config_sha256)
    generations: dict[str, int | None]  # prompt_tokens, completion_tokens summed over generations.jsonl
    results_sha256: str
    samples_sha256: str
    config_sha256: str | None
    # generations.jsonl by task, kept only for agent runs: their run page lists every instance's outcome
    agent_rows: dict[str, GenerationRow] | None = None

    @property
    def solver(self) -> str:
        """The solver that generated the answers ('single-turn' when none is recorded, e.g. graded files)."""
        gen = self.results.provenance.get("model") or {}
        solver = (self.config or {}).get("solver") if isinstance(self.config, dict) else None
        from_config = solver.get("name") if isinstance(solver, dict) else None
        return str(gen.get("solver") or from_config or "single-turn")

    @property
    def is_agent(self) -> bool:
        return self.solver == "agent"

    @property
    def benchmark(self) -> str:
        return self.results.benchmark

    @property
    def headline_metric(self) -> str:
        return _headline_metric(self.results)

    @property
    def leaderboard(self) -> str:
        """Leaderboard key from results.json (older files: the benchmark plug-in derives it from the dataset)."""
        if self.results.leaderboard:
            return self.results.leaderboard
        cls = _benchmark_class(self.results)
        key = cls.leaderboard(DatasetInfo.model_validate(self.results.dataset))
        # as aggregate.compute builds it: a solver's variant (agent-tools) is a board of its own
        return f"{key}-{self.results.variant}" if self.results.variant else key

    def by_task(self) -> dict[str, TaskScore]:
        return {t.task_id: t for t in self.tasks}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


def discover(paths: list[Path]) -> list[Path]:
    """Run directories named on the command line: a directory with results.json, or any directory
    holding run directories below it (logs/ trees are skipped)."""
    found: dict[Path, Path] = {}  # resolved -> as given (the data files show paths as the user wrote them)
    for p in paths:
        if not p.is_dir():
            raise UserInputError(f"{p}: no such run directory")
        if (p / "results.json").is_file():
            found.setdefault(p.resolve(), p)
            continue
        below = sorted(q.parent for q in p.rglob("results.json") if "logs" not in q.relative_to(p).parts)
        if not below:
            raise UserInputError(
                f"{p}: no results.json in it or below; make one with `harness run` or `harness evaluate`"
            )
        for q in below:
            found.setdefault(q.resolve(), q)
    return list(found.values())


def read_results(path: Path) -> Results:
    """results.json of schema 1 (store.read_results refuses other versions, saying what to do)."""
    res = store_read_results(path.parent)
    if res is None:
        raise UserInputError(f"{path}: missing")
    return res


def read_samples(path: Path) -> list[SampleResult]:
    """Every verdict of samples.jsonl; a torn last line means the run is still being written."""
    if not path.is_file():
        raise UserInputError(f"{path}: missing; a run directory holds samples.jsonl beside results.json")
    rows, torn = read_jsonl_tolerant(path)
    if torn:
        raise UserInputError(f"{path}: the last line is cut short: the run was killed or is still grading; finish it")
    out = []
    for i, row in enumerate(rows, 1):
        try:
            out.append(SampleResult.from_json(row))
        except (KeyError, ValueError, TypeError) as e:
            raise UserInputError(f"{path}:{i}: not a verdict row ({type(e).__name__}: {e})") from None
    return out


def task_scores(samples: list[SampleResult]) -> list[TaskScore]:
    """Per-task verdict counts, in the order tasks first appear (the dataset's order)."""
    tasks: OrderedDict[str, TaskScore] = OrderedDict()
    for s in samples:
        t = tasks.setdefault(s.task_id, TaskScore(s.task_id))
        t.statuses[s.status.value] = t.statuses.get(s.status.value, 0) + 1
        if s.status is Status.INFRA_ERROR:
            continue
        t.n += 1
        t.passed += int(s.passed)
    return list(tasks.values())


def _differs(a: Any, b: Any) -> bool:
    """Figures compared as JSON values, floats to 1e-9 (they went through a JSON round trip)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) > 1e-9
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    return a != b


def _check_consistent(path: Path, res: Results, samples: list[SampleResult]) -> None:
    """Recompute every figure of results.json from the verdicts (as the aggregator does) and refuse
    a run whose stored figures differ: the site publishes only what the verdicts give."""
    from harness.registry import SCORERS
    from harness.scoring import aggregate

    where = f"{path}: results.json and samples.jsonl disagree"
    if res.counts.get("samples") != len(samples):
        raise UserInputError(
            f"{where}: {res.counts.get('samples')} samples counted, {len(samples)} verdicts stored; "
            "re-grade with `harness evaluate RUN_DIR` to bring them in line"
        )
    cls = _benchmark_class(res, needed=False)
    if cls is None:  # a plug-in that is not installed here: the headline is still checked
        return _check_headline(path, res, samples)
    selected = res.selected if res.selected is not None else list(dict.fromkeys(s.task_id for s in samples))
    gen_errors = res.counts.get("generation_error") or 0
    expected = res.expected_samples if res.expected_samples is not None else len(samples) + gen_errors
    bench = cls.__new__(cls)  # the aggregator reads only class-level facts; no config or dataset needed
    statuses = SCORERS.load(cls.scorer).statuses
    try:
        info = DatasetInfo.model_validate(res.dataset)
        seed = res.provenance.get("bootstrap", {}).get("seed", 1234)
        again = aggregate.compute(
            bench,
            samples,
            selected,
            info,
            statuses,
            res.model,
            expected,
            gen_errors,
            seed,
            "gold_check" in res.to_json(),
            res.variant,
        )
    except (ValueError, TypeError, AttributeError) as e:  # hand-edited dataset or bootstrap fields
        msg = str(e).splitlines()[0]
        raise UserInputError(f"{where}: its figures cannot be recomputed ({type(e).__name__}: {msg})") from None
    stored, fresh = res.to_json(), again.to_json()
    keys = ["metrics", "counts", "headline", "gold_check"]
    if res.selected is None:  # older files: what `selected` decides can be checked only where it is implied
        common = (stored["counts"].keys() & fresh["counts"].keys()) - {"tasks"}  # older files count fewer
        stored["counts"] = {k: v for k, v in stored["counts"].items() if k in common}
        fresh["counts"] = {k: v for k, v in fresh["counts"].items() if k in common}
        if cls.headline_metric == "resolved" and res.counts.get("tasks") != len(selected):
            keys.remove("metrics")  # not derivable without `selected`; checked below by the headline alone
            _check_headline(path, res, samples)
        if res.headline is None:
            keys.remove("headline")
        graded, tasks = again.counts.get("graded_tasks") or 0, res.counts.get("tasks")
        if not isinstance(tasks, int) or not graded <= tasks <= (info.full_tasks or info.tasks or tasks):
            raise UserInputError(f"{where}: counts.tasks is {tasks}, but {graded} tasks have verdicts")
    else:
        keys.append("complete")
    if res.leaderboard is not None:
        keys.append("leaderboard")
    for key in keys:
        a, b, name = stored.get(key), fresh.get(key), key
        if isinstance(a, dict) and isinstance(b, dict):  # name the first figure that differs
            sub = next((k for k in [*a, *b] if _differs(a.get(k), b.get(k))), None)
            if sub is not None:
                a, b, name = a.get(sub), b.get(sub), f"{key}.{sub}"
        if _differs(a, b):
            raise UserInputError(
                f"{where}: {name} is {json.dumps(a)[:300]}, the stored verdicts give {json.dumps(b)[:300]}; "
                "re-grade with `harness evaluate RUN_DIR` to rewrite it"
            )
    return None


def _check_headline(path: Path, res: Results, samples: list[SampleResult]) -> None:
    tasks = task_scores(samples)
    metric = _headline_metric(res)
    stored = res.metrics.get(metric)
    if stored is None and not samples:
        return  # nothing was graded (every generation failed): shown without a score
    if not isinstance(stored, (int, float)):
        raise UserInputError(f"{path}: metrics.{metric}: missing; the headline metric of {res.benchmark}")
    if metric == "resolved":  # the resolved family: over every selected task, graded or not
        total = res.counts.get("tasks") or 0
        recomputed = sum(t.passed for t in tasks) / total if total else 0.0
    else:
        scores = [t.score for t in tasks if t.score is not None]
        recomputed = sum(scores) / len(scores) if scores else 0.0
    if abs(recomputed - stored) > 1e-9:
        raise UserInputError(
            f"{path}: results.json and samples.jsonl disagree: metrics.{metric} is {stored}, "
            f"the stored verdicts give {recomputed}"
        )


def _token_totals(generations: dict[tuple[str, int], GenerationRow]) -> dict[str, int | None]:
    """Tokens over every answer kept in generations.jsonl (all sessions of a resumed run)."""
    kept = [g for g in generations.values() if g.error is None]
    if not kept:
        return {"prompt_tokens": None, "completion_tokens": None}
    totals: dict[str, int | None] = {}
    for key in ("prompt_tokens", "completion_tokens"):
        vals = [getattr(g, key) for g in kept]
        totals[key] = sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None
    return totals


def load_run(path: Path, run_id: str | None = None) -> Run:
    """Read one run directory; UserInputError names the file and what is wrong."""
    results = read_results(path / "results.json")
    samples = read_samples(path / "samples.jsonl")
    tasks = task_scores(samples)
    _check_consistent(path, results, samples)
    config, config_text, config_sha = None, None, None
    if (path / "config.yaml").is_file():
        config_text = (path / "config.yaml").read_text(encoding="utf-8")
        config = yaml.safe_load(config_text)
        config_sha = sha256_file(path / "config.yaml")
    generations = read_generations(path)
    run = Run(
        run_id=run_id or _slug(path.name),
        path=path,
        results=results,
        tasks=tasks,
        config=config,
        config_text=config_text,
        generations=_token_totals(generations),
        results_sha256=sha256_file(path / "results.json"),
        samples_sha256=sha256_file(path / "samples.jsonl"),
        config_sha256=config_sha,
    )
    if run.is_agent:  # one instance per row (sample 0): the newest row of each instance is its outcome
        run.agent_rows = {task: g for (task, _), g in generations.items()}
    return run


def load_runs(paths: list[Path]) -> list[Run]:
    """Every run under `paths`, with unique ids (directory names; a clash gets the results hash)."""
    runs = [load_run(p) for p in discover(paths)]
    by_sha: dict[str, Run] = {}
    for r in runs:
        if r.results_sha256 in by_sha:
            raise UserInputError(
                f"{by_sha[r.results_sha256].path} and {r.path} hold the same run (identical results.json); "
                "give only one of them, or it would be counted twice"
            )
        by_sha[r.results_sha256] = r
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.run_id] = seen.get(r.run_id, 0) + 1
    for r in runs:
        if seen[r.run_id] > 1:
            r.run_id = f"{r.run_id}-{r.results_sha256[:8]}"
    return sorted(runs, key=lambda r: r.run_id)
