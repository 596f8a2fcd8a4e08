"""kill -9 in the middle of a multi-instance agent run, then --resume: every instance ends exactly once,
finished ones are not rerun, in-flight ones restart from a clean container, no container is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.integration import swebench_local
from tests.integration.agent_helpers import REPO, ScriptedAgent, agent_config, agent_containers, copies, harness, rows

pytestmark = [pytest.mark.swebench, pytest.mark.docker]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_then_resume_ends_every_instance_exactly_once(local, tmp_path):
    import docker

    client = docker.from_env()
    dataset = copies(local, tmp_path, 3)
    agent = ScriptedAgent("tools")
    run = tmp_path / "runs" / "r"
    # Instance 1 answers fast and finishes first; 2 and 3 (1.5 s more per turn) are mid-trajectory at the kill.
    with FakeOpenAI(answer=agent.answer, latency_s=0.3) as srv:
        cfg = agent_config(tmp_path, srv.base_url, dataset, "tools", workers=3)
        slow = {f"harness__calc-{i}": 1.5 for i in (2, 3)}

        def answer(body):
            from tests.integration.agent_helpers import instance_of

            time.sleep(slow.get(instance_of(body), 0.0))
            return agent.answer(body)

        srv.answer = answer
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "generate", str(cfg), "--out", str(run.parent), "--run-id", "r"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait(lambda: (run / "generations.jsonl").exists() and rows(run), 120, "the first finished instance")
            _wait(lambda: len(agent_containers(client, run)) >= 2, 30, "two instances in flight")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        before = rows(run)
        assert len(before) == 1, before  # exactly one instance had finished
        done = before[0]["task_id"]
        left = agent_containers(client, run)
        assert len(left) >= 2, "the killed run's in-flight containers are still there (no one removed them)"
        _wait(lambda: srv.in_flight == 0, 10, "the dead run's last requests to be answered")
        turns_before = len(agent.turns)
        p = harness("generate", "--resume", str(run))
        assert p.returncode == 0, p.stderr
    after = rows(run)
    ids = [r["task_id"] for r in after]
    assert sorted(ids) == ["harness__calc-1", "harness__calc-2", "harness__calc-3"]  # each exactly once
    assert all(r["info"]["status"] == "submitted" for r in after)
    resumed = agent.turns[turns_before:]
    assert done not in {iid for iid, _ in resumed}  # the finished instance was not rerun
    for iid in set(ids) - {done}:  # the in-flight ones started again from turn 0 (a clean container)
        assert next(n for i, n in resumed if i == iid) == 0
    assert all("return a + b" in r["code"] for r in after)
    assert agent_containers(client, run) == []  # the dead run's containers were swept, the resumed run's removed


def test_ctrl_c_stops_the_agent_run_and_removes_its_containers(local, tmp_path):
    import docker

    client = docker.from_env()
    dataset = copies(local, tmp_path, 2)
    agent = ScriptedAgent("tools")
    run = tmp_path / "runs" / "r"
    with FakeOpenAI(answer=agent.answer, latency_s=20.0) as srv:
        cfg = agent_config(tmp_path, srv.base_url, dataset, "tools", workers=2)
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "run", str(cfg), "--out", str(run.parent), "--run-id", "r"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait(lambda: len(agent_containers(client, run)) == 2, 60, "both instances in flight")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            stopped_in = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert stopped_in < 15, stopped_in
    assert agent_containers(client, run) == []
    assert not (run / "generations.jsonl").exists() or rows(run) == []  # nothing finished, nothing recorded
    assert "--resume" in err
