"""kill -9 of `harness run` on the vllm-server backend (real vLLM CPU build, real tiny model).

`vllm serve` runs in a session of its own; killing the harness must not leave it running, and
`--resume` must find and stop what a run whose watchdog was also gone left behind. Processes are
identified by pid and create time, recorded from the harness's process tree before the kill, so a
reused pid never counts. The in-process engine's case is part of the kill -9 / resume test in
test_vllm_cpu.py (one engine start serves both). One engine start here: the resume is killed as
soon as it has reported the leftovers and started its own server, long before that server is up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY_VLLM
from tests.integration.helpers import Ident
from tests.integration.helpers import cleanup as _cleanup
from tests.integration.helpers import survivors as _survivors
from tests.integration.helpers import tree as _tree

pytestmark = pytest.mark.vllm

SMOKE = REPO / "configs/smoke-tiny.yaml"
LIMIT = 4


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
