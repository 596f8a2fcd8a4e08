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
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import UserInputError
from harness.records import SampleResult, Status
from harness.store import read_jsonl_tolerant, sha256_file

RESULTS_SCHEMA_READ = 1
HEADLINE = {"swebench": "resolved"}  # every other benchmark: pass@1
_SOLVED = (Status.PASSED, Status.RESOLVED)


class ResultsV1(BaseModel):
    """The part of results.json (schema_version 1) the report relies on."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    schema_version: int
    benchmark: str
    model: str
    complete: bool
    incomplete_reason: str | None = None
    metrics: dict[str, Any]
    counts: dict[str, int | None]
    dataset: dict[str, Any]
    provenance: dict[str, Any]


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
    results: ResultsV1
    tasks: list[TaskScore]
    config: dict | None
    config_text: str | None  # config.yaml verbatim (its sha256 is config_sha256)
    generations: dict[str, int | None]  # prompt_tokens, completion_tokens summed over generations.jsonl
    results_sha256: str
    samples_sha256: str
    config_sha256: str | None

    @property
    def benchmark(self) -> str:
        return self.results.benchmark

    @property
    def headline_metric(self) -> str:
        return HEADLINE.get(self.benchmark, "pass@1")

    @property
    def leaderboard(self) -> str:
        """Leaderboard key: the benchmark, and for SWE-bench its split (lite and verified never mix)."""
        if self.benchmark == "swebench":
            ds = self.results.dataset
            return f"swebench-{ds.get('split') or _slug(str(ds.get('name') or 'local'))}"
        return self.benchmark

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


def read_results(path: Path) -> ResultsV1:
    """results.json of schema 1; any other version is refused with what to do about it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserInputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object")
    version = data.get("schema_version")
    if version is None:
        raise UserInputError(
            f"{path}: no schema_version: not a harness results file of a known schema (this harness reads "
            f"schema_version {RESULTS_SCHEMA_READ}); re-grade the run with `harness evaluate RUN_DIR` to rewrite it"
        )
    if version != RESULTS_SCHEMA_READ:
        newer = isinstance(version, int) and version > RESULTS_SCHEMA_READ
        raise UserInputError(
            f"{path}: schema_version {version!r} is not readable by this harness (it reads {RESULTS_SCHEMA_READ})"
            + ("; it was written by a newer harness: upgrade harness to report it" if newer else "")
        )
    try:
        return ResultsV1.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(p) for p in e["loc"])
        raise UserInputError(f"{path}: {key}: {e['msg']} (results.json schema_version 1)") from None


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
        t.passed += int(s.status in _SOLVED)
    return list(tasks.values())


def _check_consistent(path: Path, res: ResultsV1, samples: list[SampleResult], tasks: list[TaskScore]) -> None:
    where = f"{path}: results.json and samples.jsonl disagree"
    if res.counts.get("samples") != len(samples):
        raise UserInputError(
            f"{where}: {res.counts.get('samples')} samples counted, {len(samples)} verdicts stored; "
            "re-grade with `harness evaluate RUN_DIR` to bring them in line"
        )
    metric = HEADLINE.get(res.benchmark, "pass@1")
    stored = res.metrics.get(metric)
    if not isinstance(stored, (int, float)):
        raise UserInputError(f"{path}: metrics.{metric}: missing; the headline metric of {res.benchmark}")
    if metric == "resolved":
        total = res.counts.get("tasks") or 0
        recomputed = sum(t.passed for t in tasks) / total if total else 0.0
    else:
        scores = [t.score for t in tasks if t.score is not None]
        recomputed = sum(scores) / len(scores) if scores else 0.0
    if abs(recomputed - stored) > 1e-9:
        raise UserInputError(f"{where}: metrics.{metric} is {stored}, the stored verdicts give {recomputed}")


def _token_totals(path: Path) -> dict[str, int | None]:
    """Tokens over every answer kept in generations.jsonl (all sessions of a resumed run)."""
    rows, _ = read_jsonl_tolerant(path)
    if not rows:
        return {"prompt_tokens": None, "completion_tokens": None}
    final = {(r.get("task_id"), r.get("sample_id")): r for r in rows}
    kept = [r for r in final.values() if r.get("error") is None]
    totals: dict[str, int | None] = {}
    for key in ("prompt_tokens", "completion_tokens"):
        vals = [r.get(key) for r in kept]
        totals[key] = sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None
    return totals


def load_run(path: Path, run_id: str | None = None) -> Run:
    """Read one run directory; UserInputError names the file and what is wrong."""
    results = read_results(path / "results.json")
    samples = read_samples(path / "samples.jsonl")
    tasks = task_scores(samples)
    _check_consistent(path, results, samples, tasks)
    config, config_text, config_sha = None, None, None
    if (path / "config.yaml").is_file():
        config_text = (path / "config.yaml").read_text(encoding="utf-8")
        config = yaml.safe_load(config_text)
        config_sha = sha256_file(path / "config.yaml")
    return Run(
        run_id=run_id or _slug(path.name),
        path=path,
        results=results,
        tasks=tasks,
        config=config,
        config_text=config_text,
        generations=_token_totals(path / "generations.jsonl"),
        results_sha256=sha256_file(path / "results.json"),
        samples_sha256=sha256_file(path / "samples.jsonl"),
        config_sha256=config_sha,
    )


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
