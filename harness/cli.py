"""Command line: a thin typer front over the pipeline. Heavy modules are imported inside commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from harness.errors import HarnessError, UserInputError

app = typer.Typer(
    help="Self-hosted evaluation harness for code models (HumanEval, HumanEval+, SWE-bench).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sandbox_app = typer.Typer(help="Build and inspect the execution sandbox.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")

HUMANEVAL_DATASETS = ("humaneval", "humaneval-plus")


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


@app.command()
def evaluate(
    target: str = typer.Argument(..., help="Benchmark (humaneval, humaneval-plus, swebench) or a run directory."),
    samples: Path = typer.Argument(None, help="Samples JSONL: {task_id, completion} or {task_id, solution}."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (created; re-running resumes)."),
    dataset: str = typer.Option(None, "--dataset", help="humaneval | humaneval-plus (default: the target)."),
    dataset_path: Path = typer.Option(None, "--dataset-path", help="Local dataset file instead of the default."),
    sandbox: str = typer.Option("auto", "--sandbox", help="auto | docker | bwrap."),
    workers: int = typer.Option(os.cpu_count() or 2, "--workers", "-j", help="Sandbox instances in parallel."),
    timeout: float = typer.Option(
        None, "--timeout", help="Seconds per sample (default 3.0 for HumanEval, 20.0 for HumanEval+)."
    ),
    model_name: str = typer.Option(None, "--model-name", help="Label in results (default: samples file name)."),
    limit: int = typer.Option(None, "--limit", help="Grade only the first N tasks of the samples file."),
    seed: int = typer.Option(1234, "--seed", help="Bootstrap seed for the pass@1 CI."),
    memory_mb: int = typer.Option(1024, "--memory-mb", help="Memory limit per sample (MB)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Exit 0 even with infra errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary table."),
    gold: bool = typer.Option(False, "--gold", help="SWE-bench: grade the reference patches (checks the images)."),
    instance_ids: list[str] = typer.Option([], "--instance-id", help="SWE-bench: only these instances."),
    images: str = typer.Option("keep", "--images", help="SWE-bench: keep | remove instance images after use."),
) -> None:
    """Grade a samples file produced by anyone (or a run directory's generations), in a sandbox, with resume."""
    import time

    if Path(target).is_dir():
        _evaluate_run_dir(Path(target), sandbox, workers, quiet, allow_incomplete)
        return
    if target == "swebench":
        _evaluate_swebench(
            samples,
            out,
            dataset,
            gold,
            workers,
            timeout,
            model_name,
            limit,
            instance_ids,
            images,
            seed,
            quiet,
            allow_incomplete,
        )
        return
    if samples is None or out is None:
        raise UserInputError("usage: harness evaluate humaneval SAMPLES.jsonl --out DIR (or harness evaluate RUN_DIR)")

    from harness.benchmarks.humaneval import HumanEval, HumanEvalPlus
    from harness.pipeline import GradeRequest, grade
    from harness.samples import read_samples
    from harness.sandbox.base import Limits

    name = dataset or target
    if target not in HUMANEVAL_DATASETS:
        raise UserInputError(
            f"unknown benchmark {target!r}; expected one of: {', '.join(HUMANEVAL_DATASETS)}, swebench"
        )
    if name not in HUMANEVAL_DATASETS:
        raise UserInputError(f"--dataset {name!r}: expected one of: {', '.join(HUMANEVAL_DATASETS)}")
    if dataset_path is not None and not dataset_path.is_file():
        raise UserInputError(f"--dataset-path {dataset_path}: no such file")
    if workers < 1 or (timeout is not None and timeout <= 0) or (limit is not None and limit < 1):
        raise UserInputError("--workers, --timeout and --limit must be positive")
    bench = (HumanEvalPlus if name == "humaneval-plus" else HumanEval)(dataset_path)
    timeout_s = timeout if timeout is not None else bench.default_timeout_s
    sf = read_samples(samples, bench, timeout_s, limit)
    info = bench.info()
    req = GradeRequest(
        benchmark=name,
        dataset=info.__dict__,
        model_name=model_name or samples.name.split(".")[0],
        out_dir=out,
        sandbox=sandbox,
        workers=workers,
        timeout_s=timeout_s,
        bootstrap_seed=seed,
        quiet=quiet,
        limits=Limits(memory_mb=memory_mb),
        extra_provenance={"samples_file": str(samples), "samples_sha256": sf.sha256, "limit": limit},
    )
    t0 = time.monotonic()
    results = grade(sf.jobs, req)
    _finish(results, time.monotonic() - t0, out, quiet, allow_incomplete)


def _evaluate_swebench(
    preds, out, dataset, gold, workers, timeout, model_name, limit, instance_ids, images, seed, quiet, allow_incomplete
) -> None:
    import time

    from harness.benchmarks.swebench import load_dataset, read_predictions
    from harness.benchmarks.swebench_grade import SWEGradeRequest, gold_predictions, grade

    if out is None or dataset is None:
        raise UserInputError("usage: harness evaluate swebench PREDICTIONS --dataset lite|verified|PATH --out DIR")
    if images not in ("keep", "remove"):
        raise UserInputError(f"--images {images!r}: expected keep or remove")
    if gold == (preds is not None):
        raise UserInputError("give either a PREDICTIONS file or --gold")
    ds = load_dataset(dataset, instance_ids or None, None, limit)
    predictions = gold_predictions(ds) if gold else read_predictions(preds, ds)
    name = model_name or ("gold" if gold else next(iter(predictions.values()))["model_name_or_path"])
    req = SWEGradeRequest(
        ds,
        predictions,
        name,
        out,
        max_workers=workers,
        timeout_s=int(timeout or 1800),
        images=images,
        bootstrap_seed=seed,
        quiet=quiet,
        gold=gold,
        extra_provenance={"predictions_file": str(preds) if preds else "gold"},
    )
    t0 = time.monotonic()
    results = grade(req)
    if not quiet:
        print_swebench_summary(results, time.monotonic() - t0, out)
    if gold and not results["gold_check"]["trusted"]:
        _err(
            f"GOLD PATCHES DID NOT RESOLVE {len(results['gold_check']['not_resolved'])} of {results['counts']['tasks']}"
            f" instance(s): {', '.join(results['gold_check']['not_resolved'][:10])}. Do not trust this image set."
        )
        raise typer.Exit(1)
    if not results["complete"] and not allow_incomplete:
        _err(f"run incomplete: {results['incomplete_reason']}")
        raise typer.Exit(1)


def print_swebench_summary(results: dict, wall_s: float, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"swebench - {results['model']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    m, c = results["metrics"], results["counts"]
    table.add_row("resolved", f"{m['resolved']:.4f} ({c['resolved']}/{c['tasks']})")
    table.add_row("resolved 95% CI", f"[{m['resolved_ci95'][0]:.4f}, {m['resolved_ci95'][1]:.4f}]")
    for s in ("unresolved", "patch_failed", "empty_patch", "timeout", "infra_error", "generation_error"):
        table.add_row(s, str(c.get(s, 0)))
    table.add_row("wall time", f"{wall_s:.1f} s")
    Console().print(table)
    print(f"results: {out / 'results.json'}")


def _evaluate_run_dir(run_dir: Path, sandbox: str, workers: int, quiet: bool, allow_incomplete: bool) -> None:
    import time

    from harness.run import load_run, workload_for

    cfg = load_run(run_dir)
    t0 = time.monotonic()
    results = workload_for(cfg).evaluate(run_dir, quiet, None if sandbox == "auto" else sandbox, workers)
    _finish(results, time.monotonic() - t0, run_dir, quiet, allow_incomplete)


def _finish(results: dict, wall_s: float, out: Path, quiet: bool, allow_incomplete: bool) -> None:
    if not quiet:
        (print_swebench_summary if results["benchmark"] == "swebench" else print_summary)(results, wall_s, out)
    if not results["complete"] and not allow_incomplete:
        _err(f"run incomplete: {results['incomplete_reason']}")
        raise typer.Exit(1)


def _load_for_run(config: Path | None, sets: list[str], limit: int | None, resume: Path | None):
    from harness.config import load_config
    from harness.run import load_run

    if resume is not None:
        if config is not None or sets:
            raise UserInputError("--resume takes the run directory's own config; drop CONFIG and --set")
        return load_run(resume)
    if config is None:
        raise UserInputError("usage: harness run CONFIG.yaml [--set key=value] (or harness run --resume RUN_DIR)")
    overrides = list(sets) + ([f"benchmark.limit={limit}"] if limit else [])
    return load_config(config, overrides)


def _preflight(cfg, with_sandbox: bool) -> None:
    from harness.models.base import make_backend
    from harness.run import workload_for

    make_backend(cfg.model, None).preflight()
    if with_sandbox:
        workload_for(cfg).check()


@app.command()
def run(
    config: Path = typer.Argument(None, help="Run config (YAML)."),
    sets: list[str] = typer.Option([], "--set", help="Override a field: --set sampling.n=20 (repeatable)."),
    limit: int = typer.Option(None, "--limit", help="Only the first N tasks."),
    out: Path = typer.Option(Path("results"), "--out", help="Parent directory of run directories."),
    run_id: str = typer.Option(None, "--run-id", help="Run directory name (default: model-benchmark-time)."),
    resume: Path = typer.Option(None, "--resume", help="Complete an interrupted run directory."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Exit 0 even if incomplete."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Generate with the configured backend, grade in the sandbox, write results with provenance."""
    import time

    from harness.run import new_run_dir
    from harness.run import run as run_pipeline

    cfg = _load_for_run(config, sets, limit, resume)
    _preflight(cfg, with_sandbox=True)
    run_dir = resume if resume is not None else new_run_dir(cfg, out, run_id)
    if not quiet:
        print(f"run directory: {run_dir}", file=sys.stderr)
    t0 = time.monotonic()
    results = run_pipeline(cfg, run_dir, quiet)
    _finish(results, time.monotonic() - t0, run_dir, quiet, allow_incomplete)


@app.command()
def generate(
    config: Path = typer.Argument(None, help="Run config (YAML)."),
    sets: list[str] = typer.Option([], "--set", help="Override a field (repeatable)."),
    limit: int = typer.Option(None, "--limit"),
    out: Path = typer.Option(Path("results"), "--out"),
    run_id: str = typer.Option(None, "--run-id"),
    resume: Path = typer.Option(None, "--resume"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Only the generation half: writes generations.jsonl; grade later with `harness evaluate RUN_DIR`."""
    from harness.run import new_run_dir
    from harness.run import run as run_pipeline

    cfg = _load_for_run(config, sets, limit, resume)
    _preflight(cfg, with_sandbox=False)
    run_dir = resume if resume is not None else new_run_dir(cfg, out, run_id)
    gen = run_pipeline(cfg, run_dir, quiet, stages=("generate",))
    errors = sum(s.get("errors", 0) for s in gen.get("sessions", [])[-1:])
    print(run_dir)
    if errors:
        _err(f"{errors} generation(s) failed; `harness generate --resume {run_dir}` retries them")
        raise typer.Exit(1)


def print_summary(results: dict, wall_s: float, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results['benchmark']} - {results['model']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    m = results["metrics"]
    for k, v in m.items():
        if k.startswith("pass@") and not k.endswith("ci95"):
            table.add_row(k, f"{v:.4f}")
    if "pass@1_ci95" in m:
        lo, hi = m["pass@1_ci95"]
        table.add_row("pass@1 95% CI", f"[{lo:.4f}, {hi:.4f}]")
    c = results["counts"]
    table.add_row("tasks / samples", f"{c['tasks']} / {c['samples']}")
    for s in ("passed", "failed", "timeout", "error", "infra_error", "generation_error"):
        if s in c:
            table.add_row(s, str(c[s]))
    graded = results["provenance"].get("graded_this_session", 0)
    table.add_row("wall time", f"{wall_s:.2f} s ({graded} graded now)")
    table.add_row("complete", "yes" if results["complete"] else "NO")
    Console().print(table)
    print(f"results: {out / 'results.json'}")


@app.command("list")
def list_() -> None:
    """Show the registered benchmarks, model backends and sandboxes."""
    from harness.registry import BENCHMARKS, MODEL_BACKENDS, SANDBOXES

    for reg in (BENCHMARKS, MODEL_BACKENDS, SANDBOXES):
        print(f"{reg.plural}:")
        for e in reg.entries():
            print(f"  {e.name:<16} {e.summary}")
        if not reg.entries():
            print("  (none yet)")


@app.command()
def doctor() -> None:
    """Report the state of Docker, the sandbox image and bubblewrap."""
    from harness.doctor import report

    ok = report()
    raise typer.Exit(0 if ok else 3)


@sandbox_app.command("build")
def sandbox_build(
    offline: bool = typer.Option(False, "--offline", help="Build from a debootstrap root filesystem."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the image exists."),
) -> None:
    """Build the execution image (from the Dockerfile, or offline; falls back to offline)."""
    from harness.sandbox.image import build

    tag = build(offline=offline, log=lambda s: print(s, file=sys.stderr), force=force)
    print(tag)


@sandbox_app.command("prune")
def sandbox_prune() -> None:
    """Remove sandbox containers left behind by killed runs."""
    from harness.sandbox.docker import LABEL, docker_client

    n = 0
    for c in docker_client().containers.list(all=True, filters={"label": LABEL}):
        c.remove(force=True)
        n += 1
    print(f"removed {n} container(s)")


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories, or directories holding them."),
    out: Path = typer.Option(..., "--out", "-o", help="Site directory (an earlier report there is replaced)."),
    claims: Path = typer.Option(None, "--claims", help="Vendor claims (YAML), e.g. configs/claims.yaml."),
    prices: Path = typer.Option(None, "--prices", help="Prices (YAML), e.g. configs/prices.yaml."),
    compare: list[str] = typer.Option(
        [], "--compare", metavar="A B", help="Also compare A with B (run ids, run dirs or model names); repeatable."
    ),
    auto_compare: bool = typer.Option(True, "--auto-compare/--no-auto-compare", help="Compare every ranked pair."),
    seed: int = typer.Option(1234, "--seed", help="Bootstrap seed of the paired differences."),
    title: str = typer.Option("Replicated results", "--title", help="Site title."),
) -> None:
    """Build a static comparison site (pages, data/*.json, tables/*.md|csv) that works offline from file://."""
    from harness.report.site import ReportRequest, build

    if len(compare) % 2:
        raise UserInputError("--compare takes two names: --compare A B")
    rep = build(
        ReportRequest(
            run_paths=run_dirs,
            out=out,
            claims=claims,
            prices=prices,
            compare=list(zip(compare[::2], compare[1::2], strict=True)),
            auto_compare=auto_compare,
            seed=seed,
            title=title,
        )
    )
    ranked = sum(1 for lb in rep.leaderboards.values() for r in lb.rows if r.ranked)
    print(
        f"report: {len(rep.runs)} runs ({ranked} ranked) on {len(rep.leaderboards)} leaderboard(s), "
        f"{len(rep.comparisons)} comparison(s), {len(rep.claims.rows)} claim row(s)"
    )
    print(f"site: {out / 'index.html'}")


def _spread_pairs(argv: list[str], option: str = "--compare") -> list[str]:
    """`--compare A B` -> `--compare A --compare B`: typer has no repeatable two-value option."""
    out, i = [], 0
    while i < len(argv):
        out.append(argv[i])
        if argv[i] == option and i + 2 < len(argv) and not argv[i + 2].startswith("-"):
            out += [argv[i + 1], option, argv[i + 2]]
            i += 3
            continue
        i += 1
    return out


def main() -> None:
    """Console entry point: HarnessError becomes a one-line message and its exit code."""
    try:
        argv = sys.argv[1:]
        app(args=_spread_pairs(argv) if argv[:1] == ["report"] else argv, prog_name="harness")
    except HarnessError as e:
        _err(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _err("interrupted; re-run the same command to resume")
        sys.exit(130)
