"""Timeouts count a job's own time, so lending the slots of long jobs changes no verdict.

With every worker busy and every slot lent, more jobs run than there are cores: a correct program
that needs 1-2.4 s of CPU then takes longer than the 3 s timeout of wall time, and still passes,
while programs that loop forever still time out. In both sandboxes.
"""

from __future__ import annotations

import os

from tests.integration.helpers import grade_rows

# Burns `cpu` seconds of this process's CPU time on the first call only, then runs the canonical solution.
BURN = """    import time as _time
    if not globals().setdefault("_burned", []):
        globals()["_burned"].append(1)
        _start = _time.process_time()
        while _time.process_time() - _start < {cpu}:
            pass
"""
HANG = "    while True:\n        pass\n"


def test_slow_correct_samples_pass_with_every_slot_lent(sandbox_kind, humaneval, tmp_path):
    workers = os.cpu_count() or 2
    tasks = humaneval.tasks
    slow = {tasks[0].task_id: 2.4, tasks[1].task_id: 1.0}
    # The pool runs at most 2 x workers jobs at once: two slow ones and enough hangs to fill the rest.
    hangs = [t.task_id for t in tasks[2 : 2 * workers + 2]]
    quick = tasks[2 * workers + 2 : 2 * workers + 32]
    rows = [
        {"task_id": t, "completion": BURN.format(cpu=cpu) + humaneval.by_id[t].canonical_solution}
        for t, cpu in slow.items()
    ]
    rows += [{"task_id": t, "completion": HANG} for t in hangs]
    rows += [{"task_id": t.task_id, "completion": t.canonical_solution} for t in quick]
    results, samples = grade_rows(humaneval, rows, tmp_path / "run", sandbox_kind, timeout_s=3.0, workers=workers)
    by_task = {s["task_id"]: s for s in samples}

    for task_id in slow:
        assert by_task[task_id]["status"] == "passed", by_task[task_id]
    # The slots were shared: the 2.4 s program took longer than the timeout of wall time (a wall-clock
    # deadline would have killed it) ...
    assert by_task[tasks[0].task_id]["duration_s"] > 3.0, by_task[tasks[0].task_id]
    # ... and the loops ran to their own 3 s, most of them waiting for a CPU on the way.
    for task_id in hangs:
        assert by_task[task_id]["status"] == "timeout", by_task[task_id]
    assert any("waiting for a CPU" in by_task[t]["detail"] for t in hangs)
    assert all(by_task[t.task_id]["status"] == "passed" for t in quick)
    sandbox = results["provenance"]["sandbox"]
    assert sandbox["jobs_lent"] >= len(slow) + len(hangs) and sandbox["extra_instances"] == workers
