"""`harness report` over an agent run and a single-turn run of one SWE-bench dataset, checked in real
headless Chromium (Debian's, driven by Playwright) from file://.

The agent run: two copies of the local instance, a scripted endpoint in tool-call mode. The first
instance is fixed and submitted, on the way running a command whose output is `<script>` markup
and one that prints the endpoint's API key; the second starts with a malformed reply and then
only looks around until the step limit ends it. The single-turn run answers both with the gold
patch. Every figure checked on a page is read from the run directories' own files.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.fakes.openai_server import FakeOpenAI
from tests.integration import swebench_local
from tests.integration.agent_helpers import FIX, ScriptedAgent, agent_config, copies, harness, reply

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.swebench]

KEY_ENV = "HARNESS_TEST_AGENT_REPORT_KEY"
KEY = "sk-agent-report-0123456789abcdef"
XSS = "<script>alert(1)</script>"
STEP_LIMIT = 9
# calc-1: explore, print markup, print the key, then the scripted fix (submitted, resolved).
FIRST = [
    reply("tools", FIX[0]),
    reply("tools", f"printf '{XSS}\\n'", thought="THOUGHT: <script>alert(2)</script> <img src=x onerror=alert(3)>"),
    reply("tools", f"echo {KEY}"),
    *[reply("tools", c) for c in FIX[1:]],
]
# calc-2: a reply without a tool call (format error), then ls until the step limit.
SECOND = [{"role": "assistant", "content": "I will just think."}, reply("tools", "ls -la")]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    import docker

    root = tmp_path_factory.mktemp("report-agent")
    local = swebench_local.build(docker.from_env(timeout=600), root / "swe")
    dataset = copies(local, root, 2)
    env = dict(os.environ, **{KEY_ENV: KEY})
    agent = ScriptedAgent("tools", per_instance={"harness__calc-1": FIRST, "harness__calc-2": SECOND})
    with FakeOpenAI(answer=agent.answer) as srv:
        model = {"backend": "openai", "name": "scripted-agent", "base_url": srv.base_url, "model": "scripted"}
        model |= {"api_key_env": KEY_ENV, "max_attempts": 2, "backoff_initial_s": 0.05, "request_timeout_s": 20}
        cfg = agent_config(root, srv.base_url, dataset, "tools", model=model, step_limit=STEP_LIMIT)
        p = harness("run", str(cfg), "--out", str(root / "runs"), "--run-id", "agent", "--quiet", env=env)
    assert p.returncode == 0, p.stderr[-3000:]

    def gold(body):
        return "The fix:\n<patch>\n" + local["patches"]["gold"] + "</patch>\n"

    with FakeOpenAI(answer=gold) as srv:
        single = {
            "model": {"backend": "openai", "name": "fake-swe", "base_url": srv.base_url, "model": "fake-swe"},
            "benchmark": {"name": "swebench", "path": str(dataset), "context": "oracle", "max_workers": 2,
                          "repo_url_template": str(local["repo"]), "repo_cache_dir": str(root / "repos"),
                          "timeout_s": 60, "min_free_disk_gb": 1},
            "prompt": {"mode": "chat"},
            "sampling": {"temperature": 0.0, "max_tokens": 512, "n": 1},
        }  # fmt: skip
        (root / "single.yaml").write_text(yaml.safe_dump(single))
        p = harness("run", str(root / "single.yaml"), "--out", str(root / "runs"), "--run-id", "single", "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    prices = root / "prices.yaml"
    api = {"model": "scripted-agent", "input_per_million": 2.0, "output_per_million": 8.0}
    api |= {"source": "https://example.test/prices", "as_of": "2026-11-01"}
    prices.write_text(yaml.safe_dump({"currency": "USD", "api": [api]}))
    out = root / "site"
    p = harness("report", str(root / "runs"), "--out", str(out), "--prices", str(prices), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    runs = {n: root / "runs" / n for n in ("agent", "single")}
    results = {n: json.loads((d / "results.json").read_text()) for n, d in runs.items()}
    gens = {r["task_id"]: r for r in map(json.loads, (runs["agent"] / "generations.jsonl").read_text().splitlines())}
    return {"out": out, "runs": runs, "results": results, "gens": gens, "stdout": p.stdout}


def _open(browser, site: dict, rel: str):
    """Load a page from file://; returns (page, problems): console errors and warnings, page errors,
    dialogs (a script that ran) and any request that is not a local file."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: problems.append(f"request {r.url}") if not r.url.startswith("file://") else None)
    page.goto((site["out"] / rel).as_uri(), wait_until="load")
    return page, problems


def _steps(run_dir: Path, iid: str) -> list[dict]:
    lines = (run_dir / "trajectories" / iid / "steps.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_agent_and_single_turn_runs_are_on_separate_leaderboards(site, browser):
    res = site["results"]
    agent_key, single_key = res["agent"]["leaderboard"], res["single"]["leaderboard"]
    assert (
        agent_key == f"{single_key}-agent-tools"
        and res["agent"]["dataset"]["sha256"] == res["single"]["dataset"]["sha256"]
    )
    assert "2 runs (2 ranked) on 2 leaderboard(s), 0 comparison(s)" in site["stdout"]
    for key, present, absent in ((agent_key, "agent", "single"), (single_key, "single", "agent")):
        board = json.loads((site["out"] / f"data/leaderboard-{key}.json").read_text())
        assert [r["run_id"] for r in board["rows"]] == [present]
        page, problems = _open(browser, site, f"leaderboard/{key}.html")
        assert problems == []
        assert page.locator(f'table.leaderboard tr[data-run="{present}"]').count() == 1
        assert page.locator(f'table.leaderboard tr[data-run="{absent}"]').count() == 0
        title = page.locator("h1").inner_text()
        assert ("agent (mini-swe-agent 2.4.6, tool calls)" in title) == (key == agent_key), title
        page.close()
    index = json.loads((site["out"] / "data/index.json").read_text())
    assert index["comparisons"] == {}  # never compared beside each other automatically
    page, problems = _open(browser, site, "index.html")
    assert problems == []
    heading = page.locator(f'h2[id="{agent_key}"]').inner_text()
    assert heading.startswith(f"{single_key} — agent (mini-swe-agent 2.4.6, tool calls)")
    page.close()


def test_run_page_shows_statuses_steps_tokens_and_cost_per_instance(site, browser):
    gens = site["gens"]
    assert gens["harness__calc-1"]["info"]["status"] == "submitted"
    assert gens["harness__calc-2"]["info"]["status"] == "step_limit"
    page, problems = _open(browser, site, "runs/agent.html")
    assert problems == []
    counts = Counter(g["info"]["status"] for g in gens.values())
    cells = page.locator("table.agent-statuses td[data-status]")
    shown = {cells.nth(i).get_attribute("data-status"): int(cells.nth(i).inner_text()) for i in range(cells.count())}
    assert shown == dict(counts)
    verdicts = {s["task_id"]: s["status"] for s in map(json.loads, (site["runs"]["agent"] / "samples.jsonl").open())}
    assert verdicts == {"harness__calc-1": "resolved", "harness__calc-2": "empty_patch"}
    for iid, g in gens.items():
        row = page.locator(f'table.agent-instances tr[data-instance="{iid}"]')
        assert row.count() == 1
        assert row.get_attribute("data-status") == g["info"]["status"]
        assert int(row.get_attribute("data-steps")) == g["info"]["steps"]
        assert int(row.get_attribute("data-prompt-tokens")) == g["prompt_tokens"]
        assert int(row.get_attribute("data-completion-tokens")) == g["completion_tokens"]
        assert row.locator("td.verdict").inner_text() == verdicts[iid]
        cost = (g["prompt_tokens"] * 2.0 + g["completion_tokens"] * 8.0) / 1e6
        assert row.locator("td").nth(7).inner_text() == f"{cost:.4f}"
        assert row.locator("a").get_attribute("href") == f"../runs/agent/traj/{iid}.html"
    assert gens["harness__calc-2"]["info"]["steps"] == STEP_LIMIT
    data = json.loads((site["out"] / "data/agent/agent.json").read_text())
    assert data["schema"] == "harness-report/agent-run" and data["statuses"] == dict(counts)
    assert data["prompt_tokens"] == sum(g["prompt_tokens"] for g in gens.values())
    assert (site["out"] / "data/schema/agent-run.schema.json").is_file()
    assert (site["out"] / "tables/agent-agent.csv").read_text().count("\n") == 3
    page.close()


def test_trajectory_pages_load_and_show_every_step_as_text(site, browser):
    for iid, g in site["gens"].items():
        events = _steps(site["runs"]["agent"], iid)
        turns = [e for e in events if e["type"] == "turn"]
        assert len(turns) == g["info"]["steps"]
        page, problems = _open(browser, site, f"runs/agent/traj/{iid}.html")
        assert problems == [], f"{iid}: {problems}"
        steps = page.locator("details.step")
        assert steps.count() == len(turns)
        assert steps.evaluate_all("els => els.every(e => !e.open)")  # collapsed until clicked
        assert page.locator('[data-key="status"]').inner_text().startswith(g["info"]["status"])
        assert page.locator('[data-key="steps"]').inner_text() == str(g["info"]["steps"])
        errors = sum(1 for t in turns if "format_error" in t)
        assert page.locator("details.step.format-error").count() == errors
        assert page.evaluate("document.scripts.length") == 1  # the page's own sorting script only
        page.close()


def test_hostile_output_is_text_secrets_are_masked_and_the_diffs_are_shown(site, browser):
    page, problems = _open(browser, site, "runs/agent/traj/harness__calc-1.html")
    assert problems == []  # no alert() ran: a dialog would be listed
    step = page.locator("details.step", has=page.locator("pre.output", has_text=XSS))
    assert step.count() == 1
    step.locator("summary").click()
    assert step.locator("pre.output").inner_text().strip() == XSS
    assert "<script>alert(2)</script>" in step.locator("pre.reply").inner_text()
    assert page.locator("img").count() == 0
    # the key the run was given: masked wherever the model's command and its output carried it
    masked = page.locator("details.step", has=page.locator("pre.command", has_text="echo ***"))
    assert masked.count() == 1
    for f in site["out"].rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(errors="replace"), f
    submitted = page.locator("pre.diff.submission").inner_text()
    assert "+    return a + b" in submitted and submitted.strip() == site["gens"]["harness__calc-1"]["code"].strip()
    assert "patch.txt" in page.locator("pre.diff.worktree").inner_text()  # left behind, recorded, not graded
    assert page.locator("pre.diff.submission span.add").count() >= 1
    page.close()
    page, problems = _open(browser, site, "runs/agent/traj/harness__calc-2.html")
    assert problems == [] and page.locator(".no-submission").count() == 1
    assert re.search(r"Step 1 · format error", page.locator("details.step").first.inner_text())
    page.close()


def test_every_link_resolves_inside_the_site(site):
    for page in sorted(site["out"].rglob("*.html")):
        text = page.read_text()
        for ref in re.findall(r'(?:href|src)="([^"]+)"', text):
            assert not ref.startswith(("http://", "https://", "//", "/")), f"{page}: {ref}"
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_file() and site["out"].resolve() in target.parents, f"{page}: broken link {ref}"


def test_trajectory_reader_cuts_huge_outputs_and_survives_damage(tmp_path):
    """Without Docker: a huge output is cut with a note, a torn line is skipped, a path out of the run is not read."""
    from harness.report.agent import page_name
    from harness.report.trajectory import SHOW_HEAD, SHOW_TAIL, read_trajectory

    run = tmp_path / "run"
    steps = run / "trajectories" / "x" / "steps.jsonl"
    steps.parent.mkdir(parents=True)
    big = "a" * 50_000 + "THE END"
    events = [
        {"type": "start", "instance": "x"},
        {"type": "turn", "call": 1, "message": {"role": "assistant", "content": "hi"}, "actions": ["cat big"]},
        {"type": "observation", "command": "cat big", "returncode": 0, "output": big},
    ]
    steps.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"type": "turn", "ca')
    traj = read_trajectory(run, "trajectories/x", "x", [])
    [step] = traj.steps
    out = step.observations[0].output
    assert out.text.endswith("THE END") and len(out.text) < SHOW_HEAD + SHOW_TAIL + 100
    assert "50,007 characters" in out.note and "trajectories/x/steps.jsonl" in out.note
    assert any("not a JSON line" in p for p in traj.problems) and any("no exit event" in p for p in traj.problems)
    outside = read_trajectory(run, "../../etc", "x", [])
    assert outside.steps == [] and "outside the run directory" in outside.problems[0]
    assert page_name("django__django-11099") == "django__django-11099.html"
    assert "/" not in page_name("../../x") and page_name("../../x") != page_name("x")
