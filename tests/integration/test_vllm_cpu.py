"""Real vLLM (CPU build) with the real tiny model: in-process engine, `vllm serve`, the openai
backend against that server, and kill -9 during generation then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT = 6


def _harness(args, env_model, timeout=900, **kw):
    env = dict(os.environ, HARNESS_TINY_MODEL=env_model)
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        **kw,
    )


def _gens(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]
    return {(r["task_id"], r["sample_id"]): r for r in rows}


@pytest.fixture(scope="module")
def engine_run(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vllm")
    proc = _harness(
        [
            "run",
            str(REPO / "configs/smoke-tiny.yaml"),
            "--limit",
            str(LIMIT),
            "--out",
            str(out),
            "--run-id",
            "engine",
            "--set",
            "model.chunk_size=2",
            "--quiet",
        ],
        tiny_model,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "engine"


def test_in_process_engine_end_to_end(engine_run):
    results = json.loads((engine_run / "results.json").read_text())
    assert results["complete"] and results["counts"]["samples"] == LIMIT
    gens = _gens(engine_run)
    assert len(gens) == LIMIT and all(g["raw"] and g["completion_tokens"] > 0 for g in gens.values())
    model = results["provenance"]["model"]
    assert model["backend"] == "vllm" and model["software"]["vllm"]
    assert len(model["tokenizer_sha256"]) == 64 and len(model["chat_template_sha256"]) == 64
    assert model["resolved_revision"].startswith("sha256:") and model["completion_tokens"] > 0
    assert model["tokens_per_s"] > 0 and model["prompt_template_sha256"]
    assert (engine_run / "config.yaml").exists()


def test_kill_9_during_generation_then_resume_gives_the_same_result(engine_run, tiny_model, tmp_path):
    cmd = [
        "run",
        str(REPO / "configs/smoke-tiny.yaml"),
        "--limit",
        str(LIMIT),
        "--out",
        str(tmp_path),
        "--run-id",
        "killed",
        "--set",
        "model.chunk_size=2",
        "--quiet",
    ]
    env = dict(os.environ, HARNESS_TINY_MODEL=tiny_model)
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *cmd],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gens = tmp_path / "killed" / "generations.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if gens.exists() and len(gens.read_bytes().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(gens.read_bytes().splitlines())
    assert 2 <= partial < LIMIT
    resumed = _harness(["run", "--resume", str(tmp_path / "killed"), "--quiet"], tiny_model)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _gens(engine_run), _gens(tmp_path / "killed")
    assert sorted(a) == sorted(b) and len(b) == LIMIT
    assert all(a[k]["raw"] == b[k]["raw"] for k in a), "greedy decoding must not change across a resume"
    ra = json.loads((engine_run / "results.json").read_text())
    rb = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert ra["metrics"]["pass@1"] == rb["metrics"]["pass@1"]
    # The killed session never finished, so only the resume's session is recorded, with what it generated.
    assert rb["provenance"]["model"]["sessions"][-1]["generated"] == LIMIT - partial


@pytest.fixture(scope="module")
def server_run(tiny_model, tmp_path_factory) -> Path:
    """The vllm-server backend: starts `vllm serve` on loopback, generates, stops it."""
    import yaml

    out = tmp_path_factory.mktemp("server")
    cfg = yaml.safe_load((REPO / "configs/smoke-tiny.yaml").read_text())
    del cfg["model"]["chunk_size"]
    cfg["model"].update(backend="vllm-server", max_concurrency=8)
    f = out / "server.yaml"
    f.write_text(yaml.safe_dump(cfg))
    proc = _harness(
        ["run", str(f), "--limit", str(LIMIT), "--out", str(out), "--run-id", "server", "--quiet"], tiny_model
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "server"


def test_vllm_server_backend(server_run, engine_run):
    results = json.loads((server_run / "results.json").read_text())
    assert results["complete"] and results["counts"]["samples"] == LIMIT
    log = (server_run / "server.log").read_text()
    assert "127.0.0.1" in log or "Uvicorn" in log or "Started server" in log
    model = results["provenance"]["model"]
    assert model["backend"] == "vllm-server" and model["started_server"] and model["client"]["errors"] == 0
    # The server process is gone once the run ends.
    out = subprocess.run(["pgrep", "-f", "vllm.entrypoints.openai.api_server"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_openai_backend_against_real_vllm_serve(tiny_model, tmp_path):
    """A real `vllm serve` on loopback, then the openai backend (chat) against it."""
    import yaml

    from harness.config import VLLMServerModel
    from harness.models.vllm_server import VLLMServerBackend

    srv = VLLMServerBackend(
        VLLMServerModel(
            backend="vllm-server",
            name="tiny",
            model=tiny_model,
            device="cpu",
            dtype="bfloat16",
            max_model_len=2048,
            gpu_memory_utilization=0.4,
            enforce_eager=True,
        ),
        tmp_path,
    )
    try:
        srv.start()
        cfg = {
            "model": {
                "backend": "openai",
                "name": "tiny-via-openai",
                "base_url": srv.base_url,
                "model": "tiny",
                "api": "chat",
                "max_concurrency": 4,
            },
            "benchmark": {"name": "humaneval", "limit": 3},
            "sampling": {"max_tokens": 256},
            "sandbox": "docker",
        }
        f = tmp_path / "openai.yaml"
        f.write_text(yaml.safe_dump(cfg))
        proc = _harness(["run", str(f), "--out", str(tmp_path), "--run-id", "oa", "--quiet"], tiny_model)
        assert proc.returncode == 0, proc.stderr[-3000:]
        gens = _gens(tmp_path / "oa")
        assert len(gens) == 3 and all(g["raw"] and g["error"] is None for g in gens.values())
        assert all(g["completion_tokens"] > 0 and g["latency_s"] > 0 for g in gens.values())
    finally:
        srv.close()
