"""The openai backend over two replicas (two fault-injecting servers on loopback), end to end through
`harness run` (graded in bubblewrap): one replica going away mid-run loses nothing and answers nothing
twice, the requests spread over both under each one's cap, a replica refusing at start is warned about
and left out, and the CLI's exit codes for no replica answering (3) and a bad list (2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from harness.models.base import request_seed
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.bwrap


def _answer_from(humaneval, n_tasks: int):
    by_prompt = {t.prompt: t for t in humaneval.tasks[:n_tasks]}

    def answer(body):
        content = body["messages"][-1]["content"]
        task = next(t for p, t in by_prompt.items() if p in content)
        return "Here you go:\n```python\n" + task.prompt + task.canonical_solution + "```\n"

    return answer


def _config(tmp_path, base_url, n_tasks: int, n: int, **model):
    cfg = {
        "model": {
            "backend": "openai",
            "name": "fake-model",
            "base_url": base_url,
            "model": "fake-model",
            "api": "chat",
            "api_key_env": "FAKE_API_KEY",
            "max_concurrency": 3,
            "max_attempts": 8,
            "request_timeout_s": 2.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.3,
            **model,
        },
        "benchmark": {"name": "humaneval", "limit": n_tasks},
        "prompt": {"mode": "chat"},
        "sampling": {"temperature": 0.8, "max_tokens": 256, "n": n, "seed": 1234},
        "sandbox": {"kind": "bwrap", "workers": 2},
    }
    path = tmp_path / "replicas.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _harness(args, tmp_path):
    env = dict(os.environ, FAKE_API_KEY="sk-test-not-a-secret")
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600
    )


def _run(cfg, tmp_path, run_id: str):
    proc = _harness(["run", str(cfg), "--out", str(tmp_path / "results"), "--run-id", run_id, "--quiet"], tmp_path)
    run_dir = tmp_path / "results" / run_id
    return proc, run_dir


def _gens(run_dir):
    return [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]


def test_a_replica_stopped_mid_run_loses_nothing(humaneval, tmp_path):
    """60 tasks x n=2 = 120 samples; replica a stops for good after its 30th answer. Both inject faults."""
    n_tasks, n, stop_after = 60, 2, 30
    seeds = {(t.task_id, s): request_seed(1234, t.task_id, s) for t in humaneval.tasks[:n_tasks] for s in range(n)}
    answer = _answer_from(humaneval, n_tasks)
    with FakeOpenAI(answer=answer, latency_s=0.02) as a, FakeOpenAI(answer=answer, latency_s=0.02) as b:
        for i, seed in enumerate(seeds.values()):
            if i % 3 == 0:
                a.faults[seed] = [["429"], ["500"], ["drop"], ["429", "500"]][i // 3 % 4]
            elif i % 3 == 1:
                b.faults[seed] = ["drop"] if i in (10, 70) else [["500"], ["429"]][i % 2]
        a.stop_after = stop_after
        proc, run_dir = _run(_config(tmp_path, [a.base_url, b.base_url], n_tasks, n), tmp_path, "stop")
        assert proc.returncode == 0, proc.stderr
    gens = _gens(run_dir)
    assert sorted((g["task_id"], g["sample_id"]) for g in gens) == sorted(seeds)  # each exactly once
    assert all(g["error"] is None and g["seed"] == seeds[(g["task_id"], g["sample_id"])] for g in gens)
    # a answered 30 before it stopped and none after; every request was answered exactly once in all
    assert sum(a.successes.values()) == stop_after
    assert a.successes + b.successes == {s: 1 for s in seeds.values()}
    before = sum(t <= a.stopped_at for t in b.arrived)
    assert sum(t > a.stopped_at for t in b.arrived) >= len(seeds) - stop_after - before > 0  # the rest went to b
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] and results["metrics"]["pass@1"] == 1.0
    prov = results["provenance"]["model"]
    assert prov["base_url"] == [a.base_url, b.base_url]
    ra, rb = prov["replicas"]
    assert ra["state"] == "out" and ra["taken_out"] == 1 and ra["transport_failures"] >= 2 and not ra["out_at_start"]
    assert ra["requests"] >= len(a.bodies) and ra["max_in_flight"] <= 3 and rb["max_in_flight"] <= 3
    assert rb["state"] == "healthy" and rb["requests"] == len(b.bodies)
    assert a.max_in_flight <= 3 and b.max_in_flight <= 3
    text = "".join(p.read_text() for p in run_dir.iterdir() if p.suffix in (".json", ".yaml", ".jsonl"))
    assert "sk-test-not-a-secret" not in text


def test_requests_spread_over_both_under_each_cap(humaneval, tmp_path):
    n_tasks, n = 20, 2
    answer = _answer_from(humaneval, n_tasks)
    with FakeOpenAI(answer=answer, latency_s=0.1) as a, FakeOpenAI(answer=answer, latency_s=0.1) as b:
        proc, run_dir = _run(_config(tmp_path, [a.base_url, b.base_url], n_tasks, n), tmp_path, "spread")
        assert proc.returncode == 0, proc.stderr
    served = [sum(a.successes.values()), sum(b.successes.values())]
    assert sum(served) == n_tasks * n and min(served) >= n_tasks * n // 4, served
    assert 2 <= a.max_in_flight <= 3 and 2 <= b.max_in_flight <= 3  # both used at once, never past the cap
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] and results["metrics"]["pass@1"] == 1.0
    prov = results["provenance"]["model"]
    assert [r["requests"] for r in prov["replicas"]] == served
    assert prov["client"]["max_in_flight"] == 6 and prov["max_concurrency"] == 3


def test_a_replica_refusing_at_start_is_warned_and_the_run_completes(humaneval, tmp_path):
    n_tasks, n = 10, 2
    answer = _answer_from(humaneval, n_tasks)
    with FakeOpenAI(answer=answer) as a, FakeOpenAI(answer=answer) as b:
        a.stop()
        proc, run_dir = _run(_config(tmp_path, [a.base_url, b.base_url], n_tasks, n), tmp_path, "refused")
        assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: model.base_url")]
    assert len(warnings) == 1 and f"cannot connect to {a.base_url}" in warnings[0], proc.stderr
    assert sum(b.successes.values()) == n_tasks * n and not a.bodies
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] and results["metrics"]["pass@1"] == 1.0
    ra, rb = results["provenance"]["model"]["replicas"]
    assert (ra["out_at_start"], ra["state"], ra["requests"]) == (True, "out", 0)
    assert (rb["state"], rb["requests"]) == ("healthy", n_tasks * n)


def test_no_replica_answering_exits_3_and_a_bad_list_exits_2(tmp_path):
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.stop()
        b.stop()
        proc, _ = _run(_config(tmp_path, [a.base_url, b.base_url], 2, 1), tmp_path, "none")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("error: model.base_url: cannot connect to ") and a.base_url in proc.stderr
    assert b.base_url in proc.stderr and not (tmp_path / "results" / "none").exists()
    twice = ["http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"]
    proc, _ = _run(_config(tmp_path, twice, 2, 1), tmp_path, "dup")
    assert (
        proc.returncode == 2 and "model.base_url: " in proc.stderr and "items 0 and 1 are the same URL" in proc.stderr
    )
    assert not (tmp_path / "results").exists()
