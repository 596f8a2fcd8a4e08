"""The runner's deadline is on a job's own time: wall time minus the time it waited for a CPU.

runner.run_job runs here without a sandbox (forked from the test process, as the runner forks its
jobs), with the run-queue wait it reads from /proc/PID/schedstat replaced where a test needs a
given amount of waiting.
"""

from __future__ import annotations

import os
import time

import pytest

from harness.sandbox import runner

pytestmark = pytest.mark.unit

HANG = "while True:\n    pass\n"
SLEEP = "import time\ntime.sleep(5)\n"


def _limits() -> dict:
    return {"_close_fds": (), "_devnull": os.open(os.devnull, os.O_RDWR), "_ctl": None, "_vm_base": 0}


def _run(program: str, timeout: float, max_wall: float) -> dict:
    result, cleanup = runner.run_job({"program": program, "timeout": timeout, "max_wall": max_wall}, _limits(), False)
    cleanup()
    return result


def test_the_wait_for_a_cpu_is_read_from_schedstat() -> None:
    waited = runner._run_delay(os.getpid())
    assert isinstance(waited, float) and waited >= 0
    assert runner._run_delay(2**22 + 12345) is None  # no such process


def _waited_of_child(nice: int) -> float | None:
    """runner._run_delay of a forked child that set its nice value and sleeps."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.nice(nice)
            os.write(w, b".")
            time.sleep(5)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert os.read(r, 1) == b"."  # the child has set its priority
        return runner._run_delay(pid)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(r)


def test_a_job_that_lowered_its_own_priority_is_timed_on_wall_time() -> None:
    # Its wait for a CPU is its own doing (os.nice, SCHED_IDLE): not discounted, or it would end as
    # "starved" (infra_error) instead of timing out.
    assert _waited_of_child(5) is None
    assert isinstance(_waited_of_child(0), float)


def test_without_waiting_a_loop_times_out_at_the_timeout(monkeypatch) -> None:
    monkeypatch.setattr(runner, "_run_delay", lambda pid: 0.0)
    res = _run(HANG, 0.3, 10.0)
    assert res["status"] == "timeout" and res["detail"] == "killed after 0.3 s"
    assert 0.3 <= res["duration_s"] < 1.0


def test_time_spent_waiting_for_a_cpu_extends_the_deadline(monkeypatch) -> None:
    monkeypatch.setattr(runner, "_run_delay", lambda pid: 0.5)
    res = _run(SLEEP, 0.3, 10.0)  # (a loop would reach the timeout in CPU first: its wait here is made up)
    assert res["status"] == "timeout" and "of its own time" in res["detail"] and "0.5 s waiting" in res["detail"]
    assert 0.8 <= res["duration_s"] < 1.5


def test_a_job_starved_until_max_wall_is_an_infrastructure_error(monkeypatch) -> None:
    monkeypatch.setattr(runner, "_run_delay", lambda pid: 100.0)
    res = _run(SLEEP, 0.3, 0.8)  # used no CPU: all its time went to waiting
    assert res["status"] == "infra_error" and res["detail"].startswith("starved:")
    assert 0.8 <= res["duration_s"] < 1.5


def test_a_job_whose_own_threads_compete_is_timed_on_the_cpu_it_used(monkeypatch) -> None:
    # Its main thread waits behind its own threads (as a fork bomb's waits behind its children), so
    # its own time never reaches the timeout; the CPU its threads used together does.
    monkeypatch.setattr(runner, "_run_delay", lambda pid: 100.0)
    spin = "import threading\ndef spin():\n    while True:\n        pass\n"
    spin += "for _ in range(2):\n    threading.Thread(target=spin, daemon=True).start()\nspin()\n"
    res = _run(spin, 0.3, 5.0)
    assert res["status"] == "timeout" and "its processes used" in res["detail"], res
    assert res["duration_s"] < 1.5


def test_sleeping_counts_as_the_jobs_own_time() -> None:
    res = _run(SLEEP, 0.3, 10.0)  # the real schedstat: a sleeper waits for no CPU
    assert res["status"] == "timeout" and res["duration_s"] < 1.0


def test_the_answer_comes_before_the_child_is_reaped_and_the_clean_up_reaps_it(monkeypatch) -> None:
    forked: list[int] = []
    fork = os.fork

    def recording_fork() -> int:
        pid = fork()
        forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    result, cleanup = runner.run_job({"program": "x = 1\n", "timeout": 3.0, "max_wall": 10.0}, _limits(), False)
    assert result["status"] == "passed"
    cleanup()
    with pytest.raises(ChildProcessError):
        os.waitpid(forked[0], os.WNOHANG)  # the job's child is gone and collected


def test_a_job_that_finished_while_the_runner_got_no_cpu_is_not_timed_out(monkeypatch) -> None:
    # The runner is held up right after the fork for longer than the timeout (a loaded machine);
    # meanwhile the program finished. Its report is read before the deadline is judged.
    pidfd_open = os.pidfd_open

    def held_up(pid: int) -> int:
        time.sleep(0.6)
        return pidfd_open(pid)

    monkeypatch.setattr(os, "pidfd_open", held_up)
    res = _run("x = 1\n", 0.3, 10.0)
    assert res["status"] == "passed", res
