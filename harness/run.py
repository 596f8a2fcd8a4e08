"""`harness run`: config -> prompts -> backend -> generations.jsonl -> sandbox -> results.json.

Each stage reads the previous stage's file, so `generate` and `evaluate RUN_DIR` run alone and a
run killed at any moment resumes: generations already on disk are kept (errors are retried),
verdicts already on disk are kept (infra errors are retried).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness import provenance
from harness.benchmarks.extract import build_prompt, extract, template_sha256
from harness.benchmarks.humaneval import HumanEval, HumanEvalPlus, build_program
from harness.config import RunConfig, load_config, resolved_dict
from harness.errors import UserInputError
from harness.progress import Progress
from harness.records import ExecJob, Generation, Prompt, Task
from harness.store import read_jsonl_tolerant, write_json_atomic

CONFIG_FILE = "config.yaml"
GENERATIONS = "generations.jsonl"
GEN_PROVENANCE = "generation.json"


def new_run_dir(cfg: RunConfig, out_root: Path, run_id: str | None) -> Path:
    rid = run_id or f"{cfg.model.name}-{cfg.benchmark.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    run_dir = out_root / rid
    if (run_dir / CONFIG_FILE).exists():
        raise UserInputError(f"{run_dir} already holds a run; use `harness run --resume {run_dir}`")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved_dict(cfg), sort_keys=False))
    return run_dir


def load_run(run_dir: Path) -> RunConfig:
    if not (run_dir / CONFIG_FILE).exists():
        raise UserInputError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    return load_config(run_dir / CONFIG_FILE)


def benchmark_for(cfg: RunConfig) -> HumanEval:
    cls = HumanEvalPlus if cfg.benchmark.name == "humaneval-plus" else HumanEval
    return cls(Path(cfg.benchmark.path) if cfg.benchmark.path else None)


def select_tasks(cfg: RunConfig, bench: HumanEval) -> list[Task]:
    tasks = bench.tasks
    if cfg.benchmark.task_ids:
        unknown = [t for t in cfg.benchmark.task_ids if t not in bench.by_id]
        if unknown:
            raise UserInputError(f"benchmark.task_ids: unknown task ids {unknown[:5]} for {bench.name}")
        tasks = [bench.by_id[t] for t in cfg.benchmark.task_ids]
    return tasks[: cfg.benchmark.limit] if cfg.benchmark.limit else tasks


def stored_generations(run_dir: Path) -> dict[tuple[str, int], dict]:
    rows, _ = read_jsonl_tolerant(run_dir / GENERATIONS)
    return {(r["task_id"], r["sample_id"]): r for r in rows}


class _GenerationWriter:
    def __init__(self, run_dir: Path, extract_fn: Callable[[str, str], tuple[str, str]], progress: Progress) -> None:
        path = run_dir / GENERATIONS
        from harness.store import RunStore

        RunStore._repair_tail(path)
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.extract, self.progress = extract_fn, progress
        self.errors = 0

    def __call__(self, gens: list[Generation]) -> None:
        for g in gens:
            row = {
                "task_id": g.task_id,
                "sample_id": g.sample_id,
                "raw": g.raw,
                "kind": None,
                "code": None,
                "finish_reason": g.finish_reason,
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "latency_s": g.latency_s,
                "seed": g.seed,
                "error": g.error,
                "attempts": g.attempts,
            }
            if g.error is None and g.raw is not None:
                row["kind"], row["code"] = self.extract(g.task_id, g.raw)
            else:
                self.errors += 1
            self.f.write(json.dumps(row) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        self.progress.advance(len(gens))

    def close(self) -> None:
        self.f.close()


@dataclass
class Workload:
    """What a benchmark contributes to a run: ids, prompts, extraction, grading."""

    ids: list[str]
    prompts: Callable[[set[str]], list[Prompt]]  # only for the ids still to generate (oracle reads cost)
    extract: Callable[[str, str], tuple[str, str]]  # (task_id, raw answer) -> (kind, code)
    template_sha256: str
    evaluate: Callable[..., dict]  # (run_dir, quiet, sandbox, workers) -> results
    check: Callable[[], None]  # pre-flight of the grading side


def humaneval_workload(cfg: RunConfig) -> Workload:
    bench = benchmark_for(cfg)
    tasks = select_tasks(cfg, bench)
    by_id = {t.task_id: t for t in tasks}
    return Workload(
        ids=[t.task_id for t in tasks],
        prompts=lambda ids: [build_prompt(t, cfg.prompt) for t in tasks if t.task_id in ids],
        extract=lambda tid, raw: extract(by_id[tid], raw, cfg.prompt.mode),
        template_sha256=template_sha256(cfg.prompt),
        evaluate=lambda run_dir, quiet=False, sandbox=None, workers=None: evaluate_stage(
            cfg, run_dir, tasks, bench, quiet, sandbox, workers
        ),
        check=lambda: _check_sandbox(cfg),
    )


def _check_sandbox(cfg: RunConfig) -> None:
    from harness.sandbox import make_sandbox

    make_sandbox(cfg.sandbox.kind, 1)


def workload_for(cfg: RunConfig) -> Workload:
    if cfg.benchmark.name == "swebench":
        from harness.benchmarks.swebench_run import swebench_workload

        return swebench_workload(cfg)
    return humaneval_workload(cfg)


def generate_stage(cfg: RunConfig, run_dir: Path, wl: Workload, quiet: bool = False) -> dict:
    """Generate every (task, sample) not yet on disk without error; returns generation provenance."""
    from harness.models.base import make_backend

    have = stored_generations(run_dir)
    needed = {
        tid: [s for s in range(cfg.sampling.n) if have.get((tid, s), {}).get("error", "missing") is not None]
        for tid in wl.ids
    }
    needed = {k: v for k, v in needed.items() if v}
    old = json.loads((run_dir / GEN_PROVENANCE).read_text()) if (run_dir / GEN_PROVENANCE).exists() else {}
    if not needed:
        return old
    backend = make_backend(cfg.model, run_dir)
    backend.preflight()
    prompts = wl.prompts(set(needed))
    progress = Progress(sum(len(v) for v in needed.values()), f"generating ({cfg.model.backend})", quiet=quiet)
    writer = _GenerationWriter(run_dir, wl.extract, progress)
    t0 = time.monotonic()
    try:
        backend.generate(prompts, cfg.sampling, needed, writer)
    finally:
        writer.close()
        progress.close()
        prov = backend.provenance()
        backend.close()  # before any sandbox runs: GPU memory and server ports are free
    wall = time.monotonic() - t0
    sessions = [
        *old.get("sessions", []),
        {
            "generated": sum(len(v) for v in needed.values()),
            "wall_s": round(wall, 2),
            "errors": writer.errors,
            "finished_at": provenance.now_iso(),
        },
    ]
    gen_prov = {
        **prov,
        "sampling": cfg.sampling.model_dump(),
        "prompt_mode": cfg.prompt.mode,
        "prompt_template_sha256": wl.template_sha256,
        "sessions": sessions,
        "generation_wall_s": round(sum(s["wall_s"] for s in sessions), 2),
        # the machine that generated (grading may run elsewhere: `harness evaluate RUN_DIR`)
        "host": provenance.host(),
    }
    write_json_atomic(run_dir / GEN_PROVENANCE, gen_prov)
    return gen_prov


def evaluate_stage(
    cfg: RunConfig,
    run_dir: Path,
    tasks: list[Task],
    bench: HumanEval,
    quiet: bool = False,
    sandbox: str | None = None,
    workers: int | None = None,
) -> dict:
    """Grade the stored generations; missing or failed generations make the run incomplete."""
    from harness.pipeline import GradeRequest, grade
    from harness.sandbox.base import Limits

    gens = stored_generations(run_dir)
    timeout = cfg.sandbox.timeout_s or bench.default_timeout_s
    jobs, gen_errors = [], 0
    tokens = 0
    for t in tasks:
        for s in range(cfg.sampling.n):
            row = gens.get((t.task_id, s))
            if row is None or row.get("error") is not None or row.get("code") is None:
                gen_errors += 1
                continue
            tokens += row.get("completion_tokens") or 0
            program = (
                build_program(t, solution=row["code"])
                if row["kind"] == "solution"
                else build_program(t, completion=row["code"])
            )
            jobs.append(ExecJob(t.task_id, s, program, hashlib.sha256(program.encode()).hexdigest(), timeout))
    gen_prov = json.loads((run_dir / GEN_PROVENANCE).read_text()) if (run_dir / GEN_PROVENANCE).exists() else {}
    if gen_prov.get("generation_wall_s"):
        gen_prov["completion_tokens_total"] = tokens
    req = GradeRequest(
        benchmark=bench.name,
        dataset=bench.info().__dict__,
        model_name=cfg.model.name,
        out_dir=run_dir,
        sandbox=sandbox or cfg.sandbox.kind,
        workers=workers or cfg.sandbox.workers or os.cpu_count() or 2,
        timeout_s=timeout,
        bootstrap_seed=cfg.bootstrap_seed,
        quiet=quiet,
        limits=Limits(memory_mb=cfg.sandbox.memory_mb),
        generation_errors=gen_errors,
        extra_provenance={
            "model": gen_prov,
            "config_sha256": hashlib.sha256((run_dir / CONFIG_FILE).read_bytes()).hexdigest(),
            "run_dir": str(run_dir),
        },
        expected_samples=len(tasks) * cfg.sampling.n,
    )
    return grade(jobs, req)


def check_disk(run_dir: Path, min_free_mb: int = 200) -> None:
    free = shutil.disk_usage(run_dir).free >> 20
    if free < min_free_mb:
        raise UserInputError(f"{run_dir}: only {free} MB free on this disk; need {min_free_mb} MB for the run")


def run(cfg: RunConfig, run_dir: Path, quiet: bool = False, stages: tuple[str, ...] = ("generate", "evaluate")) -> dict:
    """Pre-flight, then the stages. Returns results.json (or the generation provenance alone)."""
    wl = workload_for(cfg)
    check_disk(run_dir)
    if "evaluate" in stages:
        wl.check()  # before loading any weights: fail in seconds
    gen = generate_stage(cfg, run_dir, wl, quiet) if "generate" in stages else {}
    if "evaluate" not in stages:
        return gen
    return wl.evaluate(run_dir, quiet)
