"""The workings of `harness evaluate` and the summary table; cli.py stays a thin front over them."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserInputError


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """A directory the command may create or write to, checked before any work (nothing is written)."""
    import os
    import tempfile

    if path.exists() and not path.is_dir():
        raise UserInputError(f"{flag} {path}: exists and is not a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserInputError(f"{flag} {path}: {ancestor} is a file, not a directory")
    try:
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(f"no write permission on {ancestor}")
        tempfile.TemporaryDirectory(dir=ancestor, prefix=".harness-probe-").cleanup()  # read-only mounts
    except OSError as e:
        raise UserInputError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None


# Grading flags of `harness evaluate`, by the config key each sets. "{workers}" and "{timeout}" are the
# keys the benchmark names (its scorer's settings live in the benchmark's or the sandbox's section).
GRADING_FLAGS = {
    "--sandbox": "sandbox.kind",
    "--memory-mb": "sandbox.memory_mb",
    "--workers": "{workers}",
    "--timeout": "{timeout}",
}


def executor_overrides(executor: str | None, ray_address: str | None) -> list[str]:
    """--set assignments for --executor / --ray-address."""
    import json

    if ray_address is not None and executor not in (None, "ray"):
        raise UserInputError(f"--ray-address: only with --executor ray (got --executor {executor})")
    out = []
    if executor is not None or ray_address is not None:
        out.append(f"executor.name={json.dumps(executor or 'ray')}")
    if ray_address is not None:
        out.append(f"executor.address={json.dumps(ray_address)}")
    return out


PREDICTION_FLAGS = {
    "--dataset-path": "benchmark.path",
    "--limit": "benchmark.limit",
    "--instance-id": "benchmark.instance_ids",
    "--images": "benchmark.images",
}


def flag_overrides(bench_cls, flags: dict[str, object], table: dict[str, str], uses_sandbox: bool) -> list[str]:
    """--set assignments for the flags given; a flag the benchmark does not take is bad input."""
    import json

    keys = {"{workers}": bench_cls.workers_key, "{timeout}": bench_cls.timeout_key}
    out = []
    for flag, value in flags.items():
        if value is None:
            continue
        key = keys.get(table[flag], table[flag])
        section, _, field = key.partition(".")
        if section == "sandbox" and not uses_sandbox:
            raise UserInputError(f"{flag}: does not apply to {bench_cls.name} (its scorer does not use the sandbox)")
        if section == "benchmark" and field not in bench_cls.Config.model_fields:
            allowed = ", ".join(k for k in bench_cls.Config.model_fields if k != "name")
            raise UserInputError(f"{flag}: does not apply to {bench_cls.name} (its settings: {allowed})")
        out.append(f"{key}={json.dumps(value)}")
    return out


def evaluate_file(target, samples, out, dataset, grading, predicting, sets, model_name, seed, quiet, regrade):
    """Grade a predictions file (or --gold) of the benchmark `target` into `out`."""
    from pydantic import ValidationError

    from harness.config import ExecutorConfig, SandboxConfig, apply_override, format_error, plugin_config
    from harness.pipeline import evaluate_predictions, load_benchmark
    from harness.registry import BENCHMARKS, SCORERS

    if target not in BENCHMARKS:
        raise UserInputError(f"unknown benchmark {target!r}; expected one of: {', '.join(BENCHMARKS.names())}")
    data: dict = {"benchmark": {"name": target}, "sandbox": {}, "executor": {}}
    if dataset is not None:
        data["benchmark"].update(BENCHMARKS.load(target).dataset_option(dataset))
    bench_cls = BENCHMARKS.load(data["benchmark"]["name"])
    uses_sandbox = SCORERS.load(bench_cls.scorer).uses_sandbox
    for o in flag_overrides(bench_cls, {**grading, **predicting}, {**GRADING_FLAGS, **PREDICTION_FLAGS}, uses_sandbox):
        apply_override(data, o)
    for o in sets:
        if not o.startswith(("benchmark.", "sandbox.", "executor.")):
            raise UserInputError(f"--set {o!r}: evaluate takes benchmark.*, sandbox.* and executor.* settings")
        if o.startswith("sandbox.") and not uses_sandbox:
            raise UserInputError(f"--set {o!r}: {bench_cls.name}'s scorer does not use the sandbox")
        apply_override(data, o)
    bench = load_benchmark(plugin_config("benchmarks", "benchmark", data["benchmark"], "command line"))
    try:
        sandbox_cfg = SandboxConfig.model_validate(data["sandbox"])
    except ValidationError as e:
        raise UserInputError(format_error("command line", e, SandboxConfig, "sandbox")) from None
    try:
        executor = ExecutorConfig.model_validate(data["executor"])
    except ValidationError as e:
        raise UserInputError(format_error("command line", e, ExecutorConfig, "executor")) from None
    return evaluate_predictions(bench, samples, out, sandbox_cfg, model_name, seed, quiet, regrade, executor)


def evaluate_run_dir(run_dir: Path, grading: dict, sets: list[str], quiet: bool, regrade: bool):
    """Grade a run directory's generations with its own config.yaml and the grading overrides."""
    from harness.config import load_config
    from harness.pipeline import Pipeline
    from harness.registry import BENCHMARKS, SCORERS
    from harness.rundir import config_path

    path = config_path(run_dir)
    name = load_config(path, env_required=False).benchmark.name
    bench_cls = BENCHMARKS.load(name)
    overrides = flag_overrides(bench_cls, grading, GRADING_FLAGS, SCORERS.load(bench_cls.scorer).uses_sandbox)
    cfg = load_config(path, [*overrides, *sets], env_required=False)
    return Pipeline(cfg, quiet).evaluate(run_dir, regrade)


def print_summary(results, wall_s: float, out: Path) -> None:
    """The headline with its CI, the other metrics, the counts by status, completeness."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results.benchmark} - {results.model}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    m, c = results.metrics, results.counts
    for k, v in m.items():
        if not k.endswith("_ci95"):
            table.add_row(k, f"{v:.4f}")
        else:
            table.add_row(f"{k[:-5]} 95% CI", f"[{v[0]:.4f}, {v[1]:.4f}]")
    table.add_row("tasks / samples", f"{c['tasks']} / {c['samples']}")
    skip = {"tasks", "samples", "graded_tasks", "dataset_tasks"}
    for k, v in c.items():
        if k not in skip and v is not None:
            table.add_row(k, str(v))
    graded = results.provenance.get("graded_this_session", 0)
    table.add_row("wall time", f"{wall_s:.2f} s ({graded} graded now)")
    table.add_row("complete", "yes" if results.complete else "NO")
    Console().print(table)
    print(f"results: {out / 'results.json'}")
