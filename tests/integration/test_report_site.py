"""`harness report` end to end: real run directories in, a static site out, checked in real headless
Chromium (Debian's, driven by Playwright) from file://.

The runs: the published SmolLM2 runs (results/published), the committed real SmolLM2 samples graded
here in Docker, two `harness run`s against the fault-injecting endpoint (one complete, one left
incomplete by requests that always fail), and SWE-bench gold and wrong predictions graded by the
official harness. Every number checked on a page is read from the runs' own files, and the
comparison statistics are recomputed here from samples.jsonl (scipy's binomial test for McNemar).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from scipy import stats

from harness.models.base import request_seed
from tests.conftest import REPO
from tests.fakes.openai_server import FakeOpenAI
from tests.integration import swebench_local

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.swebench]

PUBLISHED = sorted(p for p in (REPO / "results" / "published").iterdir() if (p / "results.json").exists())
ARTIFACTS = REPO / "test-artifacts" / "report"


def _harness(*args: str, cwd: Path, env: dict | None = None, ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or dict(os.environ),
        timeout=900,
    )
    assert proc.returncode in ok, f"harness {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc.stdout


def _fake_run(root: Path, name: str, answer, broken: set[int]) -> Path:
    """`harness run` of the whole of HumanEval against the fault-injecting endpoint."""
    with FakeOpenAI(answer=answer) as srv:
        for seed in broken:
            srv.faults[seed] = ["always500"]
        cfg = {
            "model": {
                "backend": "openai",
                "name": name,
                "base_url": srv.base_url,
                "model": name,
                "max_concurrency": 8,
                "max_attempts": 2,
                "backoff_initial_s": 0.01,
                "backoff_max_s": 0.05,
            },
            "benchmark": {"name": "humaneval"},
            "sampling": {"temperature": 0.0, "max_tokens": 256, "n": 1, "seed": 1234},
            "sandbox": "docker",
        }
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        _harness("run", str(path), "--out", str(root / "runs"), "--run-id", name, "--quiet", cwd=root, ok=(0, 1))
    return root / "runs" / name


@pytest.fixture(scope="module")
def site(tmp_path_factory, humaneval) -> dict:
    import docker

    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    # 1. The committed real samples (SmolLM2-135M-Instruct, T=0.8, n=5) graded in Docker.
    samples = REPO / "tests/cases/smollm2_humaneval_t08_n5.jsonl"
    _harness("evaluate", "humaneval", str(samples), "--out", str(runs / "smollm2-samples-file"), "--sandbox",
             "docker", "--model-name", "smollm2-135m-instruct", "--quiet", cwd=root)  # fmt: skip
    # 2. A hosted-style endpoint: right on two tasks in three, wrong on the rest.
    by_prompt = {t.prompt: (i, t) for i, t in enumerate(humaneval.tasks)}

    def answer(body):
        i, task = next(v for p, v in by_prompt.items() if p in body["messages"][-1]["content"])
        code = task.prompt + (task.canonical_solution if i % 3 else "    return None\n")
        return f"```python\n{code}```\n"

    _fake_run(root, "endpoint-model", answer, set())
    # 3. The same endpoint where three requests always fail: an incomplete run (never ranked).
    broken = {request_seed(1234, humaneval.tasks[i].task_id, 0) for i in (4, 40, 90)}
    _fake_run(root, "endpoint-model-flaky", answer, broken)
    # 4. SWE-bench: gold and wrong patches on the local dataset, graded by the official harness.
    local = swebench_local.build(docker.from_env(timeout=600), root / "swe")
    for name in ("gold", "wrong"):
        pred = {"instance_id": swebench_local.INSTANCE_ID, "model_name_or_path": f"patch-{name}"}
        preds = root / f"{name}.jsonl"
        preds.write_text(json.dumps({**pred, "model_patch": local["patches"][name]}) + "\n")
        _harness("evaluate", "swebench", str(preds), "--dataset", str(local["dataset"]), "--out",
                 str(runs / f"swebench-{name}"), "--timeout", "60", "--quiet", cwd=root)  # fmt: skip
    results = {p.name: json.loads((p / "results.json").read_text()) for p in [*PUBLISHED, *runs.iterdir()]}
    # Claims written from the runs' own numbers, one per verdict.
    greedy = results["smollm2-135m-instruct-humaneval-greedy"]["metrics"]
    lo, hi = greedy["pass@1_ci95"]
    claim = {"model": "smollm2-135m-instruct", "benchmark": "humaneval", "source": "https://example.test/claim"}
    claim["date"] = "2026-01-01"
    claims = [
        {**claim, "value_percent": round(100 * (lo + hi) / 2, 2), "note": "inside the CI"},
        {**claim, "value_percent": round(100 * hi + 10, 2), "note": "above the CI"},
        {**claim, "model": "endpoint-model", "value_percent": round(100 * max(lo / 2, 0.001), 3)},
        {**claim, "model": "endpoint-model-flaky", "value_percent": 60.0},
        {**claim, "model": "code-llama-70b-instruct", "value_percent": 67.8},
    ]
    claims_file = root / "claims.yaml"
    claims_file.write_text(yaml.safe_dump({"claims": claims}, sort_keys=False))
    out = root / "site"
    stdout = _harness(
        "report", *map(str, PUBLISHED), str(runs), "--out", str(out), "--claims", str(claims_file),
        "--compare", "smollm2-135m-instruct-humaneval-greedy", "endpoint-model-flaky", cwd=root,
    )  # fmt: skip
    return {"out": out, "root": root, "results": results, "stdout": stdout, "runs": [*PUBLISHED, *runs.iterdir()]}


def _open(browser, site: dict, rel: str, shot: str | None = None):
    """Load a page from file://; returns (page, problems): console errors and warnings, page errors and
    any request that is not a local file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith("file://") else None)
    page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
    page.goto((site["out"] / rel).as_uri(), wait_until="load")
    if shot:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    return page, problems


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("href", "src") and v]


def test_report_command_summary(site):
    assert re.search(r"report: 8 runs \(\d+ ranked\) on 3 leaderboard\(s\)", site["stdout"]), site["stdout"]
    for f in ("index.html", "claims.html", "data/index.json", "tables/claims.csv", "tables/comparisons.md"):
        assert (site["out"] / f).is_file(), f


def test_every_link_resolves_inside_the_site_and_nothing_loads_from_the_network(site):
    pages = sorted(site["out"].rglob("*.html"))
    assert len(pages) >= 15
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text())
        for ref in parser.refs:
            if ref.startswith(("https://", "http://")):
                assert "claims.html" in page.name, f"{page}: external link {ref}"  # only claim sources
                continue
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_file() and site["out"].resolve() in target.parents, f"{page}: broken link {ref}"
        assert "<script src" not in page.read_text() and "<link" not in page.read_text()


def test_every_page_loads_offline_without_console_errors(site, browser):
    shots = {"index.html": "index.png", "claims.html": "claims.png", "leaderboard/humaneval.html": "leaderboard.png"}
    compare = sorted((site["out"] / "compare").glob("*.html"))
    shots[f"compare/{compare[0].name}"] = "compare.png"
    shots["runs/endpoint-model-flaky.html"] = "run-incomplete.png"
    for page_file in sorted(site["out"].rglob("*.html")):
        rel = page_file.relative_to(site["out"]).as_posix()
        page, problems = _open(browser, site, rel, shots.get(rel))
        assert problems == [], f"{rel}: {problems}"
        assert page.title()
        page.close()
    assert all((ARTIFACTS / s).stat().st_size > 10_000 for s in shots.values())


def test_leaderboards_hold_the_numbers_of_the_results_files(site, browser):
    page, _ = _open(browser, site, "index.html")
    for run_dir in site["runs"]:
        res = site["results"][run_dir.name]
        metric = "resolved" if res["benchmark"] == "swebench" else "pass@1"
        row = page.locator(f'tr[data-run="{run_dir.name}"]')
        assert row.count() == 1, run_dir.name
        cell = row.locator("td.headline")
        assert cell.get_attribute("data-metric") == metric
        assert float(cell.get_attribute("data-value")) == res["metrics"][metric]
        assert cell.inner_text() == _pct(res["metrics"][metric])
        ci = row.locator("[data-ci-low]")
        assert [float(ci.get_attribute("data-ci-low")), float(ci.get_attribute("data-ci-high"))] == res["metrics"][
            f"{metric}_ci95"
        ]
        assert int(row.locator("td.tasks").inner_text()) == res["counts"]["tasks"]
        ranked = res["complete"] and res["counts"]["tasks"] >= (res["counts"].get("dataset_tasks") or 0)
        rank = row.locator("td.rank").inner_text()
        assert (rank != "not ranked") == ranked, (run_dir.name, rank)
    page.close()


def test_incomplete_run_is_shown_marked_and_not_ranked(site, browser):
    res = site["results"]["endpoint-model-flaky"]
    assert not res["complete"] and res["counts"]["generation_error"] == 3
    page, _ = _open(browser, site, "leaderboard/humaneval.html")
    rows = page.locator("table.leaderboard tbody tr")
    ids = [rows.nth(i).get_attribute("data-run") for i in range(rows.count())]
    ranks = [rows.nth(i).locator("td.rank").inner_text() for i in range(rows.count())]
    flaky = ids.index("endpoint-model-flaky")
    assert ranks[flaky] == "not ranked" and all(r != "not ranked" for r in ranks[:flaky])
    values = [float(rows.nth(i).locator("td.headline").get_attribute("data-value")) for i in range(rows.count())]
    ranked_values = [v for v, r in zip(values, ranks, strict=True) if r != "not ranked"]
    assert ranked_values == sorted(ranked_values, reverse=True)
    assert "incomplete" in rows.nth(flaky).inner_text()
    assert "3 sample(s) have no generation" in rows.nth(flaky).locator(".reason").inner_text()
    # sorting by a column is the page's own script: click the metric header twice (ascending)
    page.locator("table.leaderboard th", has_text="pass@1").first.click()
    after = [float(rows.nth(i).locator("td.headline").get_attribute("data-value")) for i in range(rows.count())]
    assert after == sorted(values)
    page.close()
    run_page, problems = _open(browser, site, "runs/endpoint-model-flaky.html")
    assert problems == [] and "Not ranked: incomplete" in run_page.locator(".not-ranked").inner_text()
    flaky_dir = next(p for p in site["runs"] if p.name == "endpoint-model-flaky")
    sha = hashlib.sha256((flaky_dir / "results.json").read_bytes()).hexdigest()
    assert run_page.locator(".results-sha").inner_text() == sha
    run_page.close()


def _per_task(run_dir: Path) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        s = json.loads(line)
        if s["status"] == "infra_error":
            continue
        t = out.setdefault(s["task_id"], [0, 0])
        t[0] += 1
        t[1] += int(s["passed"])
    return {k: (n, c) for k, (n, c) in out.items()}


def test_comparison_page_recomputed_from_the_samples(site, browser):
    by_name = {p.name: p for p in site["runs"]}
    cid = "smollm2-135m-instruct-humaneval-greedy--vs--endpoint-model-flaky"
    page, problems = _open(browser, site, f"compare/{cid}.html", "compare-requested.png")
    assert problems == []
    a, b = _per_task(by_name["smollm2-135m-instruct-humaneval-greedy"]), _per_task(by_name["endpoint-model-flaky"])
    shared = [t for t in a if t in b]
    assert len(shared) == 161  # the flaky run has no answer for 3 tasks
    diff = sum(a[t][1] / a[t][0] - b[t][1] / b[t][0] for t in shared) / len(shared)
    only_a = sum(1 for t in shared if a[t][1] and not b[t][1])
    only_b = sum(1 for t in shared if b[t][1] and not a[t][1])

    def val(key: str) -> str:
        return page.locator(f'[data-key="{key}"]').get_attribute("data-value")

    assert float(val("difference")) == pytest.approx(diff, abs=1e-12)
    assert (int(val("only_a")), int(val("only_b"))) == (only_a, only_b)
    assert float(val("mcnemar_p")) == pytest.approx(stats.binomtest(only_a, only_a + only_b).pvalue, rel=1e-9)
    lo, hi = map(float, val("difference_ci95").split(","))
    assert lo <= diff <= hi
    text = page.locator("main").inner_text()
    assert "endpoint-model-flaky is incomplete" in text and "only the 161 shared tasks are compared" in text
    data = json.loads((site["out"] / f"data/compare/{cid}.json").read_text())
    assert data["paired"]["difference"] == float(val("difference")) and data["schema_version"] == 1
    page.close()


def test_claims_page_says_where_a_claim_was_and_was_not_replicated(site, browser):
    page, problems = _open(browser, site, "claims.html")
    assert problems == []
    rows = page.locator("table.claims tbody tr")
    got = [
        (rows.nth(i).get_attribute("data-model"), rows.nth(i).get_attribute("data-run"),
         rows.nth(i).locator(".verdict").inner_text())
        for i in range(rows.count())
    ]  # fmt: skip
    smol = "smollm2-135m-instruct-humaneval-greedy"
    # smollm2's claims are replicated by each of its ranked HumanEval runs
    smol_runs = sorted(n for n, r in site["results"].items() if r["model"] == "smollm2-135m-instruct"
                       and r["benchmark"] == "humaneval" and r["complete"])  # fmt: skip
    assert sorted({run for m, run, _ in got if m == "smollm2-135m-instruct"}) == smol_runs
    verdicts = {(m, run): [] for m, run, _ in got}
    for m, run, v in got:
        verdicts[(m, run)].append(v)
    assert verdicts[("smollm2-135m-instruct", smol)] == ["consistent", "below claim"]
    assert verdicts[("endpoint-model", "endpoint-model")] == ["above claim"]
    assert verdicts[("endpoint-model-flaky", "")] == ["not yet replicated"]
    assert verdicts[("code-llama-70b-instruct", "")] == ["not yet replicated"]
    flaky = rows.filter(has=page.locator("td", has_text="endpoint-model-flaky")).first.inner_text()
    assert "not counted: endpoint-model-flaky (incomplete" in flaky
    res = site["results"][smol]["metrics"]
    cell = page.locator(f'tr[data-run="{smol}"] td.replicated').first
    assert float(cell.get_attribute("data-value")) == res["pass@1"]
    page.close()


def test_swebench_runs_have_their_own_leaderboard(site, browser):
    boards = json.loads((site["out"] / "data/index.json").read_text())["leaderboards"]
    swe = [b for b in boards if b.startswith("swebench-")]
    assert len(swe) == 1, boards
    page, problems = _open(browser, site, f"leaderboard/{swe[0]}.html")
    assert problems == []
    gold = page.locator('tr[data-run="swebench-gold"] td.headline')
    assert float(gold.get_attribute("data-value")) == site["results"]["swebench-gold"]["metrics"]["resolved"] == 1.0
    assert page.locator('tr[data-run="swebench-wrong"] td.rank').inner_text() == "2"
    page.close()
