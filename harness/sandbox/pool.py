"""The grading pool: runs jobs on warm sandbox instances, `workers` at a time.

A job that runs long (past base.lend_after_s) is probably looping until its timeout: it keeps its
instance but lends its slot, and one of up to `workers` extra threads, each with its own instance
started when first needed, runs the next job meanwhile. Verdicts do not depend on this: the runner
times a job on its own time (wall time minus time spent waiting for a CPU), so a slow but correct
program is not timed out because a lent slot shared its core.

An instance that dies is replaced and its job retried once; what still fails is `infra_error`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness.errors import SandboxDied
from harness.records import ExecJob, ExecResult, Status
from harness.sandbox.base import Instance, Sandbox


@dataclass
class PoolStats:
    replaced: int = 0
    retried: int = 0
    lent: int = 0  # jobs that ran long enough to lend their slot
    extra_instances: int = 0  # instances started by the extra threads
    runner_info: dict = field(default_factory=dict)


class _Slots:
    """`workers` slots for jobs that run at full speed, and the slots long jobs lent.

    A core thread keeps its slot from one job to its next. An extra thread runs a job only on a
    lent slot (so it never starts an instance for nothing) and only when no core thread waits: a
    core thread whose long job ended takes back the next free slot.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.busy = 0  # jobs running at full speed
        self.lent = 0  # long jobs still running after they lent their slot
        self.extras = 0  # jobs the extra threads are running
        self.core_waiting = 0
        self.cond = threading.Condition()

    def take(self, core: bool, stop: threading.Event) -> bool:
        with self.cond:
            self.core_waiting += core
            try:
                while not stop.is_set():
                    free = self.busy < self.workers
                    if free and (core or (self.core_waiting == 0 and self.extras < self.lent)):
                        self.busy += 1
                        self.extras += not core
                        return True
                    self.cond.wait(0.2)
                return False
            finally:
                self.core_waiting -= core

    def lend(self) -> None:
        """The job has run long: its slot is free for another job while it goes on."""
        with self.cond:
            self.busy -= 1
            self.lent += 1
            self.cond.notify_all()

    def give(self, core: bool, lent: bool) -> None:
        """The job ended (or none was left to take)."""
        with self.cond:
            if lent:
                self.lent -= 1
            else:
                self.busy -= 1
            self.extras -= not core
            self.cond.notify_all()


def _order(jobs: Iterable[ExecJob]) -> list[ExecJob]:
    """Likely loopers first, then the longest programs first.

    A job that runs to its timeout at the end of the run leaves cores idle while it finishes;
    started early, it overlaps with the rest. Most real timeouts are `while` loops; the longest
    programs (HumanEval+'s largest tests) tend to run longest. Verdicts do not depend on order.
    """
    return sorted(jobs, key=lambda j: ("while " not in j.program, -len(j.program)))


def run_pool(
    sandbox: Sandbox,
    jobs: Iterable[ExecJob],
    on_result: Callable[[ExecJob, ExecResult, int], None],
    stop: threading.Event | None = None,
) -> PoolStats:
    """Run every job on warm instances, `sandbox.workers` at full speed; call on_result(job, result, attempts).

    on_result is called from the caller's thread, in completion order. A job whose instance
    dies is retried once on a fresh instance; if that fails too it is reported as infra_error.
    """
    stop = stop or threading.Event()
    todo: queue.Queue[ExecJob] = queue.Queue()
    done: queue.Queue[tuple[ExecJob, ExecResult, int] | BaseException] = queue.Queue()
    ordered = _order(jobs)
    for job in ordered:
        todo.put(job)
    n_jobs = len(ordered)
    stats = PoolStats()
    lock = threading.Lock()
    workers = min(sandbox.workers, n_jobs)
    slots = _Slots(workers)

    def run_one(inst: Instance | None, job: ExecJob, on_long: Callable[[], None], core: bool):
        """One job with its retry; returns (instance to keep, result or None if stopped, attempts)."""
        attempts, result, failure = 0, None, ""
        while attempts < 2 and result is None and not stop.is_set():
            attempts += 1
            try:
                if inst is None:
                    inst = sandbox.start_instance()
                    with lock:
                        stats.runner_info = inst.info
                        stats.extra_instances += not core
                result = inst.execute(job, on_long=on_long)
            except SandboxDied as e:
                failure = str(e)
                if inst is not None:
                    inst.close()
                    inst = None
                with lock:
                    stats.replaced += 1  # died while starting or while running a job
                    stats.retried += attempts < 2
        if result is None and not stop.is_set():
            result = ExecResult(Status.INFRA_ERROR, 0.0, f"sandbox failed twice: {failure}"[:500])
        return inst, result, attempts

    def worker(core: bool) -> None:
        # The instance stays with the thread that started it: bwrap's --die-with-parent is tied to it.
        inst: Instance | None = None
        try:
            while slots.take(core, stop):
                lent = threading.Event()

                def lend(lent: threading.Event = lent) -> None:
                    if not lent.is_set():  # once per job, whatever the attempts
                        lent.set()
                        slots.lend()
                        with lock:
                            stats.lent += 1

                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    slots.give(core, False)
                    return
                try:
                    inst, result, attempts = run_one(inst, job, lend, core)
                finally:
                    slots.give(core, lent.is_set())
                if result is None:
                    return  # stopped (interrupted): the job stays ungraded, never an infra error
                done.put((job, result, attempts))
        except BaseException as e:  # surfaced in the caller's thread
            done.put(e)
        finally:
            if inst is not None:
                inst.close()

    threads = [
        threading.Thread(target=worker, args=(i < workers,), daemon=True, name=f"sandbox-{i}")
        for i in range(2 * workers)
    ]
    for t in threads:
        t.start()
    received = 0
    try:
        while received < n_jobs:
            try:
                item = done.get(timeout=0.5)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and done.empty():
                    break
                continue
            if isinstance(item, BaseException):
                raise item
            received += 1
            on_result(*item)
    except BaseException:
        # Interrupted (or on_result failed): end the jobs in flight now rather than wait for their timeouts;
        # their instances die, and with `stop` set nothing is retried or reported. No join: a second
        # interrupt during this clean-up must stop at once.
        stop.set()
        sandbox.cleanup()
        raise
    stop.set()
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    sandbox.cleanup()
    return stats
