"""harness.reaper with real processes: a stand-in harness arms the real watchdog, starts `sleep`
trees (a child, grandchildren, a process group of its own, one child started just before the kill)
and is killed with SIGKILL. No model: the engine's processes are played by `sleep`."""

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

from harness import reaper
from harness.errors import EnvironmentNotReady, UserInputError
from tests.conftest import REPO

STAND_IN = """
import os, signal, subprocess, sys
from pathlib import Path
from harness import reaper

wd = reaper.guard(Path(sys.argv[1]))
subprocess.Popen(["sleep", "300"])
subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])
group = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
wd.add_group(group.pid)
print("started", flush=True)
sys.stdin.readline()
if sys.argv[2] == "release":
    reaper.release()
    print("released", flush=True)
    sys.exit(0)
late = subprocess.Popen(["sleep", "300"])  # born after the watchdog's last scan: found by its token
print(late.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""

Ident = tuple[int, float]


def _alive(ident: Ident) -> bool:
    try:
        p = psutil.Process(ident[0])
        return p.create_time() == ident[1] and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _survivors(idents: set[Ident], within_s: float) -> set[Ident]:
    deadline = time.monotonic() + within_s
    while (left := {i for i in idents if _alive(i)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _tree(pid: int) -> set[Ident]:
    return {(k.pid, k.create_time()) for k in psutil.Process(pid).children(recursive=True)}


def _cleanup(idents: set[Ident]) -> None:
    for pid, _ in idents:
        if _alive((pid, _)):
            os.kill(pid, signal.SIGKILL)


def _stand_in(run_dir: Path, mode: str = "kill", **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, str(run_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        start_new_session=True,
    )
    assert proc.stdout.readline() == "started\n"
    # Wait until the watchdog has recorded the whole tree: 1 + 3 + 2 sleeps and shells.
    deadline = time.monotonic() + 10
    while len(json.loads((run_dir / reaper.PROCESSES_FILE).read_text())["processes"]) < 6:
        assert time.monotonic() < deadline, (run_dir / reaper.PROCESSES_FILE).read_text()
        time.sleep(0.05)
    return proc


def _kill_9(proc: subprocess.Popen) -> set[Ident]:
    """The stand-in starts its late child and SIGKILLs itself at once; returns every process it had started."""
    tree = _tree(proc.pid)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    late = psutil.Process(int(proc.stdout.readline()))
    assert proc.wait(timeout=10) == -signal.SIGKILL
    return tree | {(late.pid, late.create_time())}


def test_the_watchdog_stops_everything_the_killed_harness_started(tmp_path):
    proc = _stand_in(tmp_path)
    started = _kill_9(proc)
    try:
        assert len(started) >= 8  # the watchdog, 6 sleeps and shells, the late sleep
        assert not _survivors(started, within_s=8), "kill -9 of the harness left processes running"
    finally:
        _cleanup(started)
    record = json.loads((tmp_path / reaper.PROCESSES_FILE).read_text())
    assert record["state"] == "harness died; its processes were stopped" and record["processes"] == []
    reaper.check_leftovers(tmp_path)  # nothing left, nothing said


def test_without_the_watchdog_resume_lists_and_stops_the_leftovers(tmp_path, capfd):
    proc = _stand_in(tmp_path, HARNESS_NO_REAPER="1")
    started = _kill_9(proc)
    try:
        time.sleep(1.0)
        left = _survivors(started, within_s=0)
        # The check that passed above fails here: every sleep and shell is still running.
        assert len(left) >= 7, left
        reaper.check_leftovers(tmp_path)
        err = capfd.readouterr().err
        recorded = {p["pid"] for p in json.loads((tmp_path / reaper.PROCESSES_FILE).read_text())["processes"]}
        assert "still running; stopping them" in err and all(f"pid {pid}:" in err for pid in recorded)
        assert "stopped" in err.splitlines()[-1]
        assert not _survivors(left, within_s=5)
    finally:
        _cleanup(started)


def test_release_disarms_the_watchdog(tmp_path):
    proc = _stand_in(tmp_path, mode="release")
    started = _tree(proc.pid)
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "released\n" and proc.wait(timeout=10) == 0
        record = json.loads((tmp_path / reaper.PROCESSES_FILE).read_text())
        assert record["state"] == "stopped"
        watchdog = (record["watchdog"]["pid"], record["watchdog"]["create_time"])
        assert not _survivors({watchdog}, within_s=5)
        # Stopping them is the backend's own close(); a disarmed watchdog kills nothing.
        assert len(_survivors(started - {watchdog}, within_s=1)) == 6
    finally:
        _cleanup(started)


def test_a_running_harness_keeps_its_run_directory(tmp_path):
    proc = _stand_in(tmp_path)
    started = _tree(proc.pid)
    try:
        with pytest.raises(UserInputError) as info:
            reaper.check_leftovers(tmp_path)
        assert info.value.exit_code == 2 and f"running harness (pid {proc.pid}:" in str(info.value)
        assert _survivors(started, within_s=0) == started  # refused: nothing touched
    finally:
        proc.kill()
        proc.wait()
        _cleanup(started)


def _record(run_dir: Path, processes: list[dict]) -> None:
    dead = {"pid": 2**22 + 1, "create_time": 1.0, "cmdline": "gone"}
    record = {"harness": dead, "watchdog": dead, "token": "t0", "groups": [], "processes": processes}
    (run_dir / reaper.PROCESSES_FILE).write_text(json.dumps(record))


def test_a_reused_pid_is_never_stopped(tmp_path, capfd):
    other = subprocess.Popen(["sleep", "300"])
    try:
        p = psutil.Process(other.pid)
        _record(tmp_path, [{"pid": p.pid, "create_time": p.create_time() - 1, "cmdline": "sleep 300"}])
        reaper.check_leftovers(tmp_path)
        assert other.poll() is None and capfd.readouterr().err == ""
    finally:
        other.kill()
        other.wait()


def test_leftovers_that_cannot_be_stopped_are_exit_3(tmp_path, monkeypatch):
    other = subprocess.Popen(["sleep", "300"])
    try:
        p = psutil.Process(other.pid)
        _record(tmp_path, [reaper.describe(p)])
        monkeypatch.setattr(reaper, "stop_processes", lambda procs: procs)  # as if owned by another user
        with pytest.raises(EnvironmentNotReady) as info:
            reaper.check_leftovers(tmp_path)
        assert f"kill -9 {other.pid}" in str(info.value)
    finally:
        other.kill()
        other.wait()


def test_no_record_no_check(tmp_path):
    reaper.check_leftovers(tmp_path)  # a run that never started an engine
    assert not (tmp_path / reaper.PROCESSES_FILE).exists()
