"""The real tiny model as the agent, through the session's `vllm serve`, in `text` mode on the local
instance: the loop runs and ends within its limits with a complete trajectory (it will not resolve)."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration import swebench_local
from tests.integration.agent_helpers import agent_config, agent_containers, harness, rows

pytestmark = [pytest.mark.vllm, pytest.mark.swebench, pytest.mark.docker]

STEP_LIMIT = 3


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


def test_tiny_model_agent_run_ends_within_its_limits(local, tiny_server, tmp_path):
    import docker

    model = {"backend": "vllm-server", "name": "tiny", "model": "tiny", "base_url": tiny_server.base_url}
    cfg = agent_config(tmp_path, "", local["dataset"], "text", model=model, step_limit=STEP_LIMIT)
    # The server's context is 2048 tokens and the scaffold's prompts take about 1,500: short replies.
    p = harness(
        "run",
        str(cfg),
        "--out",
        str(tmp_path / "runs"),
        "--run-id",
        "tiny",
        "--set",
        "sampling.max_tokens=128",
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    [row] = rows(run)
    info = row["info"]
    assert row["error"] is None, row["error"]
    assert info["status"] in ("submitted", "step_limit", "format_errors", "context_overflow"), info
    assert 1 <= info["steps"] <= STEP_LIMIT
    if info["status"] == "step_limit":
        assert info["steps"] == STEP_LIMIT
    assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 1000
    steps = [json.loads(x) for x in (run / "trajectories/harness__calc-1/steps.jsonl").read_text().splitlines()]
    kinds = [s["type"] for s in steps]
    assert kinds[0] == "start" and kinds[-1] == "exit" and kinds.count("turn") == info["steps"]
    for s in steps:
        if s["type"] == "turn":  # each reply was kept as received, with its tokens
            assert s["message"]["role"] == "assistant" and s["usage"]["completion_tokens"] > 0
            assert ("actions" in s) != ("format_error" in s)
    traj = json.loads((run / "trajectories/harness__calc-1/harness__calc-1.traj.json").read_text())
    calls = info["steps"] + (info["status"] == "context_overflow")  # the call that did not fit counts as made
    assert traj["info"]["exit_status"] == info["status"] and traj["info"]["model_stats"]["api_calls"] == calls
    res = json.loads((run / "results.json").read_text())
    assert res["complete"] is True and res["leaderboard"].endswith("-agent-text")
    assert agent_containers(docker.from_env(), run) == []
