import json

from harness.records import SampleResult, Status
from harness.store import RunStore, read_jsonl_tolerant


def _row(i, status=Status.PASSED):
    return SampleResult(f"HumanEval/{i}", 0, status, 0.01, "", f"sha{i}")


def test_append_and_read_back(tmp_path):
    with RunStore(tmp_path / "run") as store:
        for i in range(3):
            store.append(_row(i))
        assert len(store.graded()) == 3


def test_torn_last_line_is_tolerated_and_repaired(tmp_path):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.append(_row(0))
        store.append(_row(1))
    with open(run / "samples.jsonl", "a") as f:
        f.write('{"task_id": "HumanEval/2", "sample_id": 0, "sta')  # crash mid-write
    rows, torn = read_jsonl_tolerant(run / "samples.jsonl")
    assert len(rows) == 2 and torn == 1
    with RunStore(run) as store:
        assert set(k[0] for k in store.graded()) == {"HumanEval/0", "HumanEval/1"}
        store.append(_row(2))
    lines = (run / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line)["task_id"] for line in lines] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_newest_row_wins_and_finalize_rewrites(tmp_path):
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.append(_row(0, Status.INFRA_ERROR))
        store.append(_row(0, Status.FAILED))
        graded = store.graded()
        assert next(iter(graded.values())).status is Status.FAILED
        store.finalize_samples(graded.values())
    assert len((run / "samples.jsonl").read_text().splitlines()) == 1


def test_second_process_is_refused(tmp_path):
    import pytest

    from harness.errors import UserInputError

    with RunStore(tmp_path / "run"), pytest.raises(UserInputError, match="another harness process"):
        RunStore(tmp_path / "run").__enter__()
