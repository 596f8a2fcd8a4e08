"""The score stage and the aggregator with fake scorers: what is graded, resumed, counted and written."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from harness.config import SandboxConfig
from harness.errors import EnvironmentNotReady, UserInputError
from harness.pipeline import score
from harness.records import DatasetInfo, Sample, SampleResult, Status, Submission
from harness.scoring import aggregate
from tests.conftest import tree_digest
from tests.plugins.toy_benchmark import ToyBenchmark, ToyConfig, ToyScorer

INFO = DatasetInfo(name="toy-arith", version="1", sha256="0" * 64, tasks=8)


class ScriptedScorer(ToyScorer):
    """Gives the scripted status per task (default: the toy's own verdict), and records what it saw."""

    def __init__(self, bench, statuses: dict[str, Status] | None = None) -> None:
        super().__init__(bench, SandboxConfig(), None)
        self.statuses_by_task = statuses or {}
        self.seen: list[tuple[str, int]] = []

    def grade(self, todo: Sequence[tuple[Sample, Submission]], on_result) -> dict:
        for sample, sub in todo:
            self.seen.append((sub.task_id, sub.sample_id))
            status = self.statuses_by_task.get(sub.task_id)
            if status is None:
                status = Status.PASSED if sub.content == str(sum(sample.data)) else Status.FAILED
            on_result(SampleResult(sub.task_id, sub.sample_id, status, 0.0, "", sub.sha256))
        return {"grader": {"package": "scripted"}}


@pytest.fixture
def toy():
    bench = ToyBenchmark(ToyConfig(name="toy-arith", limit=4))
    samples, _ = bench.load()
    return bench, samples


def _subs(samples, right: set[str], n: int = 1) -> list[Submission]:
    return [
        Submission(s.task_id, i, "text", str(sum(s.data) + (0 if s.task_id in right else 1)))
        for s in samples
        for i in range(n)
    ]


SOURCE = {"kind": "predictions", "sha256": "a" * 64, "path": "toy.jsonl"}


def _score(bench, samples, subs, scorer, out, **kw):
    kw.setdefault("expected_samples", len(subs))
    kw.setdefault("source", SOURCE)
    return score(bench, samples, INFO, subs, scorer, out_dir=out, model="m", seed=7, **kw)


def test_pass_at_k_over_graded_tasks_infra_errors_apart_and_resume_retries_them(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0", "Toy/1"}, n=2)
    flaky = ScriptedScorer(bench, {"Toy/3": Status.INFRA_ERROR})
    res = _score(bench, samples, subs, flaky, tmp_path)
    assert res.counts == {
        "tasks": 4,
        "graded_tasks": 3,
        "dataset_tasks": 8,
        "samples": 8,
        "passed": 4,
        "failed": 2,
        "timeout": 0,
        "error": 0,
        "infra_error": 2,
        "generation_error": 0,
    }
    assert res.metrics["pass@1"] == pytest.approx(2 / 3) and set(res.metrics) == {"pass@1", "pass@1_ci95"}
    assert not res.complete and "2 sample(s) hit infrastructure failures" in res.incomplete_reason
    assert res.headline.value == res.metrics["pass@1"] and res.leaderboard == "toy-arith"
    # Resume: only the infra errors are graded again; the stored verdicts are kept.
    again = ScriptedScorer(bench)
    res = _score(bench, samples, subs, again, tmp_path)
    assert sorted(again.seen) == [("Toy/3", 0), ("Toy/3", 1)]
    assert res.complete and res.metrics["pass@1"] == 0.5
    stored = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["sample_id"]) for r in stored] == [(s.task_id, s.sample_id) for s in subs]
    assert json.loads((tmp_path / "results.json").read_text())["provenance"]["graded_this_session"] == 2


def test_nothing_to_grade_keeps_the_provenance_of_the_grading_that_made_the_verdicts(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    first = _score(bench, samples, subs, ScriptedScorer(bench), tmp_path)
    idle = ScriptedScorer(bench)
    second = _score(bench, samples, subs, idle, tmp_path)
    assert idle.seen == []
    keep = ("grader", "started_at", "finished_at", "hostname")
    assert {k: second.provenance[k] for k in keep} == {k: first.provenance[k] for k in keep}
    assert second.provenance["graded_this_session"] == 0 and second.provenance["resumed_from_store"] == 4


def test_missing_generations_make_the_run_incomplete_and_are_never_scored(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0", "Toy/1"})[:3]
    res = _score(bench, samples, subs, ScriptedScorer(bench), tmp_path, expected_samples=4, generation_errors=1)
    assert res.counts["samples"] == 3 and res.counts["generation_error"] == 1
    assert res.metrics["pass@1"] == pytest.approx(2 / 3)  # over the tasks that have an answer
    assert not res.complete and "1 sample(s) have no generation" in res.incomplete_reason


class Resolving(ToyBenchmark):
    headline_metric = "resolved"


def test_resolved_counts_every_selected_task_in_the_denominator(toy, tmp_path):
    _, samples = toy
    bench = Resolving(ToyConfig(name="toy-arith", limit=4))
    subs = _subs(samples, right={"Toy/0", "Toy/1"})
    scorer = ScriptedScorer(bench, {"Toy/2": Status.INFRA_ERROR})
    res = _score(bench, samples, subs, scorer, tmp_path, selected=[s.task_id for s in samples])
    assert res.metrics["resolved"] == 0.5  # 2 of 4: the infra error counts as not resolved, and incomplete
    assert res.headline.metric == "resolved" and "pass@1" not in res.metrics and not res.complete


def test_reference_check_names_the_tasks_whose_reference_failed(toy):
    bench, _ = toy
    rows = [SampleResult("Toy/0", 0, Status.PASSED, 0.0), SampleResult("Toy/1", 0, Status.FAILED, 0.0)]
    selected = ["Toy/0", "Toy/1", "Toy/2"]  # Toy/2 has no verdict at all
    res = aggregate.compute(bench, rows, selected, INFO, ToyScorer.statuses, "gold", 3, 0, 1, reference=True)
    assert res.gold_check == {"passed": 1, "total": 3, "trusted": False, "not_passed": ["Toy/1", "Toy/2"]}


def test_a_directory_of_another_benchmark_or_dataset_is_refused(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right=set())
    _score(bench, samples, subs, ScriptedScorer(bench), tmp_path)
    other = INFO.model_copy(update={"sha256": "1" * 64})
    with pytest.raises(UserInputError, match="holds verdicts for toy-arith"):
        score(bench, samples, other, subs, ScriptedScorer(bench), out_dir=tmp_path, model="m", seed=7,
              expected_samples=4, source=SOURCE)  # fmt: skip


class Timed(ScriptedScorer):
    """A scorer with a verdict setting (its timeout) and a run-only one (workers)."""

    def __init__(self, bench, timeout_s: float, workers: int = 2, **kw) -> None:
        super().__init__(bench, **kw)
        self.timeout_s, self.workers = timeout_s, workers

    def settings(self) -> dict:
        return {"timeout_s": self.timeout_s, "workers": self.workers}


def test_other_verdict_settings_are_refused_unless_regraded(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    flaky = Timed(bench, 1.0, statuses={"Toy/3": Status.INFRA_ERROR})
    _score(bench, samples, subs, flaky, tmp_path)
    before = tree_digest(tmp_path)
    # The infra error would be re-graded with another timeout: refused, naming the setting, nothing written.
    other = Timed(bench, 10.0)
    with pytest.raises(UserInputError, match=r"timeout_s 1\.0 -> 10\.0.*--regrade"):
        _score(bench, samples, subs, other, tmp_path)
    assert other.seen == [] and tree_digest(tmp_path) == before
    # Workers do not change verdicts: resuming with other workers grades the rest.
    res = _score(bench, samples, subs, Timed(bench, 1.0, workers=7), tmp_path)
    assert res.complete and res.provenance["graded_this_session"] == 1
    assert [s["graded"] for s in res.provenance["grading_sessions"]] == [4, 1]
    assert [s["settings"]["workers"] for s in res.provenance["grading_sessions"]] == [2, 7]
    # --regrade: every sample graded again with the new setting; the old sessions are gone with the verdicts.
    regraded = Timed(bench, 10.0)
    res = _score(bench, samples, subs, regraded, tmp_path, regrade=True)
    assert len(regraded.seen) == 4 and res.provenance["timeout_s"] == 10.0
    assert [s["settings"]["timeout_s"] for s in res.provenance["grading_sessions"]] == [10.0]


def test_a_directory_holds_one_input(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    _score(bench, samples, subs, ScriptedScorer(bench), tmp_path / "a")
    before = tree_digest(tmp_path / "a")
    other = {**SOURCE, "sha256": "b" * 64, "path": "other.jsonl"}
    for src in (other, {"kind": "reference"}):
        with pytest.raises(UserInputError, match=r"holds the verdicts of the predictions file toy\.jsonl"):
            _score(bench, samples, subs, ScriptedScorer(bench), tmp_path / "a", source=src)
        with pytest.raises(UserInputError, match=r"holds the verdicts of the predictions file toy\.jsonl"):
            _score(bench, samples, subs, ScriptedScorer(bench), tmp_path / "a", source=src, regrade=True)
    assert tree_digest(tmp_path / "a") == before
    # A `harness run` directory (config.yaml) takes no predictions file, even before it has verdicts.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("model: {}\n")
    with pytest.raises(UserInputError, match="run directory of a `harness run`"):
        _score(bench, samples, subs, ScriptedScorer(bench), run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


class Interrupting(ScriptedScorer):
    def grade(self, todo, on_result) -> dict:
        super().grade(todo[:2], on_result)
        raise KeyboardInterrupt


def test_an_interrupted_session_is_recorded_and_resume_adds_one(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    with pytest.raises(KeyboardInterrupt):
        _score(bench, samples, subs, Interrupting(bench), tmp_path)
    record = json.loads((tmp_path / "grading.json").read_text())
    assert [(s["graded"], s["unfinished"]) for s in record["sessions"]] == [(2, 2)]
    assert record["source"] == SOURCE and record["sessions"][0]["finished_at"]
    res = _score(bench, samples, subs, ScriptedScorer(bench), tmp_path)
    assert [s["graded"] for s in res.provenance["grading_sessions"]] == [2, 2] and res.complete


class NotReady(ScriptedScorer):
    def check(self) -> None:
        raise EnvironmentNotReady("no sandbox here")


def test_a_grading_that_cannot_start_changes_nothing_not_even_with_regrade(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    _score(bench, samples, subs, ScriptedScorer(bench, {"Toy/3": Status.INFRA_ERROR}), tmp_path)
    before = tree_digest(tmp_path)
    for regrade in (False, True):
        with pytest.raises(EnvironmentNotReady):
            _score(bench, samples, subs, NotReady(bench), tmp_path, regrade=regrade)
        assert tree_digest(tmp_path) == before


class FailsAtOnce(Timed):
    def grade(self, todo, on_result) -> dict:
        raise KeyboardInterrupt


def test_a_session_that_graded_nothing_binds_no_settings(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    with pytest.raises(KeyboardInterrupt):
        _score(bench, samples, subs, FailsAtOnce(bench, 1.0), tmp_path)
    res = _score(bench, samples, subs, Timed(bench, 10.0), tmp_path)  # no verdict was kept: not a mix
    assert res.complete and res.provenance["timeout_s"] == 10.0
    assert [(s["graded"], s["settings"]["timeout_s"]) for s in res.provenance["grading_sessions"]] == [
        (0, 1.0),
        (4, 10.0),
    ]


def test_a_smaller_selection_would_drop_verdicts_and_is_refused(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    _score(bench, samples, subs, ScriptedScorer(bench), tmp_path)
    before = tree_digest(tmp_path)
    with pytest.raises(UserInputError, match=r"holds 2 verdict\(s\) of samples this grading does not select"):
        _score(bench, samples[:2], subs[:2], ScriptedScorer(bench), tmp_path)
    assert tree_digest(tmp_path) == before
    # A larger selection keeps them and grades only the new samples.
    more = ToyBenchmark(ToyConfig(name="toy-arith", limit=6))
    grown, _ = more.load()
    scorer = ScriptedScorer(more)
    res = _score(more, grown, _subs(grown, right={"Toy/0"}), scorer, tmp_path)
    assert [t for t, _ in scorer.seen] == ["Toy/4", "Toy/5"] and res.counts["samples"] == 6


def test_an_older_directory_keeps_its_grading_as_the_first_session(toy, tmp_path):
    bench, samples = toy
    subs = _subs(samples, right={"Toy/0"})
    first = _score(bench, samples, subs, Timed(bench, 1.0, statuses={"Toy/3": Status.INFRA_ERROR}), tmp_path)
    (tmp_path / "grading.json").unlink()  # as written before grading.json existed
    res = _score(bench, samples, subs, Timed(bench, 1.0), tmp_path)
    sessions = res.provenance["grading_sessions"]
    assert sessions[0]["recorded_from"] == "results.json"
    assert sessions[0]["started_at"] == first.provenance["started_at"]
    assert [s["graded"] for s in sessions] == [4, 1]
    (tmp_path / "grading.json").unlink()
    with pytest.raises(UserInputError, match=r"timeout_s 1\.0 -> 2\.0"):  # read from the older results.json
        _score(bench, samples, subs, Timed(bench, 2.0, statuses={"Toy/3": Status.INFRA_ERROR}), tmp_path)
