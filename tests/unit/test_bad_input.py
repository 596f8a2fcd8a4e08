"""Bad command-line input: exit 2 with one line naming the flag, checked before any work, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tree_digest

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "results" / "published" / "smollm2-135m-instruct-humaneval-greedy"


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


SAMPLES = '{"task_id": "HumanEval/0", "completion": "    return False\\n"}\n'


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "humaneval", "s.jsonl", "--out", "afile"], "--out afile: exists and is not a directory"),
        (["evaluate", "humaneval", "s.jsonl", "--out", "afile/x"], "--out afile/x: afile is a file"),
        (["evaluate", "humaneval", "s.jsonl", "--out", "/proc/1/x"], "--out /proc/1/x: cannot write there"),
        (["evaluate", "humaneval", "s.jsonl", "--out", "o", "--seed", "-5"], "--seed -5: must be a non-negative"),
        (["evaluate", "swebench", "--gold", "--out", "o", "--workers", "0"], "--workers, --timeout and --limit must"),
        (["run", "c.yaml", "--out", "afile"], "--out afile: exists and is not a directory"),
        (["generate", "c.yaml", "--out", "/proc/1/x"], "--out /proc/1/x: cannot write there"),
        (["run", "--resume", "afile"], "--resume afile: exists and is not a directory"),
        (["run", "c.yaml", "--out", ".", "--run-id", "graded"], "graded already holds files"),
        (["report", str(PUBLISHED), "--out", "afile/site"], "--out afile/site: afile is a file"),
        (["report", str(PUBLISHED), "--out", "site", "--seed", "-5"], "--seed -5: must be a non-negative"),
        # A --set error names the --set, a file's own error names the file.
        (["run", "c.yaml", "--set", "sampling.nn=1"], "--set sampling.nn=1: sampling.nn: unknown key"),
        (["run", "c.yaml", "--set", "sampling.n=x"], "--set sampling.n=x: sampling.n: Input should be a valid int"),
        (["run", "bad.yaml", "--set", "sampling.n=2"], "bad.yaml: sampling.zz: unknown key"),
        # Executors: a remote one only where the work is per-instance containers; a name from the registry.
        (["run", "c.yaml", "--executor", "ray"], "executor ray: neither the single-turn solver nor humaneval's"),
        (["generate", "c.yaml", "--executor", "ray"], "executor ray: neither the single-turn solver nor humaneval's"),
        (["evaluate", "humaneval", "s.jsonl", "--out", "o", "--executor", "ray"], "executor ray: humaneval is"),
        (["run", "c.yaml", "--executor", "slurm"], "executor.name: Value error, unknown executor 'slurm'"),
        (["run", "c.yaml", "--executor", "local", "--ray-address", "h:1"], "--ray-address: only with --executor ray"),
    ],
)
def test_bad_input_is_one_line_exit_2_before_any_work(tmp_path, args, message):
    (tmp_path / "s.jsonl").write_text(SAMPLES)
    (tmp_path / "afile").write_text("not a directory\n")
    model = "model: {backend: openai, name: m, model: m, base_url: 'http://127.0.0.1:9/v1'}\nbenchmark: humaneval\n"
    (tmp_path / "c.yaml").write_text(model)
    (tmp_path / "bad.yaml").write_text(model + "sampling: {zz: 1}\n")
    (tmp_path / "graded").mkdir()  # verdicts of `harness evaluate`, no config.yaml
    (tmp_path / "graded" / "samples.jsonl").write_text("")
    before = tree_digest(tmp_path)
    proc = _harness(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: {proc.stderr.strip()[7:]}"] and message in proc.stderr
    assert "Traceback" not in proc.stderr and tree_digest(tmp_path) == before


def test_version(tmp_path):
    proc = _harness("--version", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("harness 0.1.0"), proc.stdout + proc.stderr
