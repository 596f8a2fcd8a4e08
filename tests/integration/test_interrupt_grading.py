"""Ctrl-C while programs are running in the Docker sandbox: the run stops in seconds (not after the
programs' timeouts), says how to resume, leaves no container, and records no verdict for what it stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from harness.sandbox.docker import docker_client
from harness.sandbox.prune import RUN_DIR
from tests.conftest import write_jsonl

pytestmark = pytest.mark.docker
LOOP = "    while True:\n        pass\n"


def _containers(run_dir) -> list:
    # The low-level list: the high-level one inspects each container and fails on one removed meanwhile.
    return docker_client().api.containers(all=True, filters={"label": f"{RUN_DIR}={run_dir}"})


@pytest.mark.parametrize("signals", [1, 2])
def test_ctrl_c_during_grading_stops_now_and_leaves_nothing(humaneval, tmp_path, signals):
    ok = [{"task_id": "HumanEval/0", "completion": humaneval.by_id["HumanEval/0"].canonical_solution}]
    loops = [{"task_id": f"HumanEval/{i}", "completion": LOOP} for i in (1, 2)]
    f = write_jsonl(tmp_path / "s.jsonl", ok + loops)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "harness", "evaluate", "humaneval", str(f), "--out", str(out), "--timeout", "60"]
    proc = subprocess.Popen([*cmd, "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_containers(out.resolve())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    # The two loops start first and lend their slots after 6 s (a tenth of the timeout); the correct
    # sample then runs on an extra instance. Its verdict is written before the interrupt, the loops' never.
    while not (out / "samples.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers(out.resolve()), "the sandbox never started"
    t0 = time.monotonic()
    for _ in range(signals):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.1)
    _, err = proc.communicate(timeout=60)
    stopped_in = time.monotonic() - t0
    assert proc.returncode == 130 and "interrupted (SIGINT)" in err and "Traceback" not in err, err
    assert err.count("SIGINT received; stopping") == 1, err
    assert stopped_in < 20, f"took {stopped_in:.1f} s: the run waited for the programs' 60 s timeouts"
    deadline = time.monotonic() + 30
    while _containers(out.resolve()) and time.monotonic() < deadline:  # removal is asynchronous after kill
        time.sleep(0.5)
    assert _containers(out.resolve()) == []
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    # Stopped programs are ungraded, not failures: the one verdict is the correct sample's.
    assert [(r["task_id"], r["status"]) for r in rows] == [("HumanEval/0", "passed")], rows


def test_kill_9_mid_job_ends_the_runner_with_it(humaneval, tmp_path):
    """The harness killed while its programs loop (60 s timeout): each container's runner sees the
    connection close and ends the job and itself, so the engine removes the containers in seconds."""
    import os

    loops = [{"task_id": f"HumanEval/{i}", "completion": LOOP} for i in (1, 2)]
    f = write_jsonl(tmp_path / "s.jsonl", loops)
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "harness", "evaluate", "humaneval", str(f), "--out", str(out), "--timeout", "60"]
    proc = subprocess.Popen([*cmd, "-j", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_containers(out.resolve())) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the looping programs are running
    assert len(_containers(out.resolve())) == 2, "the sandbox never started"  # (the check sees them)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    t0 = time.monotonic()
    while _containers(out.resolve()) and time.monotonic() - t0 < 20:
        time.sleep(0.2)
    assert _containers(out.resolve()) == [], "the runners waited for their jobs' 60 s timeout"
