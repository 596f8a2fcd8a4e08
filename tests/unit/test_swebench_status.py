"""How grade_one maps the official swebench package's outcome for one instance to a status. No Docker.

Only `run_instance` (the part that needs Docker) is faked. The fake keeps the package's contract: it
writes run_instance.log under RUN_EVALUATION_LOG_DIR/<run_id>/<model>/<instance>, and returns either
None or (instance_id, report), the report made by the package's own get_eval_report from a test log.
The TestSpec comes from the package's real make_test_spec on a row of the local SWE-bench-format
dataset (tests/integration/swebench_local.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from swebench.harness import run_evaluation as rv
from swebench.harness.constants import APPLY_PATCH_FAIL, END_TEST_OUTPUT, LOG_INSTANCE, START_TEST_OUTPUT
from swebench.harness.grading import get_eval_report

from harness.records import Status
from tests.integration import swebench_local

try:  # grade_one moved from harness.benchmarks.swebench_grade during a refactor
    from harness.scoring.swebench import grade_one
except ImportError:
    from harness.benchmarks.swebench_grade import grade_one  # type: ignore[no-redef]

pytestmark = pytest.mark.unit

F2P = "tests/test_ops.py::test_add"
P2P = ["tests/test_ops.py::test_mul", "tests/test_ops.py::test_mul_zero"]
PATCH = """diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -3,7 +3,7 @@

 def add(a, b):
     \"\"\"Return a + b.\"\"\"
-    return a - b
+    return a + b


 def mul(a, b):
"""
TEST_PATCH = """diff --git a/tests/test_ops.py b/tests/test_ops.py
--- a/tests/test_ops.py
+++ b/tests/test_ops.py
@@ -7,3 +7,7 @@ def test_mul():

 def test_mul_zero():
     assert mul(0, 7) == 0
+
+
+def test_add():
+    assert add(2, 3) == 5
"""
MODEL = "org/model-7b"  # a "/" in the name: the package writes logs under "org__model-7b"
CLIENT = object()  # grade_one only hands the client on to run_instance
TIMEOUT_S = 77


def instance_row() -> dict:
    """The local dataset's instance, as swebench_local.build writes it (without building its image)."""
    base = "0" * 40
    return {
        "repo": swebench_local.REPO,
        "instance_id": swebench_local.INSTANCE_ID,
        "base_commit": base,
        "patch": PATCH,
        "test_patch": TEST_PATCH,
        "problem_statement": "calc.ops.add subtracts.",
        "hints_text": "",
        "created_at": "2026-11-25T00:00:00Z",
        "version": "0.1",
        "FAIL_TO_PASS": json.dumps([F2P]),
        "PASS_TO_PASS": json.dumps(P2P),
        "environment_setup_commit": base,
        "image": "harness-swebench/calc-1:unit",
        "eval_script": swebench_local.eval_script(base, TEST_PATCH),
        "log_parser": "parse_log_pytest",
        "eval_type": "pass_and_fail",
    }


def pytest_log(outcomes: dict[str, str]) -> str:
    """What the eval script prints: the pytest -rA summary between the package's markers."""
    lines = [f"+ : '{START_TEST_OUTPUT}'", "============ short test summary info ============"]
    lines += [f"{status} {test}" for test, status in outcomes.items()]
    lines += [f"+ : '{END_TEST_OUTPUT}'"]
    return "\n".join(lines) + "\n"


@dataclass
class FakeRunInstance:
    """Stands in for swebench's run_instance; `outcome` says what the package would have done."""

    outcome: str  # "tests" | "no_output" | "apply_failed" | "timed_out" | "raises" | "none_no_log" | "none_error"
    test_output: str = ""
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def __call__(self, test_spec: Any, pred: dict, client: Any, run_id: str, timeout: int | None = None) -> Any:
        self.calls.append((test_spec, pred, client, run_id, timeout))
        iid = test_spec.instance_id
        log_dir = rv.RUN_EVALUATION_LOG_DIR / run_id / pred["model_name_or_path"].replace("/", "__") / iid
        if self.outcome == "raises":
            raise RuntimeError("docker daemon went away")
        if self.outcome == "none_no_log":
            return None
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / LOG_INSTANCE
        if self.outcome == "apply_failed":
            log.write_text(
                f"Failed to apply patch to container: git apply --verbose\n{APPLY_PATCH_FAIL}:\n"
                "error: patch failed: calc/ops.py:30\nerror: calc/ops.py: patch does not apply\n"
            )
            return None
        if self.outcome == "timed_out":
            log.write_text(f"EvaluationError: {iid}: Test timed out after {timeout} seconds.\n")
            return None
        if self.outcome == "none_error":
            log.write_text("Container started\nError in evaluating model for x: 409 Conflict\nmore context\n")
            return None
        output = log_dir / "test_output.txt"
        output.write_text(self.test_output)
        log.write_text("Grading answer...\n")
        return iid, get_eval_report(test_spec, pred, str(output), include_tests_status=True)


@pytest.fixture
def log_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # What grade() does before grading: the package writes its logs into the run directory.
    monkeypatch.setattr(rv, "RUN_EVALUATION_LOG_DIR", tmp_path / "logs")
    return tmp_path / "logs"


def grade(monkeypatch: pytest.MonkeyPatch, log_root: Path, fake: FakeRunInstance, patch: str | None = PATCH, **pred):
    monkeypatch.setattr(rv, "run_instance", fake)
    return grade_one(
        instance_row(), {"model_patch": patch, "model_name_or_path": MODEL, **pred}, CLIENT, log_root, TIMEOUT_S
    )


def test_resolved(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    fake = FakeRunInstance("tests", pytest_log({F2P: "PASSED", P2P[0]: "PASSED", P2P[1]: "PASSED"}))
    res = grade(monkeypatch, log_root, fake)
    assert res.status is Status.RESOLVED and res.passed
    sha = hashlib.sha256(PATCH.encode()).hexdigest()
    assert (res.task_id, res.sample_id, res.program_sha256) == (swebench_local.INSTANCE_ID, 0, sha)
    assert res.extra["fail_to_pass"] == {"success": [F2P], "failure": []}
    assert res.extra["pass_to_pass"] == {"success": P2P, "failure": []}
    # What grade_one handed the package: the real TestSpec, the prediction with its id, the client,
    # a run id naming the patch, and the timeout.
    [(spec, pred, client, run_id, timeout)] = fake.calls
    assert spec.instance_id == swebench_local.INSTANCE_ID and spec.FAIL_TO_PASS == [F2P]
    assert pred["instance_id"] == swebench_local.INSTANCE_ID and pred["model_patch"] == PATCH
    assert client is CLIENT and run_id == sha[:16] and timeout == TIMEOUT_S
    assert res.extra["log_dir"] == str(log_root / sha[:16] / "org__model-7b" / swebench_local.INSTANCE_ID)


def test_unresolved_names_the_failing_fail_to_pass_tests(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    fake = FakeRunInstance("tests", pytest_log({F2P: "FAILED", P2P[0]: "PASSED", P2P[1]: "PASSED"}))
    res = grade(monkeypatch, log_root, fake)
    assert res.status is Status.UNRESOLVED and not res.passed
    assert res.detail == f"FAIL_TO_PASS still failing: {F2P}"
    assert res.extra["fail_to_pass"]["failure"] == [F2P]


def test_unresolved_by_a_broken_pass_to_pass_test(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    fake = FakeRunInstance("tests", pytest_log({F2P: "PASSED", P2P[0]: "FAILED", P2P[1]: "PASSED"}))
    res = grade(monkeypatch, log_root, fake)
    assert res.status is Status.UNRESOLVED
    assert res.detail == "tests failed"
    assert res.extra["pass_to_pass"]["failure"] == [P2P[0]]


def test_report_without_test_results_is_unresolved(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    # The package's report for a test log it cannot use (no test-output markers): the model's patch
    # applied (run_instance returned a report), the test patch did not; not resolved, as the package says.
    fake = FakeRunInstance("tests", "+ git apply -v -\nerror: corrupt patch at line 12\n")
    res = grade(monkeypatch, log_root, fake)
    assert len(fake.calls) == 1
    assert res.status is Status.UNRESOLVED and res.detail == "no test results in the log"


def test_report_flagging_an_environment_fault_is_infra_error(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    fake = FakeRunInstance("tests", f"+ : '{START_TEST_OUTPUT}'\ncollecting ...\nKilled\n")
    res = grade(monkeypatch, log_root, fake)
    [(_, pred, _, run_id, _)] = fake.calls
    report = get_eval_report(
        fake.calls[0][0],
        pred,
        str(log_root / run_id / "org__model-7b" / pred["instance_id"] / "test_output.txt"),
        include_tests_status=True,
    )[pred["instance_id"]]
    assert report["infra_failure"] and report["infra_failure_reason"] == "out_of_memory"  # the package's verdict
    assert res.status is Status.INFRA_ERROR, res


def test_patch_that_does_not_apply_is_patch_failed(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    # run_instance returns None and says why only in its log.
    res = grade(monkeypatch, log_root, FakeRunInstance("apply_failed"))
    assert res.status is Status.PATCH_FAILED and res.detail == "patch did not apply"


def test_tests_over_the_timeout_are_timeout(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    res = grade(monkeypatch, log_root, FakeRunInstance("timed_out"))
    assert res.status is Status.TIMEOUT and res.detail == f"tests ran over {TIMEOUT_S} s"


def test_an_exception_from_the_package_is_infra_error(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    res = grade(monkeypatch, log_root, FakeRunInstance("raises"))
    assert res.status is Status.INFRA_ERROR
    assert res.detail == "RuntimeError: docker daemon went away"


def test_no_report_and_no_log_is_infra_error(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    res = grade(monkeypatch, log_root, FakeRunInstance("none_no_log"))
    assert res.status is Status.INFRA_ERROR and res.detail == "no report written"


def test_no_report_and_an_unrecognised_log_is_infra_error(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    res = grade(monkeypatch, log_root, FakeRunInstance("none_error"))
    assert res.status is Status.INFRA_ERROR
    assert res.detail == "Error in evaluating model for x: 409 Conflict"  # the log's last line naming an error


@pytest.mark.parametrize("patch", ["", "  \n\t\n", None])
def test_empty_patch_is_never_run(monkeypatch: pytest.MonkeyPatch, log_root: Path, patch: str | None) -> None:
    fake = FakeRunInstance("tests", pytest_log({F2P: "PASSED", P2P[0]: "PASSED", P2P[1]: "PASSED"}))
    # The spy registers a call when there is one: the same fake with a real patch is called once...
    assert grade(monkeypatch, log_root, fake).status is Status.RESOLVED and len(fake.calls) == 1
    fake.calls.clear()
    # ...and not at all with an empty one.
    res = grade(monkeypatch, log_root, fake, patch=patch, _why_empty="no diff in the answer")
    assert res.status is Status.EMPTY_PATCH and res.detail == "no diff in the answer"
    assert fake.calls == []
    assert res.program_sha256 == hashlib.sha256((patch or "").encode()).hexdigest()


def test_unparsable_diff_is_patch_failed_without_running(monkeypatch: pytest.MonkeyPatch, log_root: Path) -> None:
    fake = FakeRunInstance("tests", pytest_log({F2P: "PASSED", P2P[0]: "PASSED", P2P[1]: "PASSED"}))
    assert grade(monkeypatch, log_root, fake).status is Status.RESOLVED and len(fake.calls) == 1
    fake.calls.clear()
    broken = "diff --git a/calc/ops.py b/calc/ops.py\n--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -3,7 +3,7 @@\n-only\n"
    res = grade(monkeypatch, log_root, fake, patch=broken)
    assert res.status is Status.PATCH_FAILED and res.detail.startswith("not a unified diff")
    assert fake.calls == []
