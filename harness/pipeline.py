"""The one pipeline: load -> solve -> score -> aggregate, for every benchmark.

Benchmarks, solvers and scorers come from the registry by the names in the config; nothing here
knows a benchmark by name. Each stage reads the previous stage's file and writes its own, so
`generate` and `evaluate RUN_DIR` run alone and a run killed at any moment resumes: generations
already on disk are kept (errors are retried), verdicts already on disk are kept (infra errors
are retried).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness import metrics, provenance
from harness.config import ExecutorConfig, PluginConfig, RunConfig, SandboxConfig
from harness.errors import UserInputError
from harness.manifest import GradingManifest, check_same, legacy_manifest, read_manifest
from harness.records import DatasetInfo, Results, Sample, Submission
from harness.registry import BENCHMARKS, SCORERS, SOLVERS
from harness.rundir import CONFIG_FILE, read_generation_provenance, read_generations
from harness.scoring import aggregate
from harness.store import RunStore, is_final, read_graded, read_results, sha256_file

if TYPE_CHECKING:
    from harness.benchmarks.base import Benchmark
    from harness.scoring.base import Scorer
    from harness.solvers.base import Solver


def load_benchmark(cfg: PluginConfig) -> Benchmark:
    """The benchmark plug-in named by its config."""
    return BENCHMARKS.load(cfg.name)(cfg)


def make_scorer(
    bench: Benchmark,
    sandbox: SandboxConfig,
    out_dir: Path,
    quiet: bool,
    model: str,
    executor: ExecutorConfig | None = None,
) -> Scorer:
    """The scorer the benchmark names."""
    cls = SCORERS.load(bench.scorer)
    if executor is not None and executor.name != "local" and not cls.remote:
        raise UserInputError(
            f"executor {executor.name}: {bench.name} is graded by its {bench.scorer!r} scorer in this machine's "
            "sandbox; remote executors run SWE-bench grading and agent instances (use executor: local)"
        )
    return cls(bench, sandbox, out_dir, quiet, model, executor)


def check_disk(run_dir: Path, min_free_mb: int = 200) -> None:
    free = shutil.disk_usage(run_dir).free >> 20
    if free < min_free_mb:
        raise UserInputError(f"{run_dir}: only {free} MB free on this disk; need {min_free_mb} MB for the run")


class Pipeline:
    """One run config's benchmark, solver and scorer; the benchmark is loaded once."""

    def __init__(self, cfg: RunConfig, quiet: bool = False) -> None:
        self.cfg, self.quiet = cfg, quiet
        self.bench = load_benchmark(cfg.benchmark)
        self.solver: Solver = SOLVERS.load(cfg.solver.name)(cfg.solver, cfg)

    @property
    def samples(self) -> tuple[list[Sample], DatasetInfo]:
        return self.bench.load()

    def preflight(self, grading: bool = True, run_dir: Path | None = None) -> None:
        """Everything that can fail in seconds, before any weights load or any file is written."""
        self.samples  # noqa: B018 - loads and checks the dataset and the selection
        ex = self.cfg.executor
        if ex.name != "local" and not self.solver.remote and not SCORERS.load(self.bench.scorer).remote:
            raise UserInputError(
                f"executor {ex.name}: neither the {self.cfg.solver.name} solver nor {self.bench.name}'s grading runs "
                "per-instance containers; remote executors run SWE-bench grading and agent instances"
            )
        if grading:
            self.scorer(Path(".")).check()
        self.solver.check(self.bench, run_dir)

    def scorer(self, run_dir: Path) -> Scorer:
        return make_scorer(self.bench, self.cfg.sandbox, run_dir, self.quiet, self.cfg.model.name, self.cfg.executor)

    def generate(self, run_dir: Path) -> dict:
        """The solver's stage: generations.jsonl and generation.json; returns the generation provenance."""
        check_disk(run_dir)
        return self.solver.solve(self.bench, self.samples[0], run_dir, self.quiet)

    def evaluate(self, run_dir: Path, regrade: bool = False) -> Results:
        """Grade the stored answers; samples without an answer make the run incomplete (never scored)."""
        samples, info = self.samples
        gens = read_generations(run_dir)
        subs: list[Submission] = []
        gen_errors = tokens = 0
        for s in samples:
            for i in range(self.cfg.sampling.n):
                g = gens.get((s.task_id, i))
                if g is None or not g.ok:
                    gen_errors += 1
                    continue
                tokens += g.completion_tokens or 0
                subs.append(self.bench.submission(s, i, g.answer))
        gen_prov = read_generation_provenance(run_dir)
        config_sha = sha256_file(run_dir / CONFIG_FILE)
        if gen_prov.get("generation_wall_s"):
            gen_prov["completion_tokens_total"] = tokens
        return score(
            self.bench,
            samples,
            info,
            subs,
            self.scorer(run_dir),
            out_dir=run_dir,
            model=self.cfg.model.name,
            seed=self.cfg.bootstrap_seed,
            expected_samples=len(samples) * self.cfg.sampling.n,
            generation_errors=gen_errors,
            selected=[s.task_id for s in samples],
            source={"kind": "run", "config_sha256": config_sha},
            extra_provenance={
                "model": gen_prov,
                "config_sha256": config_sha,
                "run_dir": str(run_dir),
            },
            regrade=regrade,
            variant=self.solver.variant,
        )


def _recorded(out_dir: Path, new: GradingManifest) -> tuple[GradingManifest | None, Results | None]:
    """What out_dir's verdicts were graded as (grading.json, else an older results.json), and its results."""
    if new.source["kind"] != "run" and (out_dir / CONFIG_FILE).is_file():
        raise UserInputError(
            f"{out_dir} is the run directory of a `harness run` (it has config.yaml) and holds that run's verdicts; "
            "grade other predictions into another --out"
        )
    old = read_results(out_dir)
    return read_manifest(out_dir) or legacy_manifest(old, out_dir, list(new.settings)), old


def score(
    bench: Benchmark,
    samples: Sequence[Sample],
    info: DatasetInfo,
    submissions: Sequence[Submission],
    scorer: Scorer,
    *,
    out_dir: Path,
    model: str,
    seed: int,
    expected_samples: int,
    source: dict,
    generation_errors: int = 0,
    selected: Sequence[str] | None = None,
    extra_provenance: dict | None = None,
    reference: bool = False,
    regrade: bool = False,
    variant: str | None = None,
) -> Results:
    """Grade the submissions without a final verdict in out_dir, then write samples.jsonl and results.json.

    `source` names the input (see harness/manifest.py); a directory holding another input's verdicts,
    or verdicts graded with other settings, is refused before anything is written (`regrade` discards
    the old verdicts instead when only the settings differ)."""
    kept = {k for k, v in read_graded(out_dir).items() if is_final(v)}
    if regrade or any(s.key not in kept for s in submissions):
        scorer.check()  # before anything in out_dir changes, --regrade's discarding included
    new = GradingManifest(
        benchmark=bench.name, dataset_sha256=info.sha256, source=source, settings=scorer.verdict_settings()
    )
    recorded, old = _recorded(out_dir, new)
    if recorded is not None:
        # Settings bind only once verdicts exist (a session that graded nothing decided nothing).
        check_same(out_dir, recorded, new, settings=bool(kept) and not regrade)
    _check_kept(out_dir, kept, submissions, regrade)
    by_id = {s.task_id: s for s in samples}
    if selected is None:
        selected = list(dict.fromkeys(s.task_id for s in submissions))
    with RunStore(out_dir) as store:
        if regrade:
            store.discard_verdicts()
            recorded = old = None
        manifest = new
        if recorded is not None:
            settings = {**new.settings, **recorded.settings} if kept else new.settings
            manifest = recorded.model_copy(update={"settings": settings})
        final = {k: v for k, v in store.graded().items() if is_final(v)}
        todo = [(by_id[s.task_id], s) for s in submissions if s.key not in final]
        extra = extra_provenance or {}
        if todo:
            session = _grade(store, scorer, todo, final, manifest)
            prov = {**session, "grading_sessions": manifest.sessions, **extra}
        elif old is not None and old.provenance:
            prov = {**old.provenance, **extra}  # nothing graded now: the verdicts' provenance is the earlier one's
        else:
            prov = {"scorer": bench.scorer, "grading_sessions": manifest.sessions, **extra}
        rows = [final[s.key] for s in submissions if s.key in final]
        store.finalize_samples(rows)
        results = aggregate.compute(
            bench,
            rows,
            selected,
            info,
            scorer.statuses,
            model,
            expected_samples,
            generation_errors,
            seed,
            reference,
            variant,
        )
        results.provenance = {
            **prov,
            "bootstrap": {"seed": seed, "resamples": metrics.BOOTSTRAP_RESAMPLES},
            "graded_this_session": len(todo),
            "resumed_from_store": len(submissions) - len(todo),
        }
        aggregate.write(store, results)
    return results


def _check_kept(out_dir: Path, kept: set, submissions: Sequence[Submission], regrade: bool) -> None:
    """Refuse a grading that would drop final verdicts of this input (a smaller selection: --limit, ids)."""
    dropped = len(kept - {s.key for s in submissions})
    if dropped and not regrade:
        raise UserInputError(
            f"{out_dir} holds {dropped} verdict(s) of samples this grading does not select (a smaller --limit or "
            "other task ids?); grade the same selection or a larger one, or into another --out"
        )


def _grade(store: RunStore, scorer: Scorer, todo: list, final: dict, manifest: GradingManifest) -> dict:
    """One grading session: verdicts appended as they arrive; the session recorded in grading.json
    before the first verdict and completed after the last (or on interruption)."""
    t0 = time.monotonic()
    session: dict = {**provenance.host(), "started_at": provenance.now_iso(), "settings": scorer.settings()}
    record = {"graded": 0, "finished_at": None}
    manifest.sessions.append({**session, **record})
    store.write_manifest(manifest)

    def on_result(res) -> None:
        store.append(res)
        final[res.key] = res
        record["graded"] += 1

    grader: dict = {}
    try:
        grader = scorer.grade(todo, on_result)
    finally:
        scorer.close()
        record.update(finished_at=provenance.now_iso(), wall_time_s=round(time.monotonic() - t0, 3))
        if record["graded"] < len(todo):
            record["unfinished"] = len(todo) - record["graded"]
        manifest.sessions[-1] = {**session, **record, **({"grader": grader} if grader else {})}
        store.write_manifest(manifest)
    return {**session, **scorer.settings(), **grader, **record}


def evaluate_predictions(
    bench: Benchmark,
    path: Path | None,
    out: Path,
    sandbox: SandboxConfig,
    model_name: str | None,
    seed: int,
    quiet: bool,
    regrade: bool = False,
    executor: ExecutorConfig | None = None,
) -> Results:
    """Grade a predictions file made by any tool (or, with path None, the dataset's reference solutions)."""
    samples, info = bench.load()
    notes: list[str] = []
    if path is None:
        subs, sha, name = bench.reference_predictions(samples), None, "gold"
    else:
        preds = bench.read_predictions(path, samples)
        subs, sha, name = preds.submissions, preds.sha256, preds.model_name or path.name.split(".")[0]
        samples, notes = preds.samples, preds.notes
    model = model_name or name
    scorer = make_scorer(bench, sandbox, out, quiet, model, executor)
    return score(
        bench,
        samples,
        info,
        subs,
        scorer,
        out_dir=out,
        model=model,
        seed=seed,
        expected_samples=len(subs),
        source={"kind": "reference"} if path is None else {"kind": "predictions", "sha256": sha, "path": str(path)},
        extra_provenance={
            "predictions_file": str(path) if path else "gold",
            "predictions_sha256": sha,
            "limit": bench.cfg.limit,
            "input_notes": notes,
        },
        reference=path is None,
        regrade=regrade,
    )
