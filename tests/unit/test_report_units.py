"""Report building blocks: reading run directories (and refusing bad ones), hardware and cost,
ranking, claims verdicts, input files with line numbers, and the CLI's bad-input behaviour."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserInputError
from harness.records import Results
from harness.report import claims as claims_mod
from harness.report import runs as runs_mod
from harness.report import summary
from harness.report.prices import PricesFile, cost_speed
from harness.report.schema import Headline
from tests.conftest import REPO, tree_digest

PUBLISHED = REPO / "results" / "published"
GREEDY = PUBLISHED / "smollm2-135m-instruct-humaneval-greedy"


def _harness(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd)


def _run_with(provenance: dict, model: str = "m", counts: dict | None = None, **results) -> runs_mod.Run:
    res = Results(
        schema_version=1,
        benchmark=results.pop("benchmark", "humaneval"),
        model=model,
        complete=results.pop("complete", True),
        metrics=results.pop("metrics", {"pass@1": 0.5, "pass@1_ci95": [0.4, 0.6]}),
        counts=counts or {"tasks": 164, "dataset_tasks": 164, "samples": 164},
        dataset={"name": "humaneval", "sha256": "x", "tasks": 164},
        provenance=provenance,
        **results,
    )
    tokens = {"prompt_tokens": 1000, "completion_tokens": 4000}
    return runs_mod.Run("r", Path("r"), res, [], None, None, tokens, "", "", None)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


# -- hardware, decoding, cost ---------------------------------------------------------------------
def test_hardware_from_generation_provenance():
    gpu = {"backend": "vllm", "gpus": [{"name": "NVIDIA A100-SXM4-80GB"}], "cpu_build": False}
    gpu["parallel"] = {"tensor": 4, "pipeline": 2, "data": 1}
    hw = summary.hardware(_run_with({"model": gpu}))
    assert (hw.generation, hw.gpu_count, hw.gpu_type) == ("8x NVIDIA A100-SXM4-80GB", 8, "NVIDIA A100-SXM4-80GB")
    hosted = summary.hardware(_run_with({"model": {"backend": "openai", "base_url": "https://api.vendor.test/v1"}}))
    assert hosted.generation == "hosted endpoint (api.vendor.test)" and hosted.gpu_count == 0
    replicas = {
        "backend": "vllm-server",
        "started_server": False,
        "base_url": ["http://g1:8000/v1", "http://g2:8000/v1"],
    }
    assert summary.hardware(_run_with({"model": replicas})).generation == (
        "running vLLM server at 2 replicas: g1, g2 (hardware not recorded)"
    )
    cpu = {"backend": "vllm", "gpus": [], "cpu_build": True, "host": {"cpu_model": "Some CPU"}}
    assert summary.hardware(_run_with({"model": cpu})).generation == "CPU: Some CPU, vLLM CPU build"
    assert summary.hardware(_run_with({"model": cpu})).generation_cpu == "Some CPU"
    hf = _run_with({"model": {"backend": "transformers", "host": {"cpu_model": "Some CPU"}}})
    hf.config = {"model": {"device": "cuda"}}
    assert (summary.hardware(hf).generation, summary.hardware(hf).generation_cpu) == (
        "transformers on device cuda",
        None,
    )
    hf.config = {"model": {"device": "cpu"}}
    assert summary.hardware(hf).generation_cpu == "Some CPU"
    graded_only = summary.hardware(_run_with({"cpu_model": "X", "cpu_count": 2}))
    assert graded_only.generation.startswith("not recorded") and graded_only.grading_cpu == "X (2 cores)"


def test_gpu_cost_per_thousand_tasks_from_gpu_hours():
    gen = {"backend": "vllm", "gpus": [{"name": "NVIDIA A100-SXM4-80GB"}], "cpu_build": False}
    gen |= {"parallel": {"tensor": 4, "pipeline": 1, "data": 1}, "generation_wall_s": 900.0}
    run = _run_with({"model": gen})
    prices = PricesFile.model_validate(
        {"gpu_hour": [{"match": "a100-sxm4", "price": 2.0, "source": "https://p.test", "as_of": "2026-01-01"}]}
    )
    c = cost_speed(run, summary.hardware(run), 164, prices)
    assert c.gpu_hours == pytest.approx(4 * 900 / 3600)
    assert c.price_per_1k_tasks == pytest.approx(round(4 * 0.25 * 2.0 * 1000 / 164, 4))
    assert "https://p.test" in c.price_basis and c.tokens_per_s == pytest.approx(round(4000 / 900, 1))
    no_match = PricesFile.model_validate(
        {"gpu_hour": [{"match": "H100", "price": 3.0, "source": "https://p.test", "as_of": "2026-01-01"}]}
    )
    assert cost_speed(run, summary.hardware(run), 164, no_match).price_per_1k_tasks is None


def test_hosted_cost_from_token_prices():
    run = _run_with({"model": {"backend": "openai", "base_url": "https://x.test", "generation_wall_s": 60}}, model="m")
    prices = PricesFile.model_validate(
        {
            "api": [
                {"model": "m", "input_per_million": 3, "output_per_million": 15}
                | {"source": "https://p.test", "as_of": "2026-01-01"}
            ]
        }
    )
    c = cost_speed(run, summary.hardware(run), 10, prices)
    assert c.price_per_1k_tasks == pytest.approx(round((1000 * 3 + 4000 * 15) / 1e6 * 100, 4))


def test_decoding_text():
    assert summary.decoding_text(None) == "not recorded"
    d = summary.Decoding(prompt_mode="chat", temperature=0.8, top_p=0.95, n=5, max_tokens=512)
    assert summary.decoding_text(d) == "chat, T=0.8, top_p=0.95, n=5, max 512 tokens"


# -- ranking ---------------------------------------------------------------------------------------
def _row(run_id: str, value: float, ranked: bool = True):
    r = summary.summarize(_run_with({}), None)
    return r.model_copy(update={"run_id": run_id, "headline": Headline(metric="pass@1", value=value, ci95=None)})


def test_rank_shares_ties_and_never_ranks_incomplete_runs():
    rows = [_row("a", 0.5), _row("b", 0.7), _row("c", 0.5), _row("d", 0.9)]
    rows[3] = rows[3].model_copy(update={"ranked": False, "not_ranked_reason": "incomplete: x"})
    ordered = summary.rank(rows)
    assert [(r.run_id, r.rank) for r in ordered] == [("b", 1), ("a", 2), ("c", 2), ("d", None)]


def test_partial_and_incomplete_runs_are_not_ranked():
    partial = summary.summarize(_run_with({}, counts={"tasks": 20, "dataset_tasks": 164, "samples": 20}), None)
    assert not partial.ranked and partial.not_ranked_reason == "partial: covers 20 of the dataset's 164 tasks"
    bad = summary.summarize(_run_with({}, complete=False, incomplete_reason="3 sample(s) hit sandbox failures"), None)
    assert not bad.ranked and bad.not_ranked_reason.startswith("incomplete: 3 sample(s)")


def test_swebench_runs_are_boarded_by_split_and_filtered_runs_are_partial():
    metrics = {"resolved": 0.3, "resolved_ci95": [0.1, 0.6]}
    run = _run_with({}, benchmark="swebench", metrics=metrics, counts={"tasks": 10, "samples": 10})
    run.results.dataset.update(name="SWE-bench/SWE-bench_Lite", split="lite", tasks=10, full_tasks=300)
    assert run.leaderboard == "swebench-lite"
    assert summary.summarize(run, None).not_ranked_reason == "partial: covers 10 of the dataset's 300 tasks"
    run.results.dataset.update(split=None, name="my tasks.jsonl", full_tasks=None)  # a local file of unknown split
    assert run.leaderboard == "swebench-my-tasks.jsonl" and summary.summarize(run, None).ranked


# -- claims ------------------------------------------------------------------------------------------
def test_verdict_boundaries():
    assert claims_mod.verdict(0.5, (0.4, 0.6)) == "consistent"
    assert claims_mod.verdict(0.4, (0.4, 0.6)) == "consistent"
    assert claims_mod.verdict(0.61, (0.4, 0.6)) == "below claim"
    assert claims_mod.verdict(0.39, (0.4, 0.6)) == "above claim"


def test_claims_file_errors_name_the_line_and_key(tmp_path):
    f = tmp_path / "claims.yaml"
    f.write_text(
        "claims:\n"
        "  - model: m\n    benchmark: humaneval\n    value_percent: 50\n    source: https://x.test\n"
        "    date: 2024-01-01\n"
        "  - model: m\n    benchmark: humaneval\n    valeu_percent: 50\n    source: https://x.test\n"
        "    date: 2024-01-01\n"
        "  - model: m\n    benchmark: humaneval\n    value_percent: 150\n    source: x.test\n    date: 2024-01-01\n"
    )
    with pytest.raises(UserInputError) as e:
        claims_mod.load_claims(f)
    msg = str(e.value)
    assert f"{f}:9: claims.1.valeu_percent: unknown key" in msg
    assert f"{f}:7: claims.1.value_percent: Field required" in msg
    assert f"{f}:14: claims.2.value_percent: Input should be less than or equal to 100" in msg
    assert f"{f}:15: claims.2.source: Value error, must be an http(s) URL" in msg


def test_shipped_claims_and_prices_files_load():
    c = claims_mod.load_claims(REPO / "configs/claims.yaml")
    names = {x.model for x in c.claims}
    assert {"code-llama-70b-instruct", "llama-3.1-405b-instruct"} <= names  # the models in configs/
    from harness.report.prices import load_prices

    assert load_prices(REPO / "configs/prices.yaml").currency == "USD"


# -- reading run directories -------------------------------------------------------------------------
def _current(data: dict) -> dict:
    """Turn published results.json data into what this harness writes (with `selected`), in place."""
    data.update(
        selected=[f"HumanEval/{i}" for i in range(164)],
        expected_samples=164,
        headline={"metric": "pass@1", "value": data["metrics"]["pass@1"]},
        leaderboard="humaneval",
    )
    data["counts"]["tasks"] = data["counts"]["graded_tasks"] = 164
    return data


def test_a_current_results_file_reads(tmp_path):
    run_dir = _copy(GREEDY, tmp_path)
    data = _current(json.loads((run_dir / "results.json").read_text()))
    (run_dir / "results.json").write_text(json.dumps(data))
    assert runs_mod.load_run(run_dir).results.selected == data["selected"]


def test_published_run_reads_and_recomputes_its_headline():
    run = runs_mod.load_run(GREEDY)
    res = json.loads((GREEDY / "results.json").read_text())
    assert run.results.metrics["pass@1"] == res["metrics"]["pass@1"]
    assert sum(t.passed for t in run.tasks) == res["counts"]["passed"]
    assert len(run.tasks) == res["counts"]["tasks"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("schema_version"), "no schema_version"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not readable by this harness (it reads 1)"),
        (lambda d: d["metrics"].update({"pass@1": 0.5}), "metrics.pass@1 is 0.5, the stored verdicts give"),
        (lambda d: d["counts"].update(samples=3), "3 samples counted, 164 verdicts stored"),
        (lambda d: d.pop("model"), "model: Field required"),
        # Every figure the site shows is recomputed, not only the headline.
        (lambda d: d["metrics"].update({"pass@1_ci95": [0.2, 0.3]}), "metrics.pass@1_ci95 is [0.2, 0.3], the"),
        (lambda d: d["counts"].update(passed=12), "counts.passed is 12, the stored verdicts give 11"),
        (lambda d: d["counts"].update(tasks=100), "counts.tasks is 100, but 164 tasks have verdicts"),
        (lambda d: d.update(complete=False), None),  # an older file: completeness is not derivable
        (lambda d: d["dataset"].update(tasks="x"), "its figures cannot be recomputed (ValidationError"),
        (lambda d: d["provenance"].update(bootstrap="x"), "its figures cannot be recomputed (AttributeError"),
        (lambda d: d["provenance"].update(bootstrap={"seed": -1}), "its figures cannot be recomputed (ValueError"),
        # A file that records what it is over (selected tasks, expected samples) is checked whole.
        (lambda d: _current(d).update(complete=False), "complete is false, the stored verdicts give true"),
        (lambda d: _current(d)["counts"].update(tasks=165), "counts.tasks is 165, the stored verdicts give 164"),
        (lambda d: _current(d).update(leaderboard="humaneval-x"), 'leaderboard is "humaneval-x", the stored'),
        (lambda d: _current(d)["headline"].update(value=0.1), "headline.value is 0.1, the stored verdicts give"),
    ],
)
def test_inconsistent_or_unknown_results_are_refused(tmp_path, edit, message):
    run_dir = _copy(GREEDY, tmp_path)
    data = json.loads((run_dir / "results.json").read_text())
    edit(data)
    if message is None:
        (run_dir / "results.json").write_text(json.dumps(data))
        assert runs_mod.load_run(run_dir).results.complete is False
        return
    (run_dir / "results.json").write_text(json.dumps(data))
    with pytest.raises(UserInputError) as e:
        runs_mod.load_run(run_dir)
    assert message in str(e.value) and str(run_dir) in str(e.value)


def test_torn_samples_file_is_refused(tmp_path):
    run_dir = _copy(GREEDY, tmp_path)
    with open(run_dir / "samples.jsonl", "a") as f:
        f.write('{"task_id": "HumanEval/0", "sam')
    with pytest.raises(UserInputError, match="cut short"):
        runs_mod.load_run(run_dir)


def test_discover_finds_run_dirs_below_and_skips_logs(tmp_path):
    _copy(GREEDY, tmp_path / "a")
    (tmp_path / "a" / GREEDY.name / "logs" / "x").mkdir(parents=True)
    (tmp_path / "a" / GREEDY.name / "logs" / "x" / "results.json").write_text("{}")
    assert runs_mod.discover([tmp_path]) == [tmp_path / "a" / GREEDY.name]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"no results\.json in it or below"):
        runs_mod.discover([tmp_path / "empty"])


def test_same_directory_names_get_distinct_ids_and_copies_are_refused(tmp_path):
    _copy(GREEDY, tmp_path / "x")
    other = _copy(GREEDY, tmp_path / "y")
    with pytest.raises(UserInputError, match="hold the same run"):
        runs_mod.load_runs([tmp_path])
    data = json.loads((other / "results.json").read_text())
    data["provenance"]["note"] = "regraded elsewhere"
    (other / "results.json").write_text(json.dumps(data))
    ids = [r.run_id for r in runs_mod.load_runs([tmp_path])]
    assert len(set(ids)) == 2 and all(i.startswith(GREEDY.name + "-") for i in ids)


# -- the command line ----------------------------------------------------------------------------------
def test_spread_pairs():
    from harness.cli import _spread_pairs

    assert _spread_pairs(["report", "r", "--compare", "a", "b", "--out", "s"]) == [
        *("report", "r", "--compare", "a", "--compare", "b", "--out", "s")
    ]
    assert _spread_pairs(["report", "--compare", "a", "--compare", "b"]) == [
        "report",
        "--compare",
        "a",
        "--compare",
        "b",
    ]


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "site"
    cases = [
        (["report", str(tmp_path / "nope"), "--out", str(out)], "no such run directory"),
        (["report", str(GREEDY), "--out", str(out), "--claims", str(tmp_path / "c.yaml")], "no such claims file"),
        (["report", str(GREEDY), "--out", str(out), "--compare", "x", "y"], "--compare 'x': no run or model"),
        (["report", str(GREEDY), "--out", str(out), "--compare", GREEDY.name], "--compare takes two names"),
    ]
    for args, message in cases:
        proc = _harness(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, proc.stderr
        assert not out.exists()
    bad = tmp_path / "claims.yaml"
    bad.write_text("claims:\n  - model: m\n    benchmark: [humaneval\n")
    proc = _harness("report", str(GREEDY), "--out", str(out), "--claims", str(bad))
    assert proc.returncode == 2 and f"{bad}:4: not valid YAML" in proc.stderr and not out.exists()


def test_bad_source_date_epoch_is_bad_input(tmp_path):
    env = dict(os.environ, SOURCE_DATE_EPOCH="yesterday")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(GREEDY), "--out", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "SOURCE_DATE_EPOCH='yesterday'" in proc.stderr and not (tmp_path / "s").exists()


def test_out_dir_of_other_files_is_never_overwritten(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = tree_digest(out)
    proc = _harness("report", str(GREEDY), "--out", str(out))
    assert proc.returncode == 2 and "is not a report written by `harness report`" in proc.stderr
    assert tree_digest(out) == before


def test_rebuild_replaces_an_earlier_report_and_a_failed_build_keeps_it(tmp_path):
    out = tmp_path / "site"
    assert _harness("report", str(GREEDY), "--out", str(out)).returncode == 0
    (out / "stale.html").write_text("old")
    assert _harness("report", str(GREEDY), "--out", str(out)).returncode == 0
    assert not (out / "stale.html").exists() and (out / "index.html").exists()
    before = tree_digest(out)
    broken = _copy(GREEDY, tmp_path / "b")
    (broken / "results.json").write_text("{not json")
    proc = _harness("report", str(GREEDY), str(broken), "--out", str(out))
    assert proc.returncode == 2 and "results.json: not valid JSON" in proc.stderr
    assert tree_digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "site"]  # no temporary directory left behind


def test_a_run_without_any_verdict_is_shown_unranked_not_fatal(tmp_path):
    from harness.pipeline import load_benchmark
    from harness.records import DatasetInfo
    from harness.registry import SCORERS
    from harness.scoring import aggregate
    from harness.store import RunStore

    bench = load_benchmark(_humaneval())
    info = DatasetInfo.model_validate(json.loads((GREEDY / "results.json").read_text())["dataset"])
    selected = [f"HumanEval/{i}" for i in range(164)]
    statuses = SCORERS.load(bench.scorer).statuses
    # Every generation failed: no verdict, no metric, an incomplete run.
    res = aggregate.compute(bench, [], selected, info, statuses, "all-failed", 164, 164, 1234)
    run_dir = tmp_path / "runs" / "all-failed"
    with RunStore(run_dir) as store:
        store.finalize_samples([])
        aggregate.write(store, res)
    out = tmp_path / "site"
    proc = _harness("report", str(run_dir), str(GREEDY), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    board = json.loads((out / "data" / "leaderboard-humaneval.json").read_text())
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["all-failed"]["headline"]["value"] is None and not rows["all-failed"]["ranked"]
    assert rows["smollm2-135m-instruct"]["ranked"] and "no verdicts" in (out / "index.html").read_text()


def _humaneval():
    from harness.config import plugin_config

    return plugin_config("benchmarks", "benchmark", {"name": "humaneval"}, "test")
