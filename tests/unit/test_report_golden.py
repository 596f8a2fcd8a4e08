"""Golden tests of the report's data files (SITE/data/*.json), built from the published runs.

The data files are a contract with other sites, so any change to them must be deliberate: after
reviewing a change, regenerate the golden files with
    HARNESS_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_report_golden.py
SOURCE_DATE_EPOCH pins the generation time; the commit that built the report is masked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, tree_digest

GOLDEN = REPO / "tests/cases/report_golden"
RUNS = [
    "results/published/smollm2-135m-instruct-humaneval-greedy",
    "results/published/smollm2-135m-instruct-humanevalplus-greedy",
    "results/published/smollm2-135m-instruct-humaneval-t0.8-n5",
]
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z


def build(out: Path) -> None:
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    args = ["report", *RUNS, "--out", str(out), "--claims", "tests/cases/report/claims.yaml"]
    args += ["--prices", "tests/cases/report/prices.yaml", "--title", "Golden report"]
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def data_files(out: Path) -> dict[str, dict]:
    files = {}
    for p in sorted((out / "data").rglob("*.json")):
        data = json.loads(p.read_text())
        if data.get("schema") == "harness-report/index":
            data["generator"]["harness_git_sha"] = "<commit>"  # changes with every commit
        files[p.relative_to(out / "data").as_posix()] = data
    return files


def test_data_files_equal_the_golden_files(tmp_path):
    build(tmp_path / "site")
    produced = data_files(tmp_path / "site")
    if os.environ.get("HARNESS_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for name, data in produced.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    golden = {p.relative_to(GOLDEN).as_posix(): json.loads(p.read_text()) for p in sorted(GOLDEN.rglob("*.json"))}
    assert sorted(produced) == sorted(golden)
    for name in golden:
        assert produced[name] == golden[name], f"data/{name} differs from {GOLDEN / name}"


def test_the_golden_report_covers_what_it_should():
    """The golden files themselves hold each verdict, a priced run, ranked rows and a comparison."""
    claims = json.loads((GOLDEN / "claims.json").read_text())["rows"]
    assert {r["verdict"] for r in claims} == {"consistent", "below claim", "above claim", "not yet replicated"}
    board = json.loads((GOLDEN / "leaderboard-humaneval.json").read_text())
    assert [r["rank"] for r in board["rows"]] == [1, 2]
    assert all(r["cost"]["price_per_1k_tasks"] for r in board["rows"])
    assert len(list((GOLDEN / "compare").glob("*.json"))) == 1
    index = json.loads((GOLDEN / "index.json").read_text())
    assert [s["path"] for s in index["inputs"]] == sorted(RUNS)


def test_same_inputs_give_a_byte_identical_site(tmp_path):
    build(tmp_path / "a")
    build(tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
