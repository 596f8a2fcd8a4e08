#!/usr/bin/env python3
"""Benchmark: SWE-bench grading through the local executor and the Ray executor on this machine, side by
side in one run; prints per-round wall times, medians, the ratio ray / local (target: <= 1.10, i.e. Ray
overhead at most 10%), the Ray per-task scheduling overhead and a projection for clusters of K nodes.

The instances are N copies of the local SWE-bench instance (tests/integration/swebench_local.py), one
image, graded with the gold patch (or a mix, --mix gold,wrong,empty). The script starts its own one-node
Ray cluster on loopback (head 127.0.0.2, `harness_docker` = W slots, --num-cpus 1, no dashboard, its own
temp dir) and kills exactly its processes at the end. Each round runs, as a user would,
`harness evaluate swebench PREDS --dataset-path DS --out DIR --workers W` (local) and the same with
`--executor ray --ray-address ADDR`, in alternating order, fresh run directories; the verdicts must be
identical (exit 1 otherwise). "non-container s" = wall - sum(duration_s) / W: the run's time not spent
in swebench's run_instance (process start, imports, connect, Docker calls, scheduling, writes).

Then a driver in this process connects to the cluster (RayExecutor.check(), as `evaluate` does), sends
W tasks importing what a grading task imports on fresh workers (the cold start), then M no-op tasks
(module-level function returning Shipped(None), each needing one harness_docker) through
RayExecutor.map: one at a time (dependent round trips) and all at once (pipelined throughput).

    .venv/bin/python scripts/bench_executor.py [--instances 8] [--workers 2] [--repeat 3] \
        [--mix gold] [--tasks 200] [--project-instances 500] [--slots-per-node 8]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.executors.base import Shipped  # noqa: E402

HEAD_IP = "127.0.0.2"  # Ray rewrites 127.0.0.1 to the outward address; other loopback addresses it keeps
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
EXPECTED = {"gold": "resolved", "wrong": "unresolved", "empty": "empty_patch"}


def noop() -> Shipped:
    """The no-op task: what the executor's per-task path costs without any work."""
    return Shipped(None)


def cold_imports() -> Shipped:
    """On a fresh worker: the imports grade_on_node does before its first container (seconds)."""
    t0 = time.perf_counter()
    import docker  # noqa: F401
    from swebench.harness import run_evaluation  # noqa: F401

    from harness.sandbox.prune import LabellingClient  # noqa: F401
    from harness.scoring.swebench import grade_one  # noqa: F401

    return Shipped(time.perf_counter() - t0)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(temp_dir: Path, slots: int) -> str:
    port, client_port = free_port(), free_port()
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--num-cpus", "1"]
    cmd += ["--disable-usage-stats", "--include-dashboard=false", "--temp-dir", str(temp_dir)]
    cmd += ["--node-ip-address", HEAD_IP, "--port", str(port), "--ray-client-server-port", str(client_port)]
    cmd += ["--resources", json.dumps({"harness_docker": slots})]
    p = subprocess.run(cmd, env=RAY_ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"ray start failed ({p.returncode}): {p.stderr[-2000:]}")
    return f"{HEAD_IP}:{port}"


def kill_cluster(temp_dir: Path) -> int:
    """SIGKILL the processes whose command line names this cluster's temp dir, and their children."""
    import psutil

    roots = [p for p in psutil.process_iter(["cmdline"]) if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
    found = {p.pid: p for p in roots}
    for p in roots:
        try:
            found.update({c.pid: c for c in p.children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
    found.pop(os.getpid(), None)
    for p in found.values():
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(found.values()), timeout=10)
    return len(found)


def evaluate(args: list[str]) -> float:
    """`harness evaluate swebench ARGS` as a user runs it; its wall time. On Ctrl-C the child (same
    process group) got the signal too: it is given time to remove its containers."""
    cmd = [sys.executable, "-m", "harness", "evaluate", "swebench", *args, "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _out, err = proc.communicate()
    except BaseException:
        for sig in (None, signal.SIGINT, signal.SIGKILL):
            if sig is not None:
                proc.send_signal(sig)
            try:
                proc.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                continue
        raise
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)} exited {proc.returncode}:\n{err[-3000:]}")
    return wall


def run_figures(out: Path, workers: int, wall: float) -> dict:
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines() if x.strip()]
    durs = [r["duration_s"] for r in rows if r["status"] != "empty_patch"]
    res = json.loads((out / "results.json").read_text())
    ex = res["provenance"]["grading_sessions"][-1]["grader"].get("executor")
    return {
        "wall": wall,
        "verdicts": {r["task_id"]: r["status"] for r in rows},
        "t_mean": statistics.mean(durs) if durs else 0.0,
        "non_container": wall - sum(durs) / workers,
        "map_wall": ex.get("wall_s") if isinstance(ex, dict) else None,
    }


def probe(address: str, slots: int, m: int) -> dict:
    """Import and connect, a first wave of no-op tasks on fresh workers, a wave of the grading imports,
    then M no-op tasks one at a time and all at once, through RayExecutor as `evaluate` uses it."""
    t0 = time.perf_counter()
    import ray

    from harness.config import ExecutorConfig
    from harness.executors.ray_exec import RayExecutor

    f = {"import": time.perf_counter() - t0}
    ex = RayExecutor(ExecutorConfig(name="ray", address=address))
    got: list = []

    def timed(key: str, fn, n: int) -> None:
        t0 = time.perf_counter()
        ex.map(fn, [(f"{key}-{i}", ()) for i in range(n)], got.append, lambda v: None)
        f[key] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ex.check()  # the socket probe, ray.init and cluster_resources, as `evaluate` does before grading
    f["connect"] = time.perf_counter() - t0
    timed("cold", noop, slots)  # a new job: its workers start (with its runtime_env)
    timed("imports", cold_imports, slots)
    f["imports_in_task"] = max(d.value.value for d in got[-slots:])
    t0 = time.perf_counter()
    for i in range(m):
        ex.map(noop, [(f"seq-{i}", ())], got.append, lambda v: None)
    f["seq"] = (time.perf_counter() - t0) / m
    timed("pipe", noop, m)
    f["pipe"] /= m
    bare = ray.remote(noop).options(num_cpus=0, resources={ex.cfg.slots_resource: 1}, max_retries=0)
    t0 = time.perf_counter()
    for _ in range(m):
        ray.get(bare.remote())
    f["bare"] = (time.perf_counter() - t0) / m
    if len(got) != 2 * slots + 2 * m or any(d.error for d in got):
        raise SystemExit(f"FAILED: probe tasks: {len(got)} done, errors {[d.error for d in got if d.error][:3]}")
    t0 = time.perf_counter()
    ray.shutdown()
    f["shutdown"] = time.perf_counter() - t0
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=8, help="copies of the local instance (N)")
    ap.add_argument("--workers", type=int, default=2, help="local max_workers = the cluster's harness_docker (W)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (the order alternates)")
    ap.add_argument("--mix", default="gold", help="patch kinds cycled over the instances: gold,wrong,empty")
    ap.add_argument("--tasks", type=int, default=200, help="no-op Ray tasks for the per-task overhead (M)")
    ap.add_argument("--project-instances", type=int, default=500)
    ap.add_argument("--slots-per-node", type=int, default=8)
    ap.add_argument("--real-instance-s", type=float, default=180.0, help="a real instance's grading time")
    args = ap.parse_args()
    kinds = args.mix.split(",")
    if not set(kinds) <= set(EXPECTED):
        ap.error(f"--mix: kinds are {sorted(EXPECTED)}")
    import docker

    from tests.integration import swebench_local
    from tests.integration.agent_helpers import copies

    n, w = args.instances, args.workers
    print(f"load average at start (1/5/15 min): {load()}; {os.cpu_count()} CPUs")
    tmp = Path(tempfile.mkdtemp(prefix="bench-exec-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="hbx", dir="/tmp"))  # short: Ray's socket paths live under it
    try:
        local = swebench_local.build(docker.from_env(timeout=600), tmp)
        ds = copies(local, tmp, n)
        ids = [json.loads(x)["instance_id"] for x in ds.read_text().splitlines()]
        want = {i: EXPECTED[kinds[k % len(kinds)]] for k, i in enumerate(ids)}
        preds = tmp / "preds.jsonl"
        preds.write_text(
            "".join(
                json.dumps({"instance_id": i, "model_name_or_path": "bench", "model_patch": local["patches"][kind]})
                + "\n"
                for i, kind in ((i, kinds[k % len(kinds)]) for k, i in enumerate(ids))
            )
        )
        t0 = time.perf_counter()
        address = start_cluster(ray_tmp, w)
        print(f"ray cluster at {address} ({w} x harness_docker) started in {time.perf_counter() - t0:.1f} s")
        common = [str(preds), "--dataset-path", str(ds)]
        modes = {"local": ["--workers", str(w)], "ray": ["--executor", "ray", "--ray-address", address]}
        rounds: list[dict] = []
        for r in range(args.repeat):
            order = ["local", "ray"] if r % 2 == 0 else ["ray", "local"]
            figs = {}
            for mode in order:
                out = tmp / f"r{r}-{mode}"
                figs[mode] = run_figures(out, w, evaluate([*common, "--out", str(out), *modes[mode]]))
                figs[mode]["load"] = load()
            if figs["local"]["verdicts"] != figs["ray"]["verdicts"] or figs["local"]["verdicts"] != want:
                raise SystemExit(
                    f"FAILED: round {r + 1}: verdicts differ:\n local {figs['local']['verdicts']}\n"
                    f" ray   {figs['ray']['verdicts']}\n want  {want}"
                )
            rounds.append({"order": "/".join(order), **figs})
            print(f"round {r + 1} done ({'/'.join(order)}): verdicts identical; load {load()}", flush=True)
        pr = probe(address, w, args.tasks)
        print(f"probe done; load {load()}")
    finally:
        killed = kill_cluster(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"ray cluster: {killed} processes killed; temp dirs removed")

    counts = {s: list(want.values()).count(s) for s in sorted(set(want.values()))}
    print(f"\n{n} instances ({counts}), W = {w} slots / workers, {args.repeat} rounds")
    hdr = "round  order      local s  ray s   ratio  ray map s  t local  t ray  non-cont local  non-cont ray"
    hdr += "  load after ray | local"
    print(hdr + "\n" + "-" * len(hdr))
    for i, x in enumerate(rounds, 1):
        lo, ra = x["local"], x["ray"]
        print(
            f"{i:>5}  {x['order']:<9} {lo['wall']:7.1f} {ra['wall']:6.1f} {ra['wall'] / lo['wall']:7.3f}"
            f" {ra['map_wall'] or 0:10.1f} {lo['t_mean']:8.1f} {ra['t_mean']:6.1f}"
            f" {lo['non_container']:15.1f} {ra['non_container']:13.1f}  {ra['load']} | {lo['load']}"
        )

    def med(mode: str, key: str) -> float:
        return statistics.median(x[mode][key] for x in rounds)

    ml, mr = med("local", "wall"), med("ray", "wall")
    ratio = mr / ml
    print(f"median   local {ml:.1f} s, ray {mr:.1f} s; ratio ray/local {ratio:.3f} (target <= 1.10): ", end="")
    print("HOLDS" if ratio <= 1.10 else "MISSED")
    nl, nr = med("local", "non_container"), med("ray", "non_container")
    print(f"  median non-container time: local {nl:.1f} s, ray {nr:.1f} s ({nr - nl:+.1f} s)")
    t = statistics.mean(x[m]["t_mean"] for x in rounds for m in ("local", "ray"))
    print(f"  mean per-instance grading time t (run_instance, both executors): {t:.1f} s")

    print(f"\nRay per-task overhead (driver in this process, {args.tasks} no-op tasks, 1 harness_docker each):")
    print(f"  driver: import ray + executor {pr['import']:6.2f} s, connect (RayExecutor.check) {pr['connect']:6.2f} s")
    print(f"  first wave, {w} no-op tasks on a new job's fresh workers:      {pr['cold']:6.2f} s")
    print(f"  then {w} tasks doing grade_on_node's imports (warm workers):   {pr['imports']:6.2f} s")
    print(f"    (the imports' own time inside a task:                    {pr['imports_in_task']:6.2f} s)")
    print(f"  sequential round trip (one map() per task):                 {pr['seq'] * 1e3:6.2f} ms/task")
    print(f"  sequential, bare ray.get(f.remote()) with the same options:  {pr['bare'] * 1e3:6.2f} ms/task")
    print(f"  pipelined (one map() of {args.tasks}, {w} slots):                  {pr['pipe'] * 1e3:6.2f} ms/task")
    print(f"  driver ray.shutdown():                                      {pr['shutdown']:6.2f} s")
    fixed = pr["import"] + pr["connect"] + pr["cold"] + pr["imports"] + pr["shutdown"]
    waves_here = math.ceil(n / w)
    model_here = fixed + waves_here * pr["seq"]
    print(f"  fixed cost (driver import + connect + first wave + imports wave + shutdown) = {fixed:.2f} s")
    print(f"  model for this run: fixed + {waves_here} waves x round trip = {model_here:.2f} s;")
    print(f"  measured median ray - local: wall {mr - ml:+.2f} s, non-container {nr - nl:+.2f} s")
    extra = (nr - nl - fixed) / n * 1e3
    print(f"  beyond the fixed cost: {extra:+.0f} ms per instance (node-side Docker calls, log shipping, noise)")

    big, s = args.project_instances, args.slots_per_node
    per_task = max(pr["seq"], (nr - nl - fixed) / waves_here)  # measured per-wave cost beyond the fixed one
    print(
        f"\nProjection: {big} instances, S = {s} slots/node; t = {t:.1f} s (measured here) and "
        f"{args.real_instance_s:.0f} s (a real instance);\n"
        f"  wall = max(waves x (t + c), {big} x pipelined) + fixed; waves = ceil({big} / (K x S)); "
        f"fixed = {fixed:.2f} s; c = {per_task:.2f} s/wave\n"
        "  (c: the median non-container time ray - local here minus fixed, per wave; at least the round trip)"
    )
    hdr = "    K  slots  waves  no-overhead s  ray wall s  overhead %  | real: ray wall s  overhead %"
    print(hdr + "\n" + "-" * len(hdr))
    for k in (1, 2, 4, 8, 16):
        waves = math.ceil(big / (k * s))
        rows = []
        for tt in (t, args.real_instance_s):
            ideal = waves * tt
            wall = max(waves * (tt + per_task), big * pr["pipe"]) + fixed
            rows.append((ideal, wall, 100 * (wall - ideal) / ideal))
        (i1, w1, o1), (_i2, w2, o2) = rows
        print(f"{k:>5} {k * s:>6} {waves:>6} {i1:14.0f} {w1:11.0f} {o1:10.1f}%  | {w2:16.0f} {o2:10.1f}%")
    print(
        "Assumptions: the instance images are already on every node (no pulls or builds); each slot grades in t "
        "as measured\nhere (2 CPUs, 2 slots; a node with S slots needs the cores and disk for them); the driver "
        "receives\nthe logs of every instance; K nodes' workers start in parallel (one cold wave); no node is lost."
    )
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
