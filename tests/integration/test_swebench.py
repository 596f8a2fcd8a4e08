"""SWE-bench grading through the real official harness (swebench package) and the real Docker
engine, on the local SWE-bench-format dataset: gold resolves, empty and wrong patches do not, a
patch that does not apply is patch_failed, a patch that hangs the tests is timeout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration import swebench_local

pytestmark = [pytest.mark.swebench, pytest.mark.docker]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


def _preds(local, name: str, path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "instance_id": swebench_local.INSTANCE_ID,
                "model_name_or_path": f"m-{name}",
                "model_patch": local["patches"][name],
            }
        )
        + "\n"
    )
    return path


def _evaluate(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "evaluate", "swebench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
    )


@pytest.mark.parametrize(
    "name,status",
    [
        ("gold", "resolved"),
        ("wrong", "unresolved"),
        ("breaks_p2p", "unresolved"),
        ("empty", "empty_patch"),
        ("not_applying", "patch_failed"),
        ("hang", "timeout"),
    ],
)
def test_statuses_through_the_official_harness(local, name, status, tmp_path):
    preds = _preds(local, name, tmp_path / "preds.jsonl")
    out = tmp_path / "run"
    proc = _evaluate([str(preds), "--dataset", str(local["dataset"]), "--out", str(out), "--timeout", "20"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["task_id"] == swebench_local.INSTANCE_ID
    assert rows[0]["status"] == status, rows[0]
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["resolved"] == (1.0 if status == "resolved" else 0.0)
    assert results["counts"][status] == 1 and results["complete"]
    if status in ("resolved", "unresolved"):
        f2p, p2p = rows[0]["fail_to_pass"], rows[0]["pass_to_pass"]
        # wrong: the bug stays (FAIL_TO_PASS fails); breaks_p2p: fixes add but breaks mul (PASS_TO_PASS fails).
        assert (f2p["success"] == ["tests/test_ops.py::test_add"]) == (name in ("gold", "breaks_p2p"))
        assert bool(p2p["failure"]) == (name == "breaks_p2p"), rows[0]
        assert Path(rows[0]["log_dir"], "test_output.txt").exists()
    # The official harness removes its containers.
    leftover = subprocess.run(["docker", "ps", "-aq", "--filter", "name=sweb.eval"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_gold_flag_checks_the_images(local, tmp_path):
    proc = _evaluate(["--gold", "--dataset", str(local["dataset"]), "--out", str(tmp_path / "gold")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "gold/results.json").read_text())
    assert results["gold_check"] == {"resolved": 1, "total": 1, "trusted": True, "not_resolved": []}


def test_same_resolved_set_as_the_packages_own_entry_point(local, tmp_path):
    """The package's run_evaluation on the same predictions gives the same verdict."""
    preds = _preds(local, "gold", tmp_path / "preds.jsonl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "swebench.harness.run_evaluation",
            "-d",
            str(local["dataset"]),
            "-p",
            str(preds),
            "-id",
            "pkg",
            "--max_workers",
            "1",
            "-t",
            "60",
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=900,
    )
    summary = json.loads(next(tmp_path.glob("m-gold.pkg.json")).read_text())
    ours = _evaluate([str(preds), "--dataset", str(local["dataset"]), "--out", str(tmp_path / "ours")], tmp_path)
    assert ours.returncode == 0
    rows = [json.loads(line) for line in (tmp_path / "ours/samples.jsonl").read_text().splitlines()]
    assert {r["task_id"] for r in rows if r["status"] == "resolved"} == set(summary["resolved_ids"])


def test_missing_image_is_infra_error_and_resume_retries(local, tmp_path):
    later = "harness-swebench/appears-later:0"
    subprocess.run(["docker", "rmi", "-f", later], capture_output=True)
    inst = dict(local["instance"], image=later)
    ds = tmp_path / "missing.jsonl"
    ds.write_text(json.dumps(inst) + "\n")
    preds = _preds(local, "gold", tmp_path / "preds.jsonl")
    out = tmp_path / "run"
    proc = _evaluate([str(preds), "--dataset", str(ds), "--out", str(out)], tmp_path)
    assert proc.returncode == 1 and "incomplete" in proc.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["infra_error"] == 1 and results["infra_errors"] == [swebench_local.INSTANCE_ID]
    assert results["counts"]["unresolved"] == 0
    # The image appears (pulled or built later; here: tagged): the same command retries exactly that instance.
    subprocess.run(["docker", "tag", local["image"], later], check=True)
    try:
        proc = _evaluate([str(preds), "--dataset", str(ds), "--out", str(out)], tmp_path)
    finally:
        subprocess.run(["docker", "rmi", "-f", later], capture_output=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["resolved"] == 1 and results["provenance"]["graded_this_session"] == 1


def test_bad_predictions_exit_2(local, tmp_path):
    for content, msg in (
        ('{"instance_id": "nope__x-1", "model_patch": ""}\n', "is not in"),
        ('{"model_patch": ""}\n', "missing field 'instance_id'"),
        ("not json\n", ":1: not valid JSON"),
    ):
        f = tmp_path / "p.jsonl"
        f.write_text(content)
        proc = _evaluate([str(f), "--dataset", str(local["dataset"]), "--out", str(tmp_path / "o")], tmp_path)
        assert proc.returncode == 2 and msg in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()
