"""kill -9 of `harness run` on the in-process vLLM engine (real vLLM CPU build, real tiny model).

The engine runs in processes of its own (VLLM::EngineCore, its worker, multiprocessing's resource
tracker); killing the harness must not leave them running, and `--resume` must find and stop what a
run whose watchdog was also gone left behind. Processes are identified by pid and create time,
recorded from the harness's process tree before the kill, so a reused pid never counts.

Two engine starts in all (each ~35 s of CPU here): the in-process engine, then `vllm serve`; the
resume in the second test is killed as soon as it has reported the leftovers and started its own
server, long before that server is up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.conftest import REPO, TINY_VLLM

pytestmark = pytest.mark.vllm

SMOKE = REPO / "configs/smoke-tiny.yaml"
LIMIT = 4
Ident = tuple[int, float]  # pid, create time


def _argv(config: Path, out: Path, run_id: str, *sets: str) -> list[str]:
    argv = [sys.executable, "-m", "harness", "run", str(config), "--limit", str(LIMIT), "--out", str(out)]
    argv += ["--run-id", run_id]
    for s in (*sets, f"model.gpu_memory_utilization={TINY_VLLM['gpu_memory_utilization']}"):
        argv += ["--set", s]
    return argv


def _popen(argv: list[str], tiny_model: str, log: Path, **env: str) -> subprocess.Popen:
    # A session of its own, as a terminal job would be: its engine shares its process group, and
    # only the harness's own pid is killed (never the group).
    with open(log, "wb") as f:
        return subprocess.Popen(
            argv,
            env=dict(os.environ, HARNESS_TINY_MODEL=tiny_model, **env),
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _tree(pid: int) -> dict[Ident, str]:
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


def _alive(ident: Ident) -> bool:
    try:
        return psutil.Process(ident[0]).create_time() == ident[1]
    except psutil.NoSuchProcess:
        return False


def _survivors(recorded: dict[Ident, str], within_s: float = 0.0) -> dict[Ident, str]:
    """Those of the recorded processes still alive after up to within_s seconds."""
    deadline = time.monotonic() + within_s
    while True:
        left = {i: c for i, c in recorded.items() if _alive(i)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def _cleanup(recorded: dict[Ident, str]) -> None:
    for ident in recorded:
        if _alive(ident):
            try:
                os.kill(ident[0], signal.SIGKILL)
            except ProcessLookupError:
                pass


def _engine_busy(proc: subprocess.Popen, run_dir: Path, log: Path, timeout_s: float = 600) -> dict[Ident, str]:
    """Wait until the engine's processes exist and it has written a generation; return the tree."""
    gens = run_dir / "generations.jsonl"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        tree = _tree(proc.pid)
        if any("EngineCore" in c for c in tree.values()) and gens.exists() and gens.read_bytes().count(b"\n") >= 1:
            return _tree(proc.pid)
        time.sleep(0.3)
    raise AssertionError(f"the engine did not start in {timeout_s} s:\n" + log.read_text(errors="replace")[-3000:])


def _kill_9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_of_harness_run_leaves_no_engine_process(tiny_model, tmp_path):
    log = tmp_path / "console.log"
    proc = _popen(_argv(SMOKE, tmp_path, "killed", "model.chunk_size=1"), tiny_model, log)
    recorded: dict[Ident, str] = {}
    try:
        recorded = _engine_busy(proc, tmp_path / "killed", log)
        assert sum("EngineCore" in c for c in recorded.values()) == 1, recorded
        _kill_9(proc)
        left = _survivors(recorded, within_s=30)
        assert not left, f"still running 30 s after kill -9 of the harness: {left}"
    finally:
        if proc.poll() is None:
            _kill_9(proc)
        _cleanup(recorded)
    # The engine's start-up log went to the run directory, not to the console.
    console = log.read_text(errors="replace")
    engine_log = (tmp_path / "killed" / "engine.log").read_text(errors="replace")
    assert "Loading safetensors checkpoint shards" in engine_log  # written by the engine's own process
    assert "Loading safetensors" not in console and " INFO " not in console, console[-3000:]


def _server_config(tmp_path: Path) -> Path:
    """The smoke config on the vllm-server backend (`vllm serve` in a session of its own)."""
    cfg = yaml.safe_load(SMOKE.read_text())
    del cfg["model"]["chunk_size"]
    cfg["model"].update(backend="vllm-server", max_concurrency=1)
    f = tmp_path / "server.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def test_resume_reports_and_stops_what_a_run_without_watchdog_left(tiny_model, tmp_path):
    """vllm-server: leftovers of a run whose watchdog did nothing are reported and stopped by the
    resume; then the resume itself is killed once its own `vllm serve` exists, which must go too."""
    run_dir = tmp_path / "orphaned"
    log = tmp_path / "first.log"
    argv = _argv(_server_config(tmp_path), tmp_path, "orphaned")
    # HARNESS_NO_REAPER (tests only): the watchdog records the run's processes but kills nothing, as
    # when it was killed together with the harness.
    proc = _popen(argv, tiny_model, log, HARNESS_NO_REAPER="1")
    recorded: dict[Ident, str] = {}
    resumed: dict[Ident, str] = {}
    resume = None
    try:
        recorded = _engine_busy(proc, run_dir, log)
        _kill_9(proc)
        time.sleep(3)
        left = _survivors(recorded)
        # The check that finds nothing left after a normal kill finds these: it can fail.
        server = [i for i, c in left.items() if "api_server" in c]
        assert len(server) == 1 and any("EngineCore" in c for c in left.values()), left
        record = json.loads((run_dir / "processes.json").read_text())
        assert {(p["pid"], p["create_time"]) for p in record["processes"]} >= set(left)

        resume_log = tmp_path / "resume.log"
        resume = _popen([sys.executable, "-m", "harness", "run", "--resume", str(run_dir)], tiny_model, resume_log)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert resume.poll() is None, resume_log.read_text(errors="replace")[-3000:]
            resumed = _tree(resume.pid)
            if "stopped" in resume_log.read_text(errors="replace") and any("api_server" in c for c in resumed.values()):
                break
            time.sleep(0.1)
        _kill_9(resume)  # as soon as its own server exists: that server must not outlive it
        text = resume_log.read_text(errors="replace")
        assert "still running" in text and all(f"pid {pid}:" in text for pid, _ in left), text[-3000:]
        assert not _survivors(left, within_s=30), "the resume said it stopped them"
        assert not _survivors(resumed, within_s=30), "the resume's own processes outlived it"
    finally:
        for p in (proc, resume):
            if p is not None and p.poll() is None:
                _kill_9(p)
        _cleanup({**recorded, **resumed})
