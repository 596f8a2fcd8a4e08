"""The check that no sandbox runner outlived the harness (helpers.runner_processes) can fail: a live
runner, and a job forked by it, are found on the host in both sandboxes, and are gone once closed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.records import ExecJob, ExecResult, Status
from harness.sandbox import make_sandbox
from harness.sandbox.base import Instance, Sandbox, is_runner_cmdline, runner_command
from tests.integration.helpers import process_tree, runner_processes

KINDS = [pytest.param("docker", marks=pytest.mark.docker), pytest.param("bwrap", marks=pytest.mark.bwrap)]


def _root_pid(sandbox: Sandbox, inst: Instance) -> int:
    """Host pid of the process at the top of one instance: the container's PID 1, or the bwrap process."""
    if sandbox.kind == "docker":
        return int(sandbox.client.api.inspect_container(inst.container_id)["State"]["Pid"])
    return inst.channel.proc.pid


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # exited meanwhile
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("kind", KINDS)
def test_a_live_runner_and_its_job_are_seen_and_gone_after_close(kind: str) -> None:
    sandbox = make_sandbox(kind, 1)
    inst = sandbox.start_instance()
    seen: set[int] = set()
    try:
        root = _root_pid(sandbox, inst)
        seen = set(runner_processes()) & process_tree(root)
        # What a leftover runner would look like: the check finds it (docker: the container's python,
        # PID 1 in there; bwrap: the bwrap process and the runner python it started, PID 1 in its namespace).
        assert root in seen, (root, seen)
        if kind == "docker":
            runner = root
        else:
            under = [p for p in seen if _ppid(p) == root]
            assert len(under) == 1, seen
            runner = under[0]

        # A job in flight is a fork of the runner, and is seen too (containment tests rely on it).
        job = ExecJob("t", 0, "import time\ntime.sleep(3)\n", "x", timeout_s=10.0)
        answer: list[ExecResult] = []
        t = threading.Thread(target=lambda: answer.append(inst.execute(job)))
        t.start()

        def forks() -> set[int]:
            return {p for p in runner_processes() if _ppid(p) == runner}

        assert _wait_for(lambda: bool(forks()), timeout=5.0), "the job's process was not seen"
        seen |= forks()
        t.join()
        assert answer and answer[0].status is Status.PASSED, answer
    finally:
        inst.close()
        sandbox.cleanup()
    assert _wait_for(lambda: not set(runner_processes()) & seen, timeout=15.0), set(runner_processes()) & seen


@pytest.mark.unit
def test_the_marker_matches_only_a_runner_command_line() -> None:
    """The runner's own command line (and bwrap's, which ends with it) match; a mention of the marker does not."""

    def cmdline(argv: list[str]) -> bytes:
        return b"".join(a.encode() + b"\0" for a in argv)

    runner = runner_command("python3")
    assert is_runner_cmdline(cmdline(runner))
    assert is_runner_cmdline(cmdline(["bwrap", "--unshare-all", "--as-pid-1", *runner]))
    assert not is_runner_cmdline(cmdline(["grep", "-r", runner[-1]]))
    assert not is_runner_cmdline(b"")
