"""A benchmark defined only in the test tree (tests/plugins/toy_benchmark.py), with its own tasks,
prompt and scorer, found through entry points, runs through `harness run` against the
fault-injecting endpoint, `--resume`, `harness evaluate RUN_DIR` and `harness report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from harness.models.base import request_seed
from tests.fakes.openai_server import FakeOpenAI
from tests.plugins.toy_benchmark import TASKS

REPO = Path(__file__).resolve().parents[2]
# The model answers right when the first operand is even: tasks 1, 3, 5, 7 of the 8.
EXPECTED_PASSED = sum(1 for _, a, _ in TASKS if a % 2 == 0)


def _plugin_site(tmp_path: Path) -> Path:
    """A dist-info directory declaring the toy plug-ins, as `pip install` of a plug-in package would leave."""
    site = tmp_path / "site"
    dist = site / "toy_harness_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-harness-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[harness.benchmarks]\ntoy-arith = tests.plugins.toy_benchmark:ToyBenchmark\n\n"
        "[harness.scorers]\ntoy-exact = tests.plugins.toy_benchmark:ToyScorer\n"
    )
    return site


def _answer(body: dict) -> str:
    question = body["messages"][-1]["content"]
    a, b = (int(x) for x in question.removeprefix("What is ").removesuffix("?").split(" + "))
    return f"The answer is {a + b if a % 2 == 0 else a + b + 1}."


def _harness(args: list[str], tmp_path: Path, site: Path | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, FAKE_API_KEY="sk-test", TOY_LOAD_LOG=str(tmp_path / "loads.log"))
    env["PYTHONPATH"] = os.pathsep.join([*([str(site)] if site else []), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def _config(tmp_path: Path, base_url: str) -> Path:
    cfg = {
        "model": {
            "backend": "openai",
            "name": "toy-model",
            "model": "toy-model",
            "base_url": base_url,
            "api_key_env": "FAKE_API_KEY",
            "max_attempts": 2,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
        },
        "benchmark": {"name": "toy-arith"},
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _loads(tmp_path: Path) -> int:
    log = tmp_path / "loads.log"
    n = len(log.read_text().splitlines()) if log.exists() else 0
    log.unlink(missing_ok=True)
    return n


def test_toy_benchmark_runs_resumes_evaluates_and_reports(tmp_path):
    site = _plugin_site(tmp_path)
    listed = _harness(["list"], tmp_path, site)
    assert listed.returncode == 0 and "toy-arith" in listed.stdout and "toy-exact" in listed.stdout
    # Without the entry points the same config is bad input naming the benchmarks there are.
    with FakeOpenAI(answer=_answer) as srv:
        cfg = _config(tmp_path, srv.base_url)
        alone = _harness(["run", str(cfg), "--out", str(tmp_path / "r")], tmp_path, None)
        assert alone.returncode == 2 and "benchmark.name: must be one of" in alone.stderr, alone.stderr
        assert srv.attempts == {}  # nothing was asked of the model
        _loads(tmp_path)

        broken = [request_seed(1234, t, 0) for t in ("Toy/0", "Toy/5")]
        for seed in broken:
            srv.faults[seed] = ["always500"]
        proc = _harness(["run", str(cfg), "--out", str(tmp_path / "r"), "--run-id", "toy", "-q"], tmp_path, site)
        assert proc.returncode == 1 and "incomplete" in proc.stderr, proc.stderr
        assert _loads(tmp_path) == 1  # the dataset is loaded once per run
        run_dir = tmp_path / "r" / "toy"
        res = json.loads((run_dir / "results.json").read_text())
        assert res["counts"]["generation_error"] == 2 and res["counts"]["samples"] == len(TASKS) - 2
        assert res["leaderboard"] == "toy-arith" and res["headline"]["metric"] == "pass@1"

        srv.faults.clear()
        proc = _harness(["run", "--resume", str(run_dir), "-q"], tmp_path, site)
        assert proc.returncode == 0, proc.stderr
        assert {s: srv.attempts[s] for s in broken} == {s: 3 for s in broken}  # 2 failed tries, then 1 resumed
        assert sum(srv.attempts.values()) == len(TASKS) + 2 * 2  # every other sample asked exactly once
    res = json.loads((run_dir / "results.json").read_text())
    assert res["complete"] and res["metrics"]["pass@1"] == EXPECTED_PASSED / len(TASKS)
    assert res["headline"] == {"metric": "pass@1", "value": EXPECTED_PASSED / len(TASKS)}
    verdicts = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted(v["task_id"] for v in verdicts if v["passed"]) == ["Toy/1", "Toy/3", "Toy/5", "Toy/7"]

    again = _harness(["evaluate", str(run_dir), "-q"], tmp_path, site)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == res["metrics"]
    # The toy's scorer uses no sandbox, so a sandbox flag is refused rather than ignored.
    refused = _harness(["evaluate", str(run_dir), "--sandbox", "docker"], tmp_path, site)
    assert refused.returncode == 2 and "--sandbox: does not apply to toy-arith" in refused.stderr

    out = tmp_path / "site-out"
    rep = _harness(["report", str(run_dir), "--out", str(out)], tmp_path, site)
    assert rep.returncode == 0, rep.stderr
    board = json.loads((out / "data" / "leaderboard-toy-arith.json").read_text())
    assert [(r["model"], r["headline"]["value"]) for r in board["rows"]] == [("toy-model", 0.5)]
