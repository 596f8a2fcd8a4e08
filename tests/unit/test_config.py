"""Every shipped config validates; typos and wrong types give the promised errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.config import load_config
from harness.errors import UserInputError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENV = {
    "HARNESS_TINY_MODEL": "/models/tiny",
    "SWE1_BASE_URL": "http://127.0.0.1:1/v1",
    "HARNESS_AGENT_DATASET": "/data/calc.jsonl",
}

MINIMAL = """
model:
  backend: openai            # vllm | vllm-server | openai | transformers
  name: fake-model           # label in results and reports
  base_url: http://127.0.0.1:8000/v1
  model: fake-model          # model id sent to the endpoint
  api: chat                  # chat | completions
  api_key_env: OPENAI_API_KEY
  max_concurrency: 8
benchmark:
  name: humaneval            # humaneval | humaneval-plus (| swebench-* later)
  limit: 40
prompt:
  mode: chat                 # chat | completion
sampling:
  temperature: 0.0
  max_tokens: 512
  n: 1
  seed: 1234
sandbox: auto
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in ("claims.yaml", "prices.yaml"))
)
def test_shipped_configs_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.model.name and cfg.benchmark.name


def test_issue_example_works_as_written(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(MINIMAL)
    cfg = load_config(f)
    assert cfg.model.backend == "openai" and cfg.benchmark.limit == 40 and cfg.sandbox.kind == "auto"


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda d: d["model"].update(max_concurency=8), "model.max_concurency: unknown key; allowed here:"),
        (lambda d: d["sampling"].update(temprature=0.2), "sampling.temprature: unknown key"),
        (lambda d: d["sampling"].update(n="many"), "sampling.n: Input should be a valid integer"),
        (
            lambda d: d["model"].update(backend="tgi"),
            "model.backend: must be one of 'vllm', 'vllm-server', 'openai', 'transformers' (got 'tgi')",
        ),
        (
            lambda d: d["model"].update(api="stream"),
            "model.api: must be one of 'chat' or 'completions' (got 'stream')",
        ),
        (
            lambda d: d["benchmark"].update(name="mbpp"),
            "benchmark.name: must be one of 'humaneval', 'humaneval-plus', 'swebench' (got 'mbpp')",
        ),
        (
            lambda d: d["sampling"].update(temperature=-1),
            "sampling.temperature: Input should be greater than or equal",
        ),
        (lambda d: d.update(extra_section={}), "extra_section: unknown key"),
    ],
)
def test_errors_name_file_key_value_and_allowed(tmp_path, mutate, expected):
    data = yaml.safe_load(MINIMAL)
    mutate(data)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(UserInputError) as e:
        load_config(f)
    assert str(f) in str(e.value) and expected in str(e.value), str(e.value)


def test_set_overrides_and_env_expansion(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text(MINIMAL.replace("http://127.0.0.1:8000/v1", "${FAKE_BASE}/v1"))
    monkeypatch.setenv("FAKE_BASE", "http://127.0.0.1:9999")
    cfg = load_config(f, ["sampling.n=20", "sampling.temperature=0.2", "model.max_concurrency=64"])
    assert cfg.sampling.n == 20 and cfg.sampling.temperature == 0.2 and cfg.model.max_concurrency == 64
    assert cfg.model.base_url == "http://127.0.0.1:9999/v1"
    # ${...} is not expanded where it is not meant to be.
    cfg = load_config(f, ["model.name=${FAKE_BASE}"])
    assert cfg.model.name == "${FAKE_BASE}"
    monkeypatch.delenv("FAKE_BASE")
    with pytest.raises(UserInputError, match="FAKE_BASE is not set"):
        load_config(f)
    with pytest.raises(UserInputError, match=r"expected key\.path=value"):
        load_config(f, ["sampling.n"])


def test_yaml_syntax_error_names_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  backend: [openai\n")
    with pytest.raises(UserInputError, match=rf"{f}:\d+: not valid YAML"):
        load_config(f)


def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(MINIMAL.replace("max_concurrency", "max_concurency"))
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(f), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "model.max_concurency: unknown key" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "name,message",
    [
        ("code-llama-70b.yaml", "4 x 1 x 1 = 4 GPUs needed, 0 visible"),
        ("code-llama-400b.yaml", "ray"),
    ],
)
def test_gpu_configs_fail_preflight_clearly_without_gpus(name, message, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(CONFIGS / name), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (2, 3), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


def test_grading_a_run_directory_does_not_need_the_models_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_TEST_UNSET_URL", raising=False)
    path = tmp_path / "config.yaml"
    model = {"backend": "openai", "name": "m", "model": "m", "base_url": "${HARNESS_TEST_UNSET_URL}"}
    path.write_text(yaml.safe_dump({"model": model, "benchmark": {"name": "humaneval"}}))
    with pytest.raises(UserInputError, match="HARNESS_TEST_UNSET_URL is not set"):
        load_config(path)  # a run or a resume needs the endpoint
    assert load_config(path, env_required=False).model.base_url == "${HARNESS_TEST_UNSET_URL}"
    with pytest.raises(UserInputError, match="HARNESS_TEST_UNSET_URL is not set"):
        load_config(path)  # the leniency ends with the call
