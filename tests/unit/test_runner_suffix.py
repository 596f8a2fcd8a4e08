"""A task's shared suffix (its tests) is compiled once by the runner; verdicts are those of the whole program.

Each case runs through runner.run_job twice, forked from the test process: once as the whole program
(the sample's code, a newline, the suffix) and once split, with the suffix compiled by the runner.
"""

from __future__ import annotations

import os

import pytest

from harness.sandbox import runner

pytestmark = pytest.mark.unit

SUFFIX = "\n\ndef check(candidate):\n    assert candidate(2) == 4\n\ncheck(f)"
# Joined to SUFFIX, the open bracket takes in its first line: only the whole program compiles.
OPEN_SUFFIX = "1)\ndef check(candidate):\n    assert candidate(2) == 4\n\ncheck(f)"
CASES = {
    "correct": ("def f(x):\n    return x * 2", SUFFIX, "passed"),
    "wrong": ("def f(x):\n    return x", SUFFIX, "failed"),
    "syntax error": ("def f(x):\n    return x *", SUFFIX, "error"),
    "ends in an indented block": ("def f(x):\n    if x:\n        return x * 2", SUFFIX, "passed"),
    "future import": ("from __future__ import annotations\ndef f(x) -> int:\n    return x * 2", SUFFIX, "passed"),
    "module docstring": ('"""doc"""\ndef f(x):\n    return x * 2', SUFFIX, "passed"),
    "exits before the tests": ("import sys\ndef f(x):\n    return x\nsys.exit(0)", SUFFIX, "failed"),
    "replaces exec before the tests": (
        "import builtins\ndef f(x):\n    return x\nbuiltins.exec = lambda *a, **k: None",
        SUFFIX,
        "failed",
    ),
    "open bracket closed by the suffix": ("def f(x):\n    return x * 2\ny = (", OPEN_SUFFIX, "passed"),
}


def _run(job: dict) -> dict:
    limits = {"_close_fds": (), "_devnull": os.open(os.devnull, os.O_RDWR), "_ctl": None, "_vm_base": 0}
    result, cleanup = runner.run_job({**job, "timeout": 3.0, "max_wall": 10.0}, limits, False)
    cleanup()
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_split_and_whole_programs_get_the_same_verdict(name: str) -> None:
    code, suffix, expected = CASES[name]
    whole = _run({"program": code + "\n" + suffix})
    split = _run({"program": code, "suffix": suffix})
    assert whole["status"] == expected, whole
    assert (split["status"], split["detail"]) == (whole["status"], whole["detail"])


def test_the_suffix_is_compiled_once_and_only_when_it_starts_a_statement_at_column_0() -> None:
    runner._SUFFIX_CODE.clear()
    for _ in range(3):
        _run({"program": "def f(x):\n    return x * 2", "suffix": SUFFIX})
    assert list(runner._SUFFIX_CODE) == [SUFFIX] and runner._SUFFIX_CODE[SUFFIX] is not None
    # Unusable alone (the whole program decides): indented, a docstring, or not valid on its own.
    unusable = ("    x = 1\ncheck(f)", '"""doc"""\ncheck(f)', '("doc")\ncheck(f)', "  # c\n\n    x = 1", "1)\nx = (")
    unusable += ("from __future__ import annotations\ncheck(f)", "global f\ncheck(f)")
    for suffix in unusable:
        assert runner._suffix_code(suffix) is None, suffix
    assert runner._suffix_code("# a comment\n\nx = 1\n") is not None
