"""The openai backend against a fault-injecting OpenAI-compatible server on loopback, end to end
through `harness run`: every sample generated exactly once, the concurrency cap never exceeded,
errors never scored, and --resume retries exactly the failed requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from harness.models.base import request_seed
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.docker

N_TASKS, N = 10, 2


def _answer_from(humaneval):
    by_prompt = {t.prompt: t for t in humaneval.tasks[:N_TASKS]}

    def answer(body):
        content = body["messages"][-1]["content"]
        task = next(t for p, t in by_prompt.items() if p in content)
        return "Here you go:\n```python\n" + task.prompt + task.canonical_solution + "```\n"

    return answer


def _config(tmp_path, base_url, **model):
    cfg = {
        "model": {
            "backend": "openai",
            "name": "fake-model",
            "base_url": base_url,
            "model": "fake-model",
            "api": "chat",
            "api_key_env": "FAKE_API_KEY",
            "max_concurrency": 4,
            "max_attempts": 6,
            "request_timeout_s": 1.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
            **model,
        },
        "benchmark": {"name": "humaneval", "limit": N_TASKS},
        "prompt": {"mode": "chat"},
        "sampling": {"temperature": 0.8, "max_tokens": 256, "n": N, "seed": 1234},
        "sandbox": "docker",
    }
    path = tmp_path / "fake.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args, tmp_path):
    env = dict(os.environ, FAKE_API_KEY="sk-test-not-a-secret")
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def _seeds(humaneval):
    return {(t.task_id, s): request_seed(1234, t.task_id, s) for t in humaneval.tasks[:N_TASKS] for s in range(N)}


def test_faulty_endpoint_loses_and_invents_nothing(humaneval, tmp_path):
    seeds = _seeds(humaneval)
    plans = [
        ["429", "500"],
        ["slow"],
        ["truncated"],
        ["drop"],
        ["garbage", "429"],
        [],
        ["500", "500", "drop"],
    ]
    with FakeOpenAI(answer=_answer_from(humaneval), slow_s=2.5) as srv:
        for i, seed in enumerate(seeds.values()):
            srv.faults[seed] = plans[i % len(plans)]
        proc = _run(
            [
                "run",
                str(_config(tmp_path, srv.base_url)),
                "--out",
                str(tmp_path / "results"),
                "--run-id",
                "r1",
                "--quiet",
            ],
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert srv.max_in_flight <= 4
        run_dir = tmp_path / "results" / "r1"
        gens = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
        assert sorted((g["task_id"], g["sample_id"]) for g in gens) == sorted(seeds)
        assert all(g["error"] is None and g["seed"] == seeds[(g["task_id"], g["sample_id"])] for g in gens)
        retried = [g for g in gens if g["attempts"] > 1]
        assert len(retried) >= len(seeds) * 5 // 7 - 1
        results = json.loads((run_dir / "results.json").read_text())
        assert results["complete"] and results["metrics"]["pass@1"] == 1.0
        assert results["counts"]["samples"] == N_TASKS * N
        prov = results["provenance"]["model"]
        assert prov["base_url"] == srv.base_url and prov["client"]["max_in_flight"] <= 4
        text = "".join(
            p.read_text() for p in run_dir.iterdir() if p.is_file() and p.suffix in (".json", ".yaml", ".jsonl")
        )
        assert "sk-test-not-a-secret" not in text and "FAKE_API_KEY" in text


def test_failures_are_generation_errors_and_resume_retries_exactly_those(humaneval, tmp_path):
    seeds = _seeds(humaneval)
    broken = [seeds[(humaneval.tasks[i].task_id, 1)] for i in (2, 5, 7)]
    with FakeOpenAI(answer=_answer_from(humaneval)) as srv:
        for seed in broken:
            srv.faults[seed] = ["always500"]
        cfg = _config(tmp_path, srv.base_url, max_attempts=3)
        proc = _run(["run", str(cfg), "--out", str(tmp_path / "results"), "--run-id", "r2", "--quiet"], tmp_path)
        assert proc.returncode == 1 and "incomplete" in proc.stderr
        run_dir = tmp_path / "results" / "r2"
        results = json.loads((run_dir / "results.json").read_text())
        assert not results["complete"] and results["counts"]["generation_error"] == 3
        assert results["counts"]["samples"] == N_TASKS * N - 3  # errors are never scored
        samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
        assert all(s["passed"] for s in samples)
        assert all(srv.attempts[s] == 3 for s in broken)
        before = dict(srv.attempts)
        srv.faults.clear()
        proc = _run(["run", "--resume", str(run_dir), "--quiet"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        new = {s: srv.attempts[s] - before.get(s, 0) for s in srv.attempts if srv.attempts[s] != before.get(s, 0)}
        assert new == {s: 1 for s in broken}
        results = json.loads((run_dir / "results.json").read_text())
        assert results["complete"] and results["counts"]["samples"] == N_TASKS * N
        assert results["metrics"]["pass@1"] == 1.0


def test_missing_api_key_fails_before_anything(tmp_path):
    cfg = _config(tmp_path, "http://127.0.0.1:9/v1")
    env = {k: v for k, v in os.environ.items() if k != "FAKE_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(cfg), "--out", str(tmp_path / "res")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "FAKE_API_KEY is not set" in proc.stderr
    assert not (tmp_path / "res").exists()


def test_generate_then_evaluate_run_dir(humaneval, tmp_path):
    """The two halves alone: `harness generate` writes generations only; `harness evaluate RUN_DIR` grades them."""
    with FakeOpenAI(answer=_answer_from(humaneval)) as srv:
        cfg = _config(tmp_path, srv.base_url)
        gen = ["generate", str(cfg), "--out", str(tmp_path / "results"), "--run-id", "g", "--quiet"]
        proc = _run([*gen, "--set", "sandbox={kind: docker, workers: 1}"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "results" / "g"
    assert (run_dir / "generations.jsonl").exists() and not (run_dir / "samples.jsonl").exists()
    proc = _run(["evaluate", str(run_dir), "--quiet"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] and results["counts"]["samples"] == N_TASKS * N
    assert results["provenance"]["model"]["backend"] == "openai"
    # The run's own sandbox.workers holds (this machine has more CPUs than 1, the old default).
    assert results["provenance"]["workers"] == results["provenance"]["sandbox"]["workers"] == 1
    again = _run(["evaluate", str(run_dir), "--quiet"], tmp_path)
    assert again.returncode == 0
    assert json.loads((run_dir / "results.json").read_text())["provenance"]["graded_this_session"] == 0
