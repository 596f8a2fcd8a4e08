"""The grading pool (sandbox.base.run_pool) with scripted runners: no Docker, no bwrap.

The real Instance and the real Channel line framing are used; only the runner at the other end of
the channel is scripted. A job's program names what its runner does on each attempt:
"pass", "fail", "die" (the runner exits mid-job), or "hold" (waits on the test's gate first).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from harness.errors import EnvironmentNotReady, SandboxDied
from harness.records import ExecJob, ExecResult, Status
from harness.sandbox.base import Channel, Instance, Sandbox
from harness.sandbox.pool import PoolStats, run_pool

pytestmark = pytest.mark.unit

EOF = object()  # put on a channel's queue: the runner's end of the stream


class ScriptedChannel(Channel):
    """The harness's side of a channel to a scripted runner: `sandbox.answer` plays the runner."""

    def __init__(self, sandbox: FakeSandbox) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.inbox: queue.Queue[bytes | object] = queue.Queue()
        self.closed = False
        self.inbox.put(json.dumps({"ready": True, "pid": 1}).encode() + b"\n")

    def send(self, data: bytes) -> None:
        if self.closed:
            raise SandboxDied("send on a closed channel")
        msg = json.loads(data)
        if "limits" in msg:
            return
        # Answer from another thread, so the harness really waits in recv_line as it does on a real runner.
        threading.Thread(target=self.sandbox.answer, args=(self, msg), daemon=True).start()

    def _read_some(self, timeout: float) -> bytes:
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return b""
        if item is EOF:
            raise SandboxDied("runner exited (scripted)")
        assert isinstance(item, bytes)
        return item

    def close(self) -> None:
        self.closed = True
        self.sandbox.note_close()


class FakeSandbox(Sandbox):
    """Starts scripted instances and records what the pool did with them."""

    kind = "fake"

    def __init__(self, workers: int, start_failures: int = 0, on_execute: Callable[[str], None] | None = None) -> None:
        super().__init__(workers)
        self.lock = threading.Lock()
        self.started = 0
        self.closed = 0
        self.cleanups = 0
        self.start_failures = start_failures  # the first N start_instance calls raise SandboxDied
        self.attempts: Counter[str] = Counter()  # program -> times a runner received it
        self.executed: list[str] = []
        self.active = 0
        self.max_active = 0
        self.gate = threading.Event()
        self.on_execute = on_execute

    def check(self) -> None:
        return None

    def start_instance(self) -> Instance:
        with self.lock:
            self.started += 1
            if self.start_failures > 0:
                self.start_failures -= 1
                raise SandboxDied("container could not start (scripted)")
        return Instance(ScriptedChannel(self), self.limits, use_nproc=False, start_timeout=5.0)

    def cleanup(self) -> None:
        with self.lock:
            self.cleanups += 1

    def running(self) -> int:
        """Jobs the scripted runners are executing now."""
        with self.lock:
            return self.active

    def note_close(self) -> None:
        with self.lock:
            self.closed += 1

    def answer(self, channel: ScriptedChannel, msg: dict) -> None:
        """Play the runner for one job message: act on the program's script, then answer or hang up."""
        program = msg["program"]
        with self.lock:
            n = self.attempts[program]
            self.attempts[program] += 1
            self.executed.append(program)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        if self.on_execute:
            self.on_execute(program)
        script = program.split("#")[0].split(",")
        action = script[min(n, len(script) - 1)]
        if action == "hold":
            self.gate.wait(timeout=10)
            action = "pass"
        with self.lock:
            self.active -= 1
        if action == "die":
            channel.inbox.put(EOF)
            return
        status = {"pass": "passed", "fail": "failed"}[action]
        res = {"id": msg["id"], "status": status, "duration_s": 0.01, "detail": action, "output": ""}
        channel.inbox.put(json.dumps(res).encode() + b"\n")


def job(script: str, name: str, timeout_s: float = 5.0) -> ExecJob:
    """A job whose runner follows `script` ("die,pass": dies on the first attempt, passes on the second).

    A job still running after lend_after_s(timeout_s) (0.5 s for 5 s) lends its slot.
    """
    program = f"{script}#{name}"
    return ExecJob(task_id=name, sample_id=0, program=program, program_sha256=name, timeout_s=timeout_s)


def run(
    sandbox: FakeSandbox, jobs: list[ExecJob], **kw: Any
) -> tuple[list[tuple[ExecJob, ExecResult, int]], PoolStats]:
    """run_pool on `jobs`; returns every on_result call, in order, and the pool's stats."""
    got: list[tuple[ExecJob, ExecResult, int]] = []
    stats = run_pool(sandbox, jobs, lambda j, r, a: got.append((j, r, a)), **kw)
    return got, stats


def test_every_job_gets_exactly_one_result() -> None:
    jobs = [job("pass", f"p{i}") for i in range(7)] + [job("fail", f"f{i}") for i in range(5)]
    sandbox = FakeSandbox(workers=3)
    got, stats = run(sandbox, jobs)
    assert Counter(j.key for j, _, _ in got) == Counter(j.key for j in jobs)
    by_name = {j.task_id: (r, a) for j, r, a in got}
    assert all(by_name[f"p{i}"][0].status is Status.PASSED for i in range(7))
    assert all(by_name[f"f{i}"][0].status is Status.FAILED for i in range(5))
    assert {a for _, a in by_name.values()} == {1}
    assert (stats.replaced, stats.retried) == (0, 0)
    assert stats.runner_info == {"ready": True, "pid": 1}
    # Warm instances are reused (at most one per worker, not one per job), each is closed at the end,
    # and cleanup runs once. (Fewer than 3 may start if one worker drains the queue before another begins.)
    assert 1 <= sandbox.started <= 3 and sandbox.closed == sandbox.started and sandbox.cleanups == 1


def test_a_died_instance_is_replaced_and_its_job_retried() -> None:
    jobs = [job("die,pass", "flaky")] + [job("pass", f"p{i}") for i in range(4)]
    sandbox = FakeSandbox(workers=2)
    got, stats = run(sandbox, jobs)
    results = {j.task_id: (r, a) for j, r, a in got}
    assert len(got) == 5
    assert results["flaky"][0].status is Status.PASSED and results["flaky"][1] == 2
    assert all(results[f"p{i}"] == (results[f"p{i}"][0], 1) for i in range(4))
    assert all(results[f"p{i}"][0].status is Status.PASSED for i in range(4))
    assert sandbox.attempts["die,pass#flaky"] == 2
    assert (stats.replaced, stats.retried) == (1, 1)
    # At most one instance per worker plus the replacement; every one closed.
    assert 2 <= sandbox.started <= 3 and sandbox.closed == sandbox.started


def test_an_instance_that_fails_to_start_counts_as_replaced_and_the_job_runs() -> None:
    sandbox = FakeSandbox(workers=1, start_failures=1)
    got, stats = run(sandbox, [job("pass", "a")])
    assert [(r.status, a) for _, r, a in got] == [(Status.PASSED, 2)]
    assert (stats.replaced, stats.retried) == (1, 1)
    assert sandbox.started == 2 and sandbox.closed == 1


def test_a_job_whose_instance_keeps_dying_is_infra_error_never_failed() -> None:
    # run_pool makes at most 2 attempts per job; the third scripted action is never reached.
    jobs = [job("die,die,pass", "doomed"), job("pass", "ok")]
    sandbox = FakeSandbox(workers=1)
    got, stats = run(sandbox, jobs)
    results = {j.task_id: (r, a) for j, r, a in got}
    doomed, attempts = results["doomed"]
    assert doomed.status is Status.INFRA_ERROR and doomed.status is not Status.FAILED
    assert attempts == 2 and sandbox.attempts["die,die,pass#doomed"] == 2
    assert doomed.detail.startswith("sandbox failed twice") and "runner exited (scripted)" in doomed.detail
    assert results["ok"][0].status is Status.PASSED  # the next job gets a fresh instance
    assert (stats.replaced, stats.retried) == (2, 1)
    assert sandbox.started == 3 and sandbox.closed == 3


def test_stop_set_before_the_run_dispatches_nothing() -> None:
    stop = threading.Event()
    stop.set()
    sandbox = FakeSandbox(workers=2)
    got, _ = run(sandbox, [job("pass", f"p{i}") for i in range(4)], stop=stop)
    assert got == [] and sandbox.started == 0 and sandbox.executed == []
    assert sandbox.cleanups == 1


def test_stop_set_during_a_job_lets_it_finish_and_dispatches_no_more() -> None:
    stop = threading.Event()

    def stop_on_first(program: str) -> None:
        if "#first" in program:
            stop.set()

    # run_pool dispatches the longest program first, so the long name makes this job the first one.
    first = job("pass", "first" + "_" * 40)
    rest = [job("pass", f"r{i}") for i in range(5)]
    sandbox = FakeSandbox(workers=1, on_execute=stop_on_first)
    got, _ = run(sandbox, [*rest, first], stop=stop)
    assert [(j.task_id, r.status) for j, r, _ in got] == [(first.task_id, Status.PASSED)]
    assert sandbox.executed == [first.program]
    assert sandbox.closed == sandbox.started == 1


def test_workers_bound_the_jobs_running_at_once() -> None:
    workers = 3
    sandbox = FakeSandbox(workers=workers)
    jobs = [job("hold", f"h{i}", timeout_s=600.0) for i in range(10)]  # none runs long enough to lend
    result: list[tuple[list, PoolStats]] = []
    t = threading.Thread(target=lambda: result.append(run(sandbox, jobs)), daemon=True)
    t.start()

    # Every worker reaches a job and holds; no further job may start while they hold.
    deadline = time.monotonic() + 5
    while sandbox.running() < workers and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room for a pool that ignored `workers` to start a fourth job
    assert sandbox.running() == workers and len(sandbox.executed) == workers
    sandbox.gate.set()
    t.join(timeout=10)
    got, stats = result[0]
    assert len(got) == 10 and sandbox.max_active == workers
    assert sandbox.started == workers and (stats.lent, stats.extra_instances) == (0, 0)


def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_long_job_lends_its_slot_and_the_others_finish_meanwhile() -> None:
    sandbox = FakeSandbox(workers=1)
    long_job = job("hold", "long" + "_" * 40, timeout_s=2.5)  # lends after 0.25 s; dispatched first (longest)
    quick = [job("pass", f"q{i}") for i in range(6)]
    got: list[tuple[ExecJob, ExecResult, int]] = []
    result: list[PoolStats] = []
    t = threading.Thread(
        target=lambda: result.append(run_pool(sandbox, [*quick, long_job], lambda *r: got.append(r))), daemon=True
    )
    t.start()
    # With one worker and the long job holding, the quick ones can only finish on a lent slot.
    assert _until(lambda: len(got) == 6), got
    assert {j.task_id for j, _, _ in got} == {j.task_id for j in quick}
    sandbox.gate.set()
    t.join(timeout=10)
    assert [j.task_id for j, _, _ in got][-1] == long_job.task_id and len(got) == 7
    stats = result[0]
    assert stats.lent == 1 and stats.extra_instances == 1
    assert sandbox.started == 2 and sandbox.max_active == 2 and sandbox.closed == 2


def test_lent_slots_are_bounded_by_the_extra_threads() -> None:
    workers = 2
    sandbox = FakeSandbox(workers=workers)
    jobs = [job("hold", f"h{i}", timeout_s=2.5) for i in range(8)] + [job("pass", f"p{i}") for i in range(4)]
    result: list[tuple[list, PoolStats]] = []
    t = threading.Thread(target=lambda: result.append(run(sandbox, jobs)), daemon=True)
    t.start()

    # Every thread holds a long job, every slot is lent, and nothing more starts: 2 x workers at most.
    assert _until(lambda: sandbox.running() == 2 * workers)
    time.sleep(0.6)  # past the lending time of the last ones started
    assert sandbox.running() == 2 * workers and len(sandbox.executed) == 2 * workers
    sandbox.gate.set()
    t.join(timeout=20)
    got, stats = result[0]
    assert len(got) == 12 and sandbox.max_active == 2 * workers
    assert sandbox.started == 2 * workers and stats.extra_instances == workers


def test_extra_threads_run_only_on_lent_slots_and_give_way_to_core_threads() -> None:
    from harness.sandbox.pool import _Slots

    stop = threading.Event()
    slots = _Slots(2)
    assert slots.take(True, stop)  # one core thread runs a job; the other slot is free but not lent
    extra_got, core_got, second_extra_got = threading.Event(), threading.Event(), threading.Event()
    threading.Thread(target=lambda: slots.take(False, stop) and extra_got.set(), daemon=True).start()
    assert not extra_got.wait(0.3)  # a free slot is not a lent one: no extra instance for nothing
    slots.lend()  # the job runs long
    assert extra_got.wait(2)
    assert slots.take(True, stop)  # the second core thread takes the free slot
    slots.give(True, True)  # the long job ends; its thread wants a slot back
    threading.Thread(target=lambda: slots.take(True, stop) and core_got.set(), daemon=True).start()
    threading.Thread(target=lambda: slots.take(False, stop) and second_extra_got.set(), daemon=True).start()
    assert _until(lambda: slots.core_waiting == 1)
    slots.give(False, False)  # the extra thread's job ends
    assert core_got.wait(2) and not second_extra_got.wait(0.3)
    stop.set()


def test_a_job_lends_its_slot_once_whatever_its_attempts() -> None:
    # A long job whose instance dies after it lent its slot, retried and long again, lends once:
    # a second lend would free a slot that is not there.
    def slow(program: str) -> None:
        if "#long" in program:
            time.sleep(0.4)  # past the 0.25 s lending time, on both attempts

    sandbox = FakeSandbox(workers=1, on_execute=slow)
    got, stats = run(sandbox, [job("die,pass", "long", timeout_s=2.5), *[job("pass", f"q{i}") for i in range(3)]])
    assert len(got) == 4 and stats.retried == 1
    assert stats.lent == 1


def test_likely_loopers_are_dispatched_first() -> None:
    from harness.sandbox.pool import _order

    jobs = [job("pass", "a" * 30), job("pass", "while b"), job("pass", "c" * 10), job("pass", "while dddd")]
    assert [j.task_id for j in _order(jobs)] == ["while dddd", "while b", "a" * 30, "c" * 10]


def test_an_error_that_is_not_a_sandbox_death_reaches_the_caller() -> None:
    class Broken(FakeSandbox):
        def start_instance(self) -> Instance:
            raise EnvironmentNotReady("no engine")

    sandbox = Broken(workers=2)
    with pytest.raises(EnvironmentNotReady, match="no engine"):
        run(sandbox, [job("pass", "a"), job("pass", "b")])
    assert sandbox.cleanups == 1


class ChunkChannel(Channel):
    """A channel whose runner's bytes arrive in the given chunks, then nothing; None means end of stream."""

    def __init__(self, chunks: list[bytes | None]) -> None:
        super().__init__()
        self.chunks = chunks
        self.reads = 0

    def send(self, data: bytes) -> None:
        return None

    def _read_some(self, timeout: float) -> bytes:
        self.reads += 1
        if not self.chunks:
            time.sleep(timeout)
            return b""
        chunk = self.chunks.pop(0)
        if chunk is None:
            raise SandboxDied("runner exited (scripted)")
        return chunk

    def close(self) -> None:
        return None


def test_recv_line_frames_lines_across_and_within_chunks() -> None:
    ch = ChunkChannel([b'{"a"', b": 1}\n", b"", b'{"b": 2}\n{"c": 3}\npart'])
    assert ch.recv_line(1.0) == b'{"a": 1}'
    assert ch.recv_line(1.0) == b'{"b": 2}'
    reads = ch.reads
    assert ch.recv_line(1.0) == b'{"c": 3}'
    assert ch.reads == reads  # the second line of a chunk comes from the buffer, not another read
    with pytest.raises(SandboxDied, match="did not answer within 0 s"):
        ch.recv_line(0.05)  # "part" has no newline yet
    ch.chunks = [b"ial\n", None]
    assert ch.recv_line(1.0) == b"partial"  # the unfinished line was kept across the timeout
    with pytest.raises(SandboxDied, match="runner exited"):
        ch.recv_line(1.0)


def test_recv_line_notices_a_slow_answer_once() -> None:
    calls: list[float] = []
    ch = ChunkChannel([b"", b"", b"", b'{"a": 1}\n', b'{"b": 2}\n'])
    t0 = time.monotonic()
    assert ch.recv_line(5.0, notice=(0.0, lambda: calls.append(time.monotonic() - t0))) == b'{"a": 1}'
    assert len(calls) == 1  # called once although several reads came back empty
    assert ch.recv_line(5.0, notice=(10.0, lambda: calls.append(-1.0))) == b'{"b": 2}'
    assert len(calls) == 1  # an answer before the notice time: no call
