import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HEAVY = ("docker", "numpy", "vllm", "torch", "transformers", "swebench", "httpx")


def test_help_does_not_import_heavy_modules():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "harness", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "evaluate" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_list_shows_registries():
    proc = subprocess.run([sys.executable, "-m", "harness", "list"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in (
        "benchmarks:",
        "humaneval",
        "humaneval-plus",
        "sandboxes:",
        "docker",
        "bwrap",
        "model backends:",
    ):
        assert word in proc.stdout


def _harness(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize(
    "args,message",
    [
        (["humaneval", "S", "--images", "keep"], "--images: does not apply to humaneval"),
        (["humaneval", "S", "--instance-id", "x"], "--instance-id: does not apply to humaneval"),
        (["swebench", "S", "--sandbox", "docker"], "--sandbox: does not apply to swebench"),
        (["swebench", "S", "--memory-mb", "512"], "--memory-mb: does not apply to swebench"),
        (["humaneval", "S", "--set", "benchmark.max_workers=3"], "benchmark.max_workers: unknown key"),
        (["swebench", "S", "--set", "sandbox.kind=docker"], "swebench's scorer does not use the sandbox"),
        (["humaneval", "S", "--seed", "-5"], "--seed -5: must be a non-negative integer"),
        (["humaneval", "S", "--workers", "0"], "must be positive"),
    ],
)
def test_options_the_benchmark_does_not_take_are_refused(tmp_path, args, message):
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "completion": "    pass\\n"}\n')
    args = [a if a != "S" else str(samples) for a in args]
    proc = _harness("evaluate", *args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_swebench_without_its_extra_is_exit_3_naming_the_install(tmp_path):
    """The package made unimportable in this process only (sys.modules entry None)."""
    code = "import sys; sys.modules['swebench'] = None; from harness.cli import main; main()"
    preds = tmp_path / "p.jsonl"
    preds.write_text("{}\n")
    dataset = REPO.parent / "shared/data/swebench/SWE-bench_Lite.dev.parquet"
    args = ["evaluate", "swebench", str(preds), "--dataset", str(dataset), "--out", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert "pip install 'harness[swebench]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("run_id", ["../../x", "a/b", ".."])
def test_a_run_id_is_a_name_not_a_path(tmp_path, run_id):
    proc = _harness("run", str(REPO / "configs/smoke-tiny.yaml"), "--run-id", run_id, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and f"--run-id {run_id!r}: a run id is a name" in proc.stderr, proc.stderr
    assert not any(tmp_path.rglob("*"))
