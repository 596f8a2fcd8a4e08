"""Command line: a thin typer front over the pipeline. Heavy modules are imported inside commands."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from harness.errors import HarnessError, UserInputError

EXECUTOR_HELP = "Where SWE-bench grading and agent instances run: local | ray."
RAY_ADDRESS_HELP = "The Ray cluster for --executor ray (default: auto: the cluster this machine belongs to)."

app = typer.Typer(
    help="Self-hosted evaluation harness for code models: benchmarks, solvers, scorers and backends are plug-ins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sandbox_app = typer.Typer(help="Build and inspect the execution sandbox.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


def _version(value: bool) -> None:
    if value:
        from harness import __version__
        from harness.provenance import git_sha

        sha = git_sha()
        print(f"harness {__version__}" + (f" ({sha})" if sha else ""))
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Self-hosted evaluation harness for code models."""


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


@app.command()
def evaluate(
    target: str = typer.Argument(..., help="A benchmark (see `harness list`) or a run directory."),
    samples: Path = typer.Argument(None, help="Predictions / samples file (the benchmark's format)."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory (created; re-running resumes)."),
    sets: list[str] = typer.Option([], "--set", help="Override a setting: --set benchmark.timeout_s=600."),
    dataset: str = typer.Option(None, "--dataset", help="The benchmark's dataset (a variant, a split or a file)."),
    dataset_path: str = typer.Option(None, "--dataset-path", help="Local dataset file instead of the default."),
    sandbox: str = typer.Option(None, "--sandbox", help="auto | docker | bwrap (benchmarks graded in the sandbox)."),
    workers: int = typer.Option(None, "--workers", "-j", help="Grading workers (default: the config's, else CPUs)."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds per sample (default: the benchmark's)."),
    model_name: str = typer.Option(None, "--model-name", help="Label in results (default: from the file)."),
    limit: int = typer.Option(None, "--limit", help="Grade only the first N tasks."),
    seed: int = typer.Option(1234, "--seed", help="Bootstrap seed for the CI."),
    memory_mb: int = typer.Option(None, "--memory-mb", help="Memory limit per sample (MB)."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Exit 0 even with infra errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no summary table."),
    gold: bool = typer.Option(False, "--gold", help="Grade the dataset's reference solutions (checks the set-up)."),
    instance_ids: list[str] = typer.Option([], "--instance-id", help="Only these task / instance ids."),
    images: str = typer.Option(None, "--images", help="keep | remove instance images after use (where used)."),
    regrade: bool = typer.Option(
        False, "--regrade", help="Discard the directory's verdicts and grade every sample again (other settings)."
    ),
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Grade a predictions file produced by anyone (or a run directory's generations), with resume."""
    import time

    from harness.cli_eval import check_out_dir, evaluate_file, evaluate_run_dir, executor_overrides

    sets = [*executor_overrides(executor, ray_address), *sets]

    grading = {"--sandbox": sandbox, "--memory-mb": memory_mb, "--workers": workers, "--timeout": timeout}
    predicting = {
        "--dataset-path": dataset_path,
        "--limit": limit,
        "--instance-id": instance_ids or None,
        "--images": images,
    }
    if (
        (workers is not None and workers < 1)
        or (timeout is not None and not 0 < timeout < float("inf"))
        or (limit is not None and limit < 1)
    ):
        raise UserInputError("--workers, --timeout and --limit must be positive (and finite)")
    if seed < 0:
        raise UserInputError(f"--seed {seed}: must be a non-negative integer")
    check_out_dir(Path(target) if out is None and Path(target).is_dir() else out or Path("."))
    t0 = time.monotonic()
    if Path(target).is_dir() and samples is None:
        given = [
            f
            for f, v in {**predicting, "--dataset": dataset, "--model-name": model_name, "--out": out}.items()
            if v is not None
        ]
        if given or gold:
            raise UserInputError(f"{', '.join(given or ['--gold'])}: not for a run directory (its config.yaml decides)")
        results, out = evaluate_run_dir(Path(target), grading, sets, quiet, regrade), Path(target)
    else:
        if out is None or (samples is None) == (not gold):
            raise UserInputError(
                f"usage: harness evaluate BENCHMARK PREDICTIONS --out DIR (or --gold instead of PREDICTIONS), "
                f"or harness evaluate RUN_DIR (got {target!r})"
            )
        results = evaluate_file(
            target, samples, out, dataset, grading, predicting, sets, model_name, seed, quiet, regrade
        )
    _finish(results, time.monotonic() - t0, out, quiet, allow_incomplete)


def _finish(results, wall_s: float, out: Path, quiet: bool, allow_incomplete: bool) -> None:
    from harness.cli_eval import print_summary

    if not quiet:
        print_summary(results, wall_s, out)
    for note in results.provenance.get("input_notes") or []:  # about the input: shown even with --quiet
        print(f"note: {note}", file=sys.stderr)
    check = getattr(results, "gold_check", None)
    if check and not check["trusted"]:
        bad = check.get("not_resolved", check.get("not_passed", []))
        _err(
            f"REFERENCE SOLUTIONS FAILED on {len(bad)} of {check['total']} task(s): {', '.join(bad[:10])}. "
            "Do not trust this set-up (sandbox or images)."
        )
        raise typer.Exit(1)
    if not results.complete and not allow_incomplete:
        _err(f"run incomplete: {results.incomplete_reason}")
        raise typer.Exit(1)


def _load_for_run(config: Path | None, sets: list[str], limit: int | None, resume: Path | None, where: list[str]):
    from harness.config import load_config
    from harness.rundir import config_path

    if resume is not None:
        if config is not None or sets or limit:
            raise UserInputError("--resume takes the run directory's own config; drop CONFIG, --set and --limit")
        # Where the work runs is not part of what the run is: a run may resume on a cluster, or off one.
        return load_config(config_path(resume), where)
    if config is None:
        raise UserInputError("usage: harness run CONFIG.yaml [--set key=value] (or harness run --resume RUN_DIR)")
    overrides = list(sets) + ([f"benchmark.limit={limit}"] if limit else []) + where
    return load_config(config, overrides)


def _start(config, sets, limit, out, run_id, resume, quiet, grading: bool, where: list[str]):
    """Load the config, pre-flight everything (nothing written before), then the run directory."""
    from harness.cli_eval import check_out_dir
    from harness.config import resolved_dict
    from harness.interrupt import set_resume_hint
    from harness.pipeline import Pipeline
    from harness.rundir import check_new_run_dir, check_run_id, new_run_dir

    check_run_id(run_id)  # before anything is loaded
    check_out_dir(resume if resume is not None else out, "--resume" if resume is not None else "--out")
    if run_id is not None and resume is None:
        check_new_run_dir(out / run_id)
    cfg = _load_for_run(config, sets, limit, resume, where)
    if resume is not None:
        from harness import reaper

        reaper.check_leftovers(resume)  # a live run there: exit 2; a dead run's vLLM processes: listed and stopped
    pipe = Pipeline(cfg, quiet)
    pipe.preflight(grading=grading, run_dir=resume)
    if resume is not None:
        run_dir = resume
    else:
        run_dir = new_run_dir(resolved_dict(cfg), f"{cfg.model.name}-{cfg.benchmark.name}", out, run_id)
    set_resume_hint(f"`harness {'run' if grading else 'generate'} --resume {run_dir}`")
    return pipe, run_dir


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
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Generate with the configured backend, grade, write results with provenance."""
    import time

    from harness.cli_eval import executor_overrides

    where = executor_overrides(executor, ray_address)
    pipe, run_dir = _start(config, sets, limit, out, run_id, resume, quiet, grading=True, where=where)
    if not quiet:
        print(f"run directory: {run_dir}", file=sys.stderr)
    t0 = time.monotonic()
    pipe.generate(run_dir)
    _finish(pipe.evaluate(run_dir), time.monotonic() - t0, run_dir, quiet, allow_incomplete)


@app.command()
def generate(
    config: Path = typer.Argument(None, help="Run config (YAML)."),
    sets: list[str] = typer.Option([], "--set", help="Override a field (repeatable)."),
    limit: int = typer.Option(None, "--limit"),
    out: Path = typer.Option(Path("results"), "--out"),
    run_id: str = typer.Option(None, "--run-id"),
    resume: Path = typer.Option(None, "--resume"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    ray_address: str = typer.Option(None, "--ray-address", help=RAY_ADDRESS_HELP),
) -> None:
    """Only the generation half: writes generations.jsonl; grade later with `harness evaluate RUN_DIR`."""
    from harness.cli_eval import executor_overrides

    where = executor_overrides(executor, ray_address)
    pipe, run_dir = _start(config, sets, limit, out, run_id, resume, quiet, grading=False, where=where)
    gen = pipe.generate(run_dir)
    errors = sum(s.get("errors", 0) for s in gen.get("sessions", [])[-1:])
    print(run_dir)
    if errors:
        _err(f"{errors} generation(s) failed; `harness generate --resume {run_dir}` retries them")
        raise typer.Exit(1)


@app.command("list")
def list_() -> None:
    """Show the registered benchmarks, solvers, scorers, model backends and sandboxes (entry points included)."""
    from harness.registry import REGISTRIES

    for reg in REGISTRIES.values():
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
def sandbox_prune(
    force_all: bool = typer.Option(
        False,
        "--all",
        help="Remove every harness container, also those of runs still in progress on this or other hosts "
        "(their grading then fails with infra errors). Without it, only containers whose owning process is gone.",
    ),
) -> None:
    """Remove containers left by harness processes that are gone; those of live runs and other hosts are kept."""
    from harness.sandbox.prune import main

    raise typer.Exit(main(force_all))


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
    from harness.cli_eval import check_out_dir
    from harness.report.site import ReportRequest, build

    if len(compare) % 2:
        raise UserInputError("--compare takes two names: --compare A B")
    if seed < 0:
        raise UserInputError(f"--seed {seed}: must be a non-negative integer")
    check_out_dir(out)
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
    import signal

    from harness import interrupt

    interrupt.install()
    try:
        argv = sys.argv[1:]
        app(args=_spread_pairs(argv) if argv[:1] == ["report"] else argv, prog_name="harness")
    except HarnessError as e:
        _err(str(e))
        sys.exit(e.exit_code)
    except (interrupt.Interrupted, KeyboardInterrupt) as e:
        signum = e.signum if isinstance(e, interrupt.Interrupted) else signal.SIGINT
        _err(interrupt.message(signum))
        sys.exit(128 + signum)
