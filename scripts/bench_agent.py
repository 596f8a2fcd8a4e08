#!/usr/bin/env python3
"""Benchmark: the agent solver (`harness generate`, solver `agent`) against mini-swe-agent's own batch
runner (`mini-extra swebench`), side by side in one run: same scripted endpoint, same instances, same
workers; prints wall time, per-step overhead, the ratio (target: harness / mini <= 1.0) and whether
the submitted patches are byte-identical (exit 1 if not).

The instances are N copies of the local SWE-bench instance (tests/integration/swebench_local.py),
sharing one image. The model is tests/integration/agent_helpers.py's ScriptedAgent (the FIX script,
6 turns), served by tests/fakes/openai_server.py's FakeOpenAI in its own process (a new one per tool
run, so neither tool shares a GIL with it); both tools talk to it over loopback. Only generation is
timed (no grading). Each tool run is a whole process timed from start to exit; the order of the two
tools alternates between rounds.

Figures, per tool run:
- wall: the process, start to exit; s/inst = wall / instances;
- steps: model requests the endpoint answered (all instances);
- endpoint ms: the endpoint's time per request (its --latency; the scripted reply itself is ~0);
- ovh ms/step = (wall x workers - steps x endpoint time) / steps: the worker time per step not spent
  waiting for the endpoint (process start, imports, containers, commands, writes, all included);
- loop ms/step: inside the agent loop, the endpoint's clock from sending a reply to receiving the
  same instance's next request (parse, run the command in the container, observe, save, send);
- first req s: process start to the first request (imports, dataset, first container start);
- tail s: last request to process exit (last command, container removal, final writes).

mini-swe-agent's DockerEnvironment runs `docker run` / `docker exec` through the CLI with no
hardening and stops its containers in the background; the harness uses the Docker SDK with a
hardened container, a writable-layer size check after every command, a `git diff` at exit and a
synchronous removal. Both are measured as they are.

    .venv/bin/python scripts/bench_agent.py [--instances 4] [--workers 2] [--repeat 3] \
        [--actions tools text] [--latency 0.0]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BENCH_LABEL = "org.harness.bench-agent"  # on mini's containers (its run_args), to remove only this run's
TOOLS = ("harness", "mini")


def serve(mode: str, latency: float) -> None:
    """The scripted endpoint (child process): prints its URL, serves until stdin closes, then prints
    each request's (instance, turn, monotonic time the reply was made, digest of the messages' roles
    and texts, whether it offered tools)."""
    from tests.fakes.openai_server import FakeOpenAI
    from tests.integration.agent_helpers import ScriptedAgent, instance_of, turn_index

    agent, log = ScriptedAgent(mode), []

    def answer(body: dict):
        texts = json.dumps([(m.get("role"), m.get("content")) for m in body["messages"]])
        texts = re.sub(r" in [0-9.]+s\b", " in Xs", texts)  # pytest's run time in an observation
        digest = hashlib.sha256(texts.encode()).hexdigest()[:16]
        log.append((instance_of(body), turn_index(body), time.monotonic(), digest, "tools" in body))
        return agent.answer(body)

    with FakeOpenAI(answer=answer, latency_s=latency) as srv:
        print(srv.base_url, flush=True)
        sys.stdin.read()
    print(json.dumps(log), flush=True)


def write_mini_subset(dataset: Path, image: str, out: Path) -> Path:
    """mini's `--subset DIR --split test` reads DIR/test.jsonl; a row's image_name names the image."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in dataset.read_text().splitlines() if line.strip()]
    (out / "test.jsonl").write_text("".join(json.dumps({**r, "image_name": image}) + "\n" for r in rows))
    return out


def harness_cmd(run: Path, url: str, dataset: Path, mode: str, workers: int) -> tuple[list[str], Path]:
    from tests.integration.agent_helpers import agent_config

    cfg = agent_config(run, url, dataset, mode, workers=workers)
    return [sys.executable, "-m", "harness", "generate", str(cfg), "--out", str(run), "--run-id", "r", "-q"], run / "r"


def mini_cmd(run: Path, url: str, subset: Path, mode: str, workers: int, tag: str) -> tuple[list[str], Path]:
    import yaml

    model = {
        "model_name": "openai/scripted",
        "model_kwargs": {"api_base": url, "api_key": "dummy"},
        "cost_tracking": "ignore_errors",
    }
    if mode == "text":
        model["model_class"] = "litellm_textbased"
    cfg = {
        "model": model,
        "agent": {"step_limit": 12},  # the harness side's (agent_config)
        "environment": {"run_args": ["--rm", "--label", f"{BENCH_LABEL}={tag}"]},
    }
    (run / "model.yaml").write_text(yaml.safe_dump(cfg))
    scaffold = "swebench.yaml" if mode == "tools" else "swebench_backticks.yaml"
    mini = Path(sys.executable).parent / "mini-extra"
    out = run / "out"
    cmd = [str(mini), "swebench", "--subset", str(subset), "--split", "test"]
    cmd += ["-c", scaffold, "-c", str(run / "model.yaml"), "-o", str(out), "-w", str(workers)]
    return cmd, out


def patches(tool: str, out: Path) -> dict[str, str | None]:
    if tool == "harness":
        rows = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines() if x.strip()]
        return {r["task_id"]: r.get("code") for r in rows}
    return {k: v.get("model_patch") for k, v in json.loads((out / "preds.json").read_text()).items()}


def leftovers(client, tool: str, out: Path, tag: str) -> int:
    """Remove this run's containers still on the engine (mini stops its own in the background)."""
    from harness.sandbox.prune import RUN_DIR

    label = f"{RUN_DIR}={out}" if tool == "harness" else f"{BENCH_LABEL}={tag}"
    found = client.containers.list(all=True, filters={"label": label})
    for c in found:
        try:
            c.remove(force=True)
        except Exception:  # already gone (its own removal won the race)
            pass
    return len(found)


def run_tool(tool: str, mode: str, args, tmp: Path, data: dict, client, env: dict, rnd: int) -> dict:
    run = tmp / f"{tool}-{mode}-{rnd}"
    run.mkdir()
    tag = f"{os.getpid()}-{run.name}"
    srv = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, "--latency", str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert srv.stdout is not None
    url = srv.stdout.readline().strip()
    try:
        if tool == "harness":
            cmd, out = harness_cmd(run, url, data["dataset"], mode, args.workers)
        else:
            cmd, out = mini_cmd(run, url, data["subset"], mode, args.workers, tag)
        log_file = run / "process.log"
        with open(log_file, "w") as log:
            start = time.monotonic()
            p = subprocess.run(cmd, cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            end = time.monotonic()
    finally:
        reqs = json.loads(srv.communicate("", timeout=60)[0])
    left = leftovers(client, tool, out, tag)
    if p.returncode != 0:
        sys.exit(f"{tool} ({mode}) exited {p.returncode}; see {log_file}:\n{log_file.read_text()[-3000:]}")
    by_inst: dict[str, list[float]] = {}
    for iid, _n, t, _d, _tools in sorted(reqs, key=lambda r: (r[0], r[2])):
        by_inst.setdefault(iid, []).append(t)
    gaps = [b - a - args.latency for ts in by_inst.values() for a, b in itertools.pairwise(ts)]
    steps, wall = len(reqs), end - start
    return {
        "wall": wall,
        "steps": steps,
        "ovh_ms": 1000 * (wall * args.workers - steps * args.latency) / max(steps, 1),
        "loop_ms": 1000 * statistics.mean(gaps) if gaps else float("nan"),
        "first_s": min(r[2] for r in reqs) - start if reqs else float("nan"),
        "tail_s": end - max(r[2] for r in reqs) if reqs else float("nan"),
        "patches": patches(tool, out),
        "prompts": {(r[0], r[1]): r[3] for r in reqs},
        "sent_tools": {r[4] for r in reqs},
        "left": left,
    }


HEAD = f"{'':<8}{'wall s':>8}{'s/inst':>8}{'steps':>6}{'ovh ms':>8}{'loop ms':>8}{'1st req s':>10}{'tail s':>8}"
MEDIAN_KEYS = ("wall", "steps", "ovh_ms", "loop_ms", "first_s", "tail_s")


def line(name: str, r: dict, n: int) -> str:
    s = f"{name:<8}{r['wall']:8.2f}{r['wall'] / n:8.2f}{int(r['steps']):6d}{r['ovh_ms']:8.0f}{r['loop_ms']:8.0f}"
    s += f"{r['first_s']:10.2f}{r['tail_s']:8.2f}"
    return s + (f"{r['left']:6d} of its containers still there at exit" if r.get("left") else "")


def identical(h: dict, m: dict) -> dict[str, bool]:
    """Per instance: both tools submitted the same non-empty patch, byte for byte."""
    ids = sorted(set(h["patches"]) | set(m["patches"]))
    return {i: bool(h["patches"].get(i)) and h["patches"].get(i) == m["patches"].get(i) for i in ids}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the summary is the median")
    ap.add_argument("--actions", nargs="+", choices=["tools", "text"], default=["tools", "text"])
    ap.add_argument("--latency", type=float, default=0.0, help="the endpoint's time per request, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, trajectories)")
    ap.add_argument("--serve", choices=["tools", "text"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.latency)
        return
    import docker

    from tests.integration import swebench_local
    from tests.integration.agent_helpers import copies

    client = docker.from_env(timeout=600)
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    local = swebench_local.build(client, tmp, log=lambda *a: None)
    dataset = copies(local, tmp, args.instances)
    data = {"dataset": dataset, "subset": write_mini_subset(dataset, local["image"], tmp / "subset")}
    (tmp / "mswea").mkdir()
    env = {
        **os.environ,
        "MSWEA_SILENT_STARTUP": "1",
        "MSWEA_COST_TRACKING": "ignore_errors",
        "MSWEA_GLOBAL_CONFIG_DIR": str(tmp / "mswea"),  # not the user's ~/.config/mini-swe-agent/.env
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else litellm fetches a price list on import
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp / "hf"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    n, w = args.instances, args.workers
    results: dict[str, dict[str, list[dict]]] = {m: {t: [] for t in TOOLS} for m in args.actions}
    differ, prompt_differ = [], []
    print(f"{n} instances, {w} workers, endpoint latency {args.latency * 1000:.0f} ms, {args.repeat} round(s)")
    try:
        for rnd in range(args.repeat):
            load0 = os.getloadavg()
            for mode in args.actions:
                order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
                got = {t: run_tool(t, mode, args, tmp, data, client, env, rnd) for t in order}
                for t in TOOLS:
                    results[mode][t].append(got[t])
                h, m = got["harness"], got["mini"]
                same = identical(h, m)
                if not all(same.values()) or len(same) != n:
                    differ.append((rnd, mode, same))
                prompts = h["prompts"] == m["prompts"]
                if not prompts:
                    prompt_differ.append((rnd, mode))
                print(f"\nround {rnd + 1}, actions {mode} (order: {' then '.join(order)})")
                print(HEAD)
                for t in TOOLS:
                    print(line(t, got[t], n))
                print(
                    f"ratio harness/mini {h['wall'] / m['wall']:.3f}; patches byte-identical: "
                    f"{sum(same.values())}/{n}; requests' messages identical per turn: {prompts}; "
                    f"tools sent: harness {sorted(h['sent_tools'])}, mini {sorted(m['sent_tools'])}"
                )
            print(f"load average before / after round {rnd + 1}: {load0[0]:.2f} / {os.getloadavg()[0]:.2f}")
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        else:
            print(f"work directory kept: {tmp}")
    print(f"\nmedian of {args.repeat} round(s)")
    for mode in args.actions:
        med = {t: {k: statistics.median(r[k] for r in results[mode][t]) for k in MEDIAN_KEYS} for t in TOOLS}
        print(f"actions {mode}\n{HEAD}")
        for t in TOOLS:
            print(line(t, med[t], n))
        ratio = med["harness"]["wall"] / med["mini"]["wall"]
        extra = (med["harness"]["wall"] - med["mini"]["wall"]) / n
        print(f"ratio harness/mini (median wall): {ratio:.3f} (target <= 1.0); {extra:+.2f} s/instance")
    print(f"patches byte-identical in every round: {not differ}")
    print(f"requests' messages identical per turn in every round: {not prompt_differ}")
    for rnd, mode, same in differ:
        print(f"  round {rnd + 1} {mode}: {same}")
    for rnd, mode in prompt_differ:
        print(f"  round {rnd + 1} {mode}: the requests' messages differ")
    if differ or prompt_differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
