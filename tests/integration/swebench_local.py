"""A small SWE-bench-format dataset built locally, for CI without a registry.

A tiny Python repository with a real bug (`calc.ops.add` subtracts), a problem statement, a gold
patch, a test patch, FAIL_TO_PASS / PASS_TO_PASS, an instance image built from a debootstrap base
(git, python3, pytest, patch; the repository at /testbed at its base commit), and the `image`,
`eval_script`, `log_parser` and `eval_type` fields that swebench 5.x reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

BASE_PACKAGES = (
    "python3",
    "python3-pytest",
    "git",
    "patch",
    "procps",
    "ca-certificates",
)  # procps: the harness execs `kill`
BASE_CHANGES = ('CMD ["/bin/bash"]', "WORKDIR /testbed")
INSTANCE_ID = "harness__calc-1"
REPO = "harness/calc"

OPS = '''"""Arithmetic helpers."""


def add(a, b):
    """Return a + b."""
    return a - b


def mul(a, b):
    """Return a * b."""
    return a * b
'''
TESTS = """from calc.ops import add, mul


def test_mul():
    assert mul(3, 4) == 12


def test_mul_zero():
    assert mul(0, 7) == 0
"""
TESTS_AFTER = (
    TESTS
    + """

def test_add():
    assert add(2, 3) == 5
"""
)
GOOD_OPS = OPS.replace("return a - b", "return a + b")
WRONG_OPS = OPS.replace("return a - b", "return a * b")
HANG_OPS = OPS.replace("    return a - b", "    while True:\n        pass")
BREAK_MUL_OPS = GOOD_OPS.replace("return a * b", "return a + b")


# Fixed dates: the base commit's hash is the same on every build, so it matches a cached instance image.
_GIT_ENV = {**os.environ, "GIT_AUTHOR_DATE": "2026-11-25T00:00:00Z", "GIT_COMMITTER_DATE": "2026-11-25T00:00:00Z"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=_GIT_ENV
    ).stdout


def _diff(repo: Path, path: str, new_text: str) -> str:
    """A real `git diff` for replacing `path` with new_text (then restored)."""
    f = repo / path
    old = f.read_text()
    f.write_text(new_text)
    d = _git(repo, "diff", "--", path)
    f.write_text(old)
    return d


def make_repo(root: Path) -> tuple[Path, str]:
    repo = root / "calc"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc/__init__.py").write_text("")
    (repo / "calc/ops.py").write_text(OPS)
    (repo / "tests/__init__.py").write_text("")
    (repo / "tests/test_ops.py").write_text(TESTS)
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "calc: add and mul")
    return repo, _git(repo, "rev-parse", "HEAD").strip()


def eval_script(base: str, test_patch: str) -> str:
    return f"""#!/bin/bash
set -uxo pipefail
cd /testbed
git config --global --add safe.directory /testbed
cd /testbed
git status
git show
git -c core.fileMode=false diff {base}
git checkout {base} tests/test_ops.py
git apply -v - <<'EOF_114329324912'
{test_patch}
EOF_114329324912
: '>>>>> Start Test Output'
python3 -m pytest -rA tests/test_ops.py
: '>>>>> End Test Output'
git checkout {base} tests/test_ops.py
"""


def build(client, workdir: Path, log=print) -> dict:
    """Build the base and instance images (skipped when present); returns paths and patches."""
    from harness.sandbox.image import build_offline

    h = hashlib.sha256(repr((BASE_PACKAGES, BASE_CHANGES)).encode()).hexdigest()[:12]
    base_tag = f"harness-swebench-testbase:{h}"
    try:
        client.images.get(base_tag)
    except Exception:
        build_offline(client, base_tag, log, packages=BASE_PACKAGES, changes=BASE_CHANGES)
    repo, base = make_repo(workdir)
    gold = _diff(repo, "calc/ops.py", GOOD_OPS)
    test_patch = _diff(repo, "tests/test_ops.py", TESTS_AFTER)
    inst_hash = hashlib.sha256((base_tag + OPS + TESTS + base).encode()).hexdigest()[:12]
    image = f"harness-swebench/calc-1:{inst_hash}"
    try:
        client.images.get(image)
    except Exception:
        with tempfile.TemporaryDirectory() as ctx:
            subprocess.run(["cp", "-a", str(repo), f"{ctx}/testbed"], check=True)
            Path(ctx, "Dockerfile").write_text(
                f"FROM {base_tag}\nCOPY testbed /testbed\nWORKDIR /testbed\n"
                "RUN git config --global --add safe.directory /testbed\n"
            )
            client.images.build(path=ctx, tag=image, pull=False, rm=True)
    instance = {
        "repo": REPO,
        "instance_id": INSTANCE_ID,
        "base_commit": base,
        "patch": gold,
        "test_patch": test_patch,
        "problem_statement": "calc.ops.add(2, 3) returns -1 instead of 5: `add` subtracts its arguments.",
        "hints_text": "",
        "created_at": "2026-11-25T00:00:00Z",
        "version": "0.1",
        "FAIL_TO_PASS": json.dumps(["tests/test_ops.py::test_add"]),
        "PASS_TO_PASS": json.dumps(["tests/test_ops.py::test_mul", "tests/test_ops.py::test_mul_zero"]),
        "environment_setup_commit": base,
        "image": image,
        "eval_script": eval_script(base, test_patch),
        "log_parser": "parse_log_pytest",
        "eval_type": "pass_and_fail",
    }
    dataset = workdir / "calc-dataset.jsonl"
    dataset.write_text(json.dumps(instance) + "\n")
    return {
        "dataset": dataset,
        "instance": instance,
        "repo": repo,
        "image": image,
        "patches": {
            "gold": gold,
            "wrong": _diff(repo, "calc/ops.py", WRONG_OPS),
            "breaks_p2p": _diff(repo, "calc/ops.py", BREAK_MUL_OPS),
            "hang": _diff(repo, "calc/ops.py", HANG_OPS),
            "not_applying": gold.replace("return a - b", "return a - b - 0").replace("@@ -3,7", "@@ -30,7"),
            "empty": "",
        },
    }
