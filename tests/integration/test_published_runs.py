"""Run directories written by the earlier release (results/published/) still evaluate, resume and
report with this one: verdicts, metrics and the site's figures unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "results" / "published"
pytestmark = pytest.mark.docker


def _harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


def _verdicts(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    return {(r["task_id"], r["sample_id"]): (r["passed"], r["program_sha256"]) for r in rows}


def _copy(name: str, dest: Path) -> Path:
    return Path(shutil.copytree(PUBLISHED / name, dest / name, ignore=shutil.ignore_patterns(".lock")))


def test_published_runs_evaluate_resume_and_report_unchanged(tmp_path):
    names = sorted(p.name for p in PUBLISHED.iterdir() if p.is_dir())
    assert len(names) == 3
    copies = [_copy(n, tmp_path / "runs") for n in names]
    for run in copies:
        old = json.loads((run / "results.json").read_text())
        assert "headline" not in old  # written before results.json carried it
        proc = _harness("evaluate", str(run), "--quiet")
        assert proc.returncode == 0, proc.stderr
        new = json.loads((run / "results.json").read_text())
        assert new["metrics"] == old["metrics"] and new["provenance"]["graded_this_session"] == 0
        # Nothing was graded: the provenance is still that of the grading that made the verdicts.
        session = ("graded_this_session", "resumed_from_store", "run_dir")  # run_dir: where it is now
        assert {k: v for k, v in new["provenance"].items() if k not in session} == {
            k: v for k, v in old["provenance"].items() if k not in session
        }
        # Another timeout would mix verdicts of two gradings: refused before anything is written.
        written = (run / "results.json").read_bytes()
        other = _harness("evaluate", str(run), "--timeout", "10", "--quiet")
        was = old["provenance"]["timeout_s"]
        assert other.returncode == 2 and f"timeout_s {was!r} -> 10.0" in other.stderr, other.stderr
        assert (run / "results.json").read_bytes() == written and not (run / "grading.json").exists()
        assert new["headline"] == {"metric": "pass@1", "value": old["metrics"]["pass@1"]}
        assert new["leaderboard"] == old["benchmark"]
        assert _verdicts(run) == _verdicts(PUBLISHED / run.name)
        resumed = _harness("run", "--resume", str(run), "--quiet")  # nothing to generate: no model needed
        assert resumed.returncode == 0, resumed.stderr

    # Graded afresh from the stored generations alone: the same verdict for every sample.
    fresh = _copy("smollm2-135m-instruct-humaneval-greedy", tmp_path / "fresh")
    (fresh / "samples.jsonl").unlink()
    (fresh / "results.json").unlink()
    proc = _harness("evaluate", str(fresh), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((fresh / "results.json").read_text())["provenance"]["graded_this_session"] == 164
    assert _verdicts(fresh) == _verdicts(PUBLISHED / fresh.name)
    # --regrade grades every sample again with the other setting, and provenance says so.
    proc = _harness("evaluate", str(fresh), "--timeout", "10", "--regrade", "--quiet")
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((fresh / "results.json").read_text())["provenance"]
    assert prov["graded_this_session"] == 164 and prov["timeout_s"] == 10.0
    assert [(s["graded"], s["settings"]["timeout_s"]) for s in prov["grading_sessions"]] == [(164, 10.0)]

    # The report over the re-evaluated copies shows the published runs' figures.
    site_old, site_new = tmp_path / "site-old", tmp_path / "site-new"
    assert _harness("report", str(PUBLISHED), "--out", str(site_old)).returncode == 0
    rep = _harness("report", str(tmp_path / "runs"), "--out", str(site_new))
    assert rep.returncode == 0, rep.stderr
    for board in ("humaneval", "humaneval-plus"):
        rows = [
            [(r["run_id"], r["headline"], r["counts"]["passed"], r["rank"]) for r in json.loads(p.read_text())["rows"]]
            for p in (site_old / f"data/leaderboard-{board}.json", site_new / f"data/leaderboard-{board}.json")
        ]
        assert rows[0] == rows[1] and rows[0]
