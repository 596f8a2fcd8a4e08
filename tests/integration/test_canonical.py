"""Canonical solutions pass 164/164 on HumanEval and HumanEval+, in both sandboxes, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import HEPLUS_FILE, write_jsonl


@pytest.mark.parametrize("dataset", ["humaneval", "humaneval-plus"])
def test_canonical_solutions_all_pass(sandbox_kind, dataset, humaneval, humaneval_plus, tmp_path):
    bench = humaneval if dataset == "humaneval" else humaneval_plus
    samples = write_jsonl(
        tmp_path / "canonical.jsonl",
        [{"task_id": t.task_id, "completion": t.canonical_solution} for t in bench.tasks],
    )
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "harness",
        "evaluate",
        "humaneval",
        str(samples),
        "--dataset",
        dataset,
        "--out",
        str(out),
        "--sandbox",
        sandbox_kind,
        "--model-name",
        "canonical",
    ]
    if dataset == "humaneval-plus":
        cmd += ["--dataset-path", str(HEPLUS_FILE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    failing = [
        json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if not json.loads(line)["passed"]
    ]
    assert failing == []
    assert results["counts"]["passed"] == 164 and results["metrics"]["pass@1"] == 1.0
    assert results["model"] == "canonical" and results["benchmark"] == dataset
    prov = results["provenance"]
    assert prov["sandbox"]["kind"] == sandbox_kind and len(prov["predictions_sha256"]) == 64
    assert results["dataset"]["sha256"] and results["dataset"]["tasks"] == 164
    assert prov["sandbox"]["runner"]["numpy"], "numpy must be importable in the sandbox"
    if sandbox_kind == "docker":
        assert prov["sandbox"]["image_id"].startswith("sha256:")
    assert "pass@1" in proc.stdout and "164" in proc.stdout  # the summary table
