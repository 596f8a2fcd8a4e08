"""Resume after kill -9, and sandbox deaths: replaced and retried, or infra_error, never failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import write_jsonl
from tests.integration.helpers import grade_rows, runner_processes


def _canonical_rows(bench, copies: int) -> list[dict]:
    return [{"task_id": t.task_id, "completion": t.canonical_solution} for _ in range(copies) for t in bench.tasks]


def test_kill_9_during_grading_then_resume(sandbox_kind, humaneval, tmp_path):
    samples = write_jsonl(tmp_path / "s.jsonl", _canonical_rows(humaneval, 5))
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "evaluate",
        "humaneval",
        str(samples),
        "--out",
        str(out),
        "--sandbox",
        sandbox_kind,
        "--workers",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, start_new_session=True)
    store = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.exists() and len(store.read_bytes().splitlines()) >= 150:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(store.read_bytes().splitlines())
    assert 150 <= partial < 820, partial
    assert not (out / "results.json").exists()
    time.sleep(1.0)
    assert runner_processes() == [], "sandbox runners outlived a killed harness"
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    keys = [(r["task_id"], r["sample_id"]) for r in rows]
    assert len(rows) == 820 and len(set(keys)) == 820
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["pass@1"] == 1.0 and results["complete"]
    assert results["provenance"]["resumed_from_store"] >= partial - 1
    assert results["provenance"]["graded_this_session"] == 820 - results["provenance"]["resumed_from_store"]
    # A third run has nothing to grade and changes nothing.
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0
    assert json.loads((out / "results.json").read_text())["provenance"]["graded_this_session"] == 0
    assert [json.loads(line) for line in store.read_text().splitlines()] == rows


def _kill_containers(stop: threading.Event, once: bool) -> None:
    from harness.sandbox.docker import LABEL, docker_client

    client = docker_client()
    while not stop.is_set():
        killed = False
        for c in client.containers.list(filters={"label": LABEL}):
            try:
                c.kill()
                killed = True
            except Exception:
                pass
        if killed and once:
            return
        time.sleep(0.05)


@pytest.mark.docker
def test_dead_container_is_replaced_and_job_retried(humaneval, tmp_path):
    slow = "    import time\n    time.sleep(0.3)\n"
    rows = [{"task_id": t.task_id, "completion": slow + t.canonical_solution} for t in humaneval.tasks[:6]]
    stop = threading.Event()
    killer = threading.Thread(target=_kill_containers, args=(stop, True))
    killer.start()
    results, samples = grade_rows(humaneval, rows, tmp_path / "run", "docker", timeout_s=10.0)
    stop.set()
    killer.join()
    assert [s["status"] for s in samples] == ["passed"] * 6, samples
    assert results["provenance"]["sandbox"]["instances_replaced"] >= 1
    assert any(s["attempts"] == 2 for s in samples)


@pytest.mark.docker
def test_sandbox_that_keeps_dying_gives_infra_error_then_resume_completes(humaneval, tmp_path):
    slow = "    import time\n    time.sleep(0.5)\n"
    rows = [{"task_id": t.task_id, "completion": slow + t.canonical_solution} for t in humaneval.tasks[:4]]
    stop = threading.Event()
    killer = threading.Thread(target=_kill_containers, args=(stop, False))
    killer.start()
    try:
        results, samples = grade_rows(humaneval, rows, tmp_path / "run", "docker", timeout_s=10.0)
    finally:
        stop.set()
        killer.join()
    assert {s["status"] for s in samples} == {"infra_error"}, samples
    assert results["complete"] is False and results["counts"]["infra_error"] == 4
    assert results["counts"]["failed"] == 0 and "pass@1" not in results["metrics"]
    results, samples = grade_rows(humaneval, rows, tmp_path / "run", "docker", timeout_s=10.0)
    assert results["complete"] and [s["status"] for s in samples] == ["passed"] * 4
    assert results["provenance"]["graded_this_session"] == 4
