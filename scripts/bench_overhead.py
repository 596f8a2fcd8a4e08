#!/usr/bin/env python3
"""Benchmark: where a HumanEval sample's grading time goes, from an in-process exec to `harness evaluate`.

    .venv/bin/python scripts/bench_overhead.py [--jobs N] [--rounds R] [--workers W]
        [--sandbox docker|bwrap|both] [--skip-evaluate]

Programs: the 164 canonical HumanEval programs, built as the benchmark builds them
(harness.benchmarks.humaneval.build_program), repeated to --jobs (default 1148, bench_exec's canonical mix size).
Stages (each the median of --rounds):
  1 in-process   compile + exec in this process, one after another (no isolation, no reliability guard)
  2 bare fork    fork; the child compiles + execs, writes a line on a pipe, _exits; the parent waits
  3 runner       the real runner without a sandbox (PipeChannel + Instance.execute), sequentially
  4/5 bwrap, docker   the runner in one sandbox instance, sequentially
  6 pool         run_pool with --workers instances and a no-op on_result (instance start-up included)
  7 evaluate     `harness evaluate humaneval FILE --sandbox K --workers W --quiet --out DIR` on --jobs samples;
                 start-up = the same command on a 1-sample file
Columns: wall ms/job; host CPU ms/job (this process, or for stage 7 the command's process tree as far as it
reaps it); job CPU ms/job (stage 2: the forked children; 3-5: the runner and the jobs it reaped, from
/proc/PID/stat); machine CPU ms/job and busy % from /proc/stat (everything on the machine, others' work
included); minor page faults per job on the job side (stage 1: this process); runner-reported duration_s;
!pass: jobs that did not pass (all should). Stage 7's samples file has --jobs rows, task i % 164 for row i.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from harness.benchmarks.humaneval import HumanEval, build_program
from harness.records import ExecJob
from harness.sandbox import make_sandbox
from harness.sandbox.base import Instance, Limits, runner_command
from harness.sandbox.pipes import PipeChannel

Metrics = dict[str, float]
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def programs(n: int) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(task_id, program) repeated to n, and each task's canonical completion."""
    tasks = HumanEval().tasks
    progs = [(t.task_id, build_program(t, completion=t.canonical_solution)) for t in tasks]
    return [progs[i % len(progs)] for i in range(n)], {t.task_id: t.canonical_solution for t in tasks}


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(vals) - vals[3] - vals[4], sum(vals)


def proc_stat(pid: int) -> tuple[float, int]:
    """(utime+stime+cutime+cstime in ms, minflt+cminflt) of a process: itself and the children it reaped."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) * TICK_MS, int(f[7]) + int(f[8])


def snapshot() -> tuple[resource.struct_rusage, resource.struct_rusage, tuple[int, int], float]:
    rus = resource.getrusage
    return rus(resource.RUSAGE_SELF), rus(resource.RUSAGE_CHILDREN), machine_busy(), time.perf_counter()


def cpu_ms(a: resource.struct_rusage, b: resource.struct_rusage) -> float:
    return (b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime) * 1000


def measured(n: int, body: Callable[[], Metrics]) -> Metrics:
    """Run body, adding wall, host CPU, machine CPU and busy % per job to the metrics it returns."""
    (r0, c0, (b0, t0), w0), m, (r1, c1, (b1, t1), w1) = snapshot(), body(), snapshot()
    m.setdefault("host_cpu", cpu_ms(r0, r1) / n)
    m["children_cpu"], m["wall"] = cpu_ms(c0, c1) / n, (w1 - w0) * 1000 / n
    m["self_faults"], m["children_faults"] = (r1.ru_minflt - r0.ru_minflt) / n, (c1.ru_minflt - c0.ru_minflt) / n
    m["busy"], m["machine_cpu"] = 100 * (b1 - b0) / max(1, t1 - t0), (b1 - b0) * TICK_MS / n
    return m


def in_process(progs: list[tuple[str, str]]) -> Metrics:
    failed = 0
    for _, prog in progs:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                exec(compile(prog, "<program>", "exec"), {})
        except BaseException:
            failed += 1
    return {"not_passed": failed}


def bare_fork(progs: list[tuple[str, str]]) -> Metrics:
    devnull, failed = os.open(os.devnull, os.O_RDWR), 0
    for _, prog in progs:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            try:
                exec(compile(prog, "<program>", "exec"), {})
                os.write(w, b"passed\n")
            except BaseException:
                os.write(w, b"failed\n")
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            failed += f.read() != b"passed\n"
        os.waitpid(pid, 0)
    os.close(devnull)
    return {"not_passed": failed}


def exec_jobs(progs: list[tuple[str, str]]) -> list[ExecJob]:
    return [ExecJob(t, i, p, hashlib.sha256(p.encode()).hexdigest(), 3.0) for i, (t, p) in enumerate(progs)]


def descendants(root: int) -> list[int]:
    """Processes below root, nearest first (from the ppid field of /proc/*/stat)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out, frontier = [], [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        out += frontier
    return out


def runner_pid(inst: Instance, sandbox: object | None) -> int:
    """The host pid of the runner process of an instance (not bwrap's monitor, not a job)."""
    if hasattr(inst, "container_id"):
        return int(sandbox.client.api.inspect_container(inst.container_id)["State"]["Pid"])  # type: ignore[attr-defined]
    root = inst.channel.proc.pid  # type: ignore[attr-defined]
    for pid in [root, *descendants(root)]:
        if "python" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().rsplit("/", 1)[-1]:
            return pid
    raise RuntimeError(f"no runner below pid {root}")


def sequential(progs: list[tuple[str, str]], kind: str, tmp: Path) -> Metrics:
    """One runner instance (no sandbox, bwrap or docker), one job after another; start-up not timed."""
    sandbox, t0 = None, time.perf_counter()
    if kind == "none":
        inst = Instance(PipeChannel(runner_command(sys.executable)), Limits(), use_nproc=True)
    else:
        sandbox = make_sandbox(kind, 1, Limits(), owner=str(tmp))
        inst = sandbox.start_instance()
    try:
        pid = runner_pid(inst, sandbox)
        jobs, durations, statuses = exec_jobs(progs), [], Counter()
        cpu0, flt0 = proc_stat(pid)

        def body() -> Metrics:
            for job in jobs:
                res = inst.execute(job)
                durations.append(res.duration_s)
                statuses[res.status.value] += 1
            time.sleep(0.05)  # the last job is reaped after its answer
            cpu1, flt1 = proc_stat(pid)
            return {"job_cpu": (cpu1 - cpu0) / len(jobs), "job_faults": (flt1 - flt0) / len(jobs)}

        start_s = time.perf_counter() - t0
        m = measured(len(jobs), body)
        m["start_s"] = start_s
    finally:
        inst.close()
        if sandbox is not None:
            sandbox.cleanup()
    m["duration"] = 1000 * statistics.fmean(durations)
    m["not_passed"] = len(jobs) - statuses["passed"]
    return m


def pool(progs: list[tuple[str, str]], kind: str, workers: int, tmp: Path) -> Metrics:
    from harness.sandbox.pool import run_pool

    statuses: Counter[str] = Counter()
    sandbox = make_sandbox(kind, workers, Limits(), owner=str(tmp))
    jobs = exec_jobs(progs)

    def body() -> Metrics:
        stats = run_pool(sandbox, jobs, lambda job, res, attempts: statuses.update([res.status.value]))
        return {"lent": stats.lent, "extra": stats.extra_instances}

    m = measured(len(jobs), body)
    m["not_passed"] = len(jobs) - statuses["passed"]
    return m


def evaluate(samples: Path, n: int, kind: str, workers: int, tmp: Path) -> Metrics:
    out = Path(tempfile.mkdtemp(prefix=f"eval-{kind}-", dir=tmp))
    cmd = [sys.executable, "-m", "harness", "evaluate", "humaneval", str(samples), "--sandbox", kind]
    cmd += ["--workers", str(workers), "--quiet", "--out", str(out / "run")]

    def body() -> Metrics:
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=tmp)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return {}

    m = measured(n, body)
    m["host_cpu"] = m["children_cpu"]
    rows = [json.loads(x) for x in (out / "run/samples.jsonl").read_text().splitlines()]
    m["not_passed"] = n - sum(bool(r.get("passed")) for r in rows)
    return m


def write_samples(path: Path, task_ids: list[str], completions: dict[str, str]) -> None:
    path.write_text("".join(json.dumps({"task_id": t, "completion": completions[t]}) + "\n" for t in task_ids))


def rounds(r: int, fn: Callable[[], Metrics]) -> Metrics:
    runs = [fn() for _ in range(r)]
    return {k: statistics.median(x[k] for x in runs) for k in runs[0]}


def fmt(v: float | None, spec: str = "8.3f") -> str:
    return format(v, spec) if v is not None else " " * (int(spec.split(".")[0]) - 1) + "-"


def table(rows: dict[str, Metrics], floor: float) -> None:
    print(
        f"\n{'stage':28} {'wall ms':>8} {'x floor':>8} {'host cpu':>8} {'job cpu':>8} {'mach cpu':>8} "
        f"{'busy %':>6} {'flt/job':>7} {'dur ms':>8} {'!pass':>5}"
    )
    for name, m in rows.items():
        print(
            f"{name:28} {fmt(m['wall'])} {fmt(m['wall'] / floor, '8.1f')} {fmt(m.get('host_cpu'))} "
            f"{fmt(m.get('job_cpu'))} {fmt(m['machine_cpu'])} {fmt(m['busy'], '6.0f')} "
            f"{fmt(m.get('job_faults'), '7.0f')} {fmt(m.get('duration'))} {m.get('not_passed', 0):5.0f}"
        )


def attribution(rows: dict[str, Metrics], kinds: list[str], n_eval: int, startup: dict[str, float]) -> None:
    s1, s2, s3 = rows["1 in-process"]["wall"], rows["2 bare fork"]["wall"], rows["3 runner (no sandbox)"]
    print("\nattribution (ms per job, wall):")
    print(f"  fork + process per sample (2 - 1):                            {s2 - s1:8.3f}")
    print(f"  runner guard/bookkeeping (3 duration - 2):                    {s3['duration'] - s2:8.3f}")
    # (sequentially, the runner reaps a job and removes its directory before it reads the next one)
    print(f"  transport + host + runner reap per round trip (3 rt - 3 dur): {s3['wall'] - s3['duration']:8.3f}")
    for k in kinds:
        no = 4 + (k == "docker")
        seq, name = rows[f"{no} runner in {k}"], f"6 pool {k}"
        print(
            f"  {k}: round trip vs no sandbox ({no} - 3):  {seq['wall'] - s3['wall']:+8.3f}  "
            f"(runner duration {seq['duration'] - s3['duration']:+.3f}, transport "
            f"{(seq['wall'] - seq['duration']) - (s3['wall'] - s3['duration']):+.3f})"
        )
        if name in rows:
            speedup = seq["wall"] / rows[name]["wall"]
            print(f"  {k}: pool speed-up over one sequential instance ({no} / 6): {speedup:6.2f}x")
        ev = rows.get(f"7 evaluate {k}")
        if ev and name in rows:
            net = ev["wall"] - startup[k] * 1000 / n_eval
            print(
                f"  {k}: store/progress/pipeline (7 minus start-up - 6): {net - rows[name]['wall']:+8.3f}  "
                f"(7 minus start-up = {net:.3f}; start-up {startup[k]:.2f} s)"
            )


def notes(rows: dict[str, Metrics], rss_mb: float, startup: dict[str, float]) -> None:
    out = [f"{k[2:]} instance start {m['start_s']:.2f} s (not in its wall)" for k, m in rows.items() if "start_s" in m]
    out += [
        f"{k[2:]}: {m['lent']:.0f} jobs lent a slot, {m['extra']:.0f} extra instances"
        for k, m in rows.items()
        if "lent" in m
    ]
    print("  " + "; ".join(out))
    print(f"  this process's peak RSS {rss_mb:.0f} MB (stage 2 forks it; the runner forks itself)")
    if startup:
        print("  7 start-up (1-sample file), s: " + ", ".join(f"{k} {v:.2f}" for k, v in startup.items()))


def run_stages(args: argparse.Namespace, kinds: list[str], tmp: Path) -> tuple[dict[str, Metrics], float, dict]:
    progs, completions = programs(args.jobs)
    n, r, rows, startup = args.jobs, args.rounds, {}, {}
    rows["1 in-process"] = rounds(r, lambda: measured(n, lambda: in_process(progs)))
    rows["1 in-process"]["job_faults"] = rows["1 in-process"]["self_faults"]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows["2 bare fork"] = m = rounds(r, lambda: measured(n, lambda: bare_fork(progs)))
    m["job_cpu"], m["job_faults"] = m["children_cpu"], m["children_faults"]
    rows["3 runner (no sandbox)"] = rounds(r, lambda: sequential(progs, "none", tmp))
    for k in kinds:
        rows[f"{4 + (k == 'docker')} runner in {k}"] = rounds(r, lambda k=k: sequential(progs, k, tmp))
    for k in kinds:
        rows[f"6 pool {k}"] = rounds(r, lambda k=k: pool(progs, k, args.workers, tmp))
    if not args.skip_evaluate:
        samples, one = tmp / "samples.jsonl", tmp / "one.jsonl"
        write_samples(samples, [t for t, _ in progs], completions)
        write_samples(one, [progs[0][0]], completions)
        for k in kinds:
            rows[f"7 evaluate {k}"] = rounds(r, lambda k=k: evaluate(samples, n, k, args.workers, tmp))
            startup[k] = rounds(r, lambda k=k: evaluate(one, 1, k, args.workers, tmp))["wall"] / 1000
    return rows, rss_mb, startup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1148)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--sandbox", choices=("docker", "bwrap", "both"), default="both")
    ap.add_argument("--skip-evaluate", action="store_true")
    args = ap.parse_args()
    kinds = ["bwrap", "docker"] if args.sandbox == "both" else [args.sandbox]
    print(
        f"{args.jobs} jobs (164 canonical HumanEval programs repeated), {args.rounds} rounds (median), "
        f"workers {args.workers}, {os.cpu_count()} CPUs; load average at start {os.getloadavg()}"
    )
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        rows, rss_mb, startup = run_stages(args, kinds, Path(tmp))
    table(rows, rows["1 in-process"]["wall"])
    notes(rows, rss_mb, startup)
    attribution(rows, kinds, args.jobs, startup)
    print(f"\nload average at end {os.getloadavg()}; took {time.monotonic() - t_start:.0f} s")


if __name__ == "__main__":
    main()
