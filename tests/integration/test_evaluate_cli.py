"""`harness evaluate BENCHMARK ...` through the generic CLI, graded in the real Docker sandbox."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from tests.conftest import write_jsonl

pytestmark = pytest.mark.docker


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


def test_limit_takes_the_first_tasks_of_the_file_not_of_the_dataset(humaneval, tmp_path):
    ids = ["HumanEval/7", "HumanEval/3", "HumanEval/120"]
    rows = [{"task_id": t, "completion": humaneval.by_id[t].canonical_solution} for t in ids for _ in range(2)]
    f = write_jsonl(tmp_path / "s.jsonl", rows)
    proc = _harness("evaluate", "humaneval", str(f), "--out", str(tmp_path / "o"), "--limit", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in (tmp_path / "o/samples.jsonl").read_text().splitlines()]
    assert [(v["task_id"], v["passed"]) for v in verdicts] == [(t, True) for t in ids[:2] for _ in range(2)]
    res = json.loads((tmp_path / "o/results.json").read_text())
    assert res["counts"]["tasks"] == 2 and res["headline"] == {"metric": "pass@1", "value": 1.0}


def test_gold_grades_the_reference_solutions_and_a_broken_one_is_reported(humaneval, tmp_path):
    proc = _harness("evaluate", "humaneval", "--gold", "--limit", "5", "--out", str(tmp_path / "g"), "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "g/results.json").read_text())
    assert res["gold_check"] == {"passed": 5, "total": 5, "trusted": True, "not_passed": []}
    # A dataset whose reference for one task is wrong: the set-up check fails loudly, exit 1.
    with gzip.open(humaneval.path, "rt") as fh:
        tasks = [json.loads(line) for line in fh][:5]
    tasks[2]["canonical_solution"] = "    return None\n"
    broken = write_jsonl(tmp_path / "broken.jsonl", tasks)
    out = tmp_path / "b"
    proc = _harness("evaluate", "humaneval", "--gold", "--dataset-path", str(broken), "--out", str(out), "-q")
    assert proc.returncode == 1 and "REFERENCE SOLUTIONS FAILED on 1 of 5 task(s): HumanEval/2" in proc.stderr
    assert json.loads((out / "results.json").read_text())["gold_check"]["not_passed"] == ["HumanEval/2"]


def test_a_directory_holds_one_input_graded_one_way(humaneval, tmp_path):
    ids = ["HumanEval/0", "HumanEval/1"]
    rows = [{"task_id": t, "completion": humaneval.by_id[t].canonical_solution} for t in ids]
    f = write_jsonl(tmp_path / "s.jsonl", rows)
    out = str(tmp_path / "o")
    assert _harness("evaluate", "humaneval", str(f), "--out", out, "--timeout", "1", "-q").returncode == 0
    written = (tmp_path / "o/results.json").read_bytes()
    # Other verdict settings: refused, naming the setting; the directory is untouched.
    for flag, value, said in (("--timeout", "10", "timeout_s 1.0 -> 10.0"), ("--memory-mb", "512", "memory_mb")):
        proc = _harness("evaluate", "humaneval", str(f), "--out", out, "--timeout", "1", flag, value, "-q")
        assert proc.returncode == 2 and said in proc.stderr and "--regrade" in proc.stderr, proc.stderr
    # Another samples file of the same dataset: refused, the earlier verdicts kept.
    g = write_jsonl(tmp_path / "other.jsonl", [{**r, "completion": "    return None\n"} for r in rows])
    proc = _harness("evaluate", "humaneval", str(g), "--out", out, "--timeout", "1", "-q")
    assert proc.returncode == 2 and "holds the verdicts of the predictions file" in proc.stderr, proc.stderr
    assert (tmp_path / "o/results.json").read_bytes() == written
    # Workers do not change verdicts; --regrade grades again with the new timeout.
    assert _harness("evaluate", "humaneval", str(f), "--out", out, "--timeout", "1", "-j", "1", "-q").returncode == 0
    proc = _harness("evaluate", "humaneval", str(f), "--out", out, "--timeout", "10", "--regrade", "-q")
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((tmp_path / "o/results.json").read_text())["provenance"]
    assert prov["timeout_s"] == 10.0 and prov["graded_this_session"] == 2


def test_notes_about_the_input_are_printed_and_recorded(humaneval, tmp_path):
    row = {"task_id": "HumanEval/0", "completion": humaneval.by_id["HumanEval/0"].canonical_solution}
    f = write_jsonl(tmp_path / "s.jsonl", [row, {"task_id": "HumanEval/1", "solution": "def f(): pass\n"}, row])
    proc = _harness("evaluate", "humaneval", str(f), "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 0, proc.stderr
    notes = json.loads((tmp_path / "o/results.json").read_text())["provenance"]["input_notes"]
    assert any("1 duplicate line" in n for n in notes) and len(notes) == 2, notes
    assert [line for line in proc.stderr.splitlines() if line.startswith("note: ")] == [f"note: {n}" for n in notes]


def test_the_sandbox_that_graded_is_compared_not_the_setting(humaneval, tmp_path):
    rows = [{"task_id": t, "completion": humaneval.by_id[t].canonical_solution} for t in ("HumanEval/0", "HumanEval/1")]
    f = write_jsonl(tmp_path / "s.jsonl", rows)
    out = str(tmp_path / "o")
    assert _harness("evaluate", "humaneval", str(f), "--out", out, "--limit", "1", "-q").returncode == 0  # auto
    record = json.loads((tmp_path / "o/grading.json").read_text())
    assert record["settings"]["sandbox_kind"] == "docker" and record["settings"]["image"].startswith("harness-sandbox:")
    proc = _harness("evaluate", "humaneval", str(f), "--out", out, "--sandbox", "bwrap", "-q")
    assert proc.returncode == 2 and "sandbox_kind 'docker' -> 'bwrap'" in proc.stderr, proc.stderr
    assert _harness("evaluate", "humaneval", str(f), "--out", out, "--sandbox", "docker", "-q").returncode == 0
