"""The agent solver end to end: a scripted endpoint plays the model in mini-swe-agent's scaffold inside
the real instance container, and the official swebench grader decides; malformed replies; endpoint
faults mid-trajectory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, tool_call_message
from tests.integration import swebench_local
from tests.integration.agent_helpers import FIX, ScriptedAgent, agent_config, agent_containers, harness, reply, rows

pytestmark = [pytest.mark.swebench, pytest.mark.docker]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


def _inspector_steps(traj: Path) -> int:
    """Open the trajectory in mini-swe-agent's own inspector (headless) and return its step count."""
    from minisweagent.run.utilities.inspector import TrajectoryInspector

    app = TrajectoryInspector([traj])
    errors: list = []
    app.notify = lambda message, **kw: errors.append((message, kw))  # type: ignore[method-assign]

    async def drive() -> int:
        async with app.run_test() as pilot:
            await pilot.press("l")  # next step
            await pilot.pause()
        return app.n_steps

    n = asyncio.run(drive())
    assert not [e for e in errors if e[1].get("severity") == "error"], errors
    return n


@pytest.mark.parametrize("mode", ["tools", "text"])
def test_scripted_agent_resolves_the_instance(local, tmp_path, mode):
    import docker

    agent = ScriptedAgent(mode)
    with FakeOpenAI(answer=agent.answer) as srv:
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], mode)
        p = harness("run", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        bodies = list(srv.bodies)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "runs" / "r"
    res = json.loads((run / "results.json").read_text())
    assert res["counts"]["resolved"] == 1 and res["complete"] is True
    assert res["leaderboard"].endswith(f"-agent-{mode}")
    [row] = rows(run)
    assert row["info"]["status"] == "submitted" and row["info"]["steps"] == len(FIX)
    assert "return a + b" in row["code"] and "patch.txt" not in row["code"]
    assert "patch.txt" in row["info"]["worktree_diff"]  # what the agent left behind, recorded beside
    assert row["prompt_tokens"] == 10 * len(FIX) and row["completion_tokens"] == 5 * len(FIX)
    # The package's prompts and action format reached the model.
    first = bodies[0]
    assert ("tools" in first) == (mode == "tools")
    if mode == "tools":
        assert first["tools"][0]["function"]["name"] == "bash"
    else:
        assert "mswea_bash_command" in first["messages"][0]["content"]
    assert "<pr_description>" in first["messages"][1]["content"]
    # The observation of the test run came back in the package's template.
    assert "<returncode>0</returncode>" in bodies[3]["messages"][-1]["content"]
    steps = [json.loads(x) for x in (run / "trajectories/harness__calc-1/steps.jsonl").read_text().splitlines()]
    assert [s["type"] for s in steps].count("turn") == len(FIX)
    assert [s["type"] for s in steps].count("observation") == len(FIX)
    assert steps[-1]["type"] == "exit" and steps[-1]["status"] == "submitted"
    traj = run / "trajectories/harness__calc-1/harness__calc-1.traj.json"
    data = json.loads(traj.read_text())
    assert data["info"]["exit_status"] == "submitted" and data["trajectory_format"] == "mini-swe-agent-1.1"
    assert _inspector_steps(traj) >= len(FIX)
    gen = json.loads((run / "generation.json").read_text())
    assert gen["agent"]["scaffold"]["version"] == "2.4.6" and len(gen["agent"]["scaffold"]["sha256"]) == 64
    assert agent_containers(docker.from_env(), run) == []


def _malformed(mode: str) -> list:
    if mode == "tools":
        return [
            {"role": "assistant", "content": None},  # an empty reply: no text, no tool call
            tool_call_message([("bash", '{"command": "ls"')]),  # invalid JSON arguments
            {"role": "assistant", "content": "THOUGHT: long", "finish_reason": "length"},  # cut at max_tokens
        ]
    return [
        "THOUGHT: no block at all",
        f"{reply('text', 'ls')}\n\n{reply('text', 'pwd')}",  # two blocks
        {"role": "assistant", "content": "THOUGHT: cut off ```mswea_bash_command\nls", "finish_reason": "length"},
    ]


@pytest.mark.parametrize("mode", ["tools", "text"])
def test_malformed_replies_end_in_format_errors(local, tmp_path, mode):
    agent = ScriptedAgent(mode, _malformed(mode))
    with FakeOpenAI(answer=agent.answer) as srv:
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], mode)
        p = harness("run", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        bodies = list(srv.bodies)
    assert p.returncode == 0, p.stderr  # complete: a format failure is the model's, and scored
    run = tmp_path / "runs" / "r"
    [row] = rows(run)
    assert row["info"]["status"] == "format_errors" and row["error"] is None and row["code"] == ""
    res = json.loads((run / "results.json").read_text())
    assert res["complete"] is True and res["counts"]["resolved"] == 0
    # The scaffold's feedback reached the model after each malformed reply (3 = the scaffold's limit).
    assert len(bodies) == 3
    feedback = [b["messages"][-1]["content"] for b in bodies[1:]]
    if mode == "tools":
        assert "No tool calls found" in feedback[0] and "Error parsing tool call arguments" in feedback[1]
    else:
        assert "found 0 actions" in feedback[0] and "found 2 actions" in feedback[1]


def test_endpoint_faults_mid_trajectory_lose_and_invent_no_turn(local, tmp_path):
    """Turns 2 and 4 first get a 500 and a dropped connection; every turn still happens exactly once."""
    mode = "tools"
    agent = ScriptedAgent(mode)
    with FakeOpenAI(answer=agent.answer) as srv:
        # The harness's per-turn seed is request_seed(sampling.seed, instance, call): fault by call number.
        from harness.models.base import request_seed

        srv.faults = {
            request_seed(1234, "harness__calc-1", 2): ["500", "drop"],
            request_seed(1234, "harness__calc-1", 4): ["429"],
        }
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], mode)
        p = harness("generate", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        log = dict(srv.log)
    assert p.returncode == 0, p.stderr
    [row] = rows(tmp_path / "runs" / "r")
    assert row["info"]["status"] == "submitted" and row["info"]["steps"] == len(FIX)
    # each scripted turn was answered once: no turn repeated (the agent saw each reply once) or skipped
    assert [n for _, n in agent.turns] == list(range(len(FIX)))
    assert sorted(v for v in log.values() if v != ["ok"]) == [["429", "ok"], ["500", "drop", "ok"]]


def test_a_turn_that_keeps_failing_is_a_generation_error_and_resume_retries_it(local, tmp_path):
    from harness.models.base import request_seed

    agent = ScriptedAgent("tools")
    with FakeOpenAI(answer=agent.answer) as srv:
        srv.faults = {request_seed(1234, "harness__calc-1", 3): ["always500"]}
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], "tools")
        p = harness("run", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        run = tmp_path / "runs" / "r"
        assert p.returncode == 1, p.stderr  # incomplete
        [row] = rows(run)
        assert row["error"].startswith("generation_error") and row["code"] is None
        res = json.loads((run / "results.json").read_text())
        assert res["complete"] is False and res["counts"]["generation_error"] == 1
        srv.faults = {}
        agent.turns.clear()
        p = harness("run", "--resume", str(run))
    assert p.returncode == 0, p.stderr
    assert [r["info"]["status"] for r in rows(run)] == ["generation_error", "submitted"]
    assert [n for _, n in agent.turns] == list(range(len(FIX)))  # from a clean container: turn 0 again
    assert json.loads((run / "results.json").read_text())["counts"]["resolved"] == 1


def test_a_context_overflow_ends_the_instance_with_its_own_status_and_is_scored(local, tmp_path):
    from harness.models.base import request_seed

    agent = ScriptedAgent("text", [reply("text", c) for c in FIX])
    with FakeOpenAI(answer=agent.answer) as srv:
        srv.faults = {request_seed(1234, "harness__calc-1", 3): ["context"]}  # the 400 vLLM sends
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], "text")
        p = harness("run", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        attempts = sum(srv.attempts.values())
    assert p.returncode == 0, p.stderr  # the model's limit, not an infrastructure fault: the run is complete
    run = tmp_path / "runs" / "r"
    [row] = rows(run)
    assert row["info"]["status"] == "context_overflow" and row["error"] is None and row["code"] == ""
    assert row["info"]["steps"] == 2 and attempts == 3  # never retried: it cannot fit on a retry either
    res = json.loads((run / "results.json").read_text())
    assert res["complete"] is True and res["counts"]["empty_patch"] == 1 and res["metrics"]["resolved"] == 0


def test_output_newlines_are_read_as_the_package_reads_them(local, tmp_path):
    """\\r\\n and \\r become \\n (the package's text-mode subprocess), in observations and submissions."""
    script = [
        reply("text", "printf 'a\\r\\nb\\rc\\n'"),
        reply("text", "printf 'COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\\r\\nx\\r\\n'"),
    ]
    agent = ScriptedAgent("text", script)
    with FakeOpenAI(answer=agent.answer) as srv:
        cfg = agent_config(tmp_path, srv.base_url, local["dataset"], "text")
        p = harness("generate", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
        bodies = list(srv.bodies)
    assert p.returncode == 0, p.stderr
    assert "<output>\na\nb\nc\n</output>" in bodies[1]["messages"][-1]["content"]
    [row] = rows(tmp_path / "runs" / "r")
    assert row["info"]["status"] == "submitted" and row["code"] == "x\n"


def test_time_limit_and_a_missing_image(local, tmp_path):
    """The wall-time limit ends an instance time_limit (scored); an image the engine cannot get is an
    env_error row (infrastructure: the run is incomplete, resume retries it)."""
    import docker

    from tests.integration.agent_helpers import copies

    dataset = copies(local, tmp_path, 2)
    lines = dataset.read_text().splitlines()
    broken = json.loads(lines[1])
    broken["image"] = "127.0.0.1:9/harness-missing:never"  # its pull goes to a closed loopback port
    dataset.write_text(lines[0] + "\n" + json.dumps(broken) + "\n")
    agent = ScriptedAgent("tools", [reply("tools", "sleep 1")])
    with FakeOpenAI(answer=agent.answer, latency_s=0.2) as srv:
        cfg = agent_config(tmp_path, srv.base_url, dataset, "tools", instance_time_limit_s=2, step_limit=50)
        p = harness("generate", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r")
    assert p.returncode == 1, p.stderr  # incomplete: the missing image
    by_id = {r["task_id"]: r for r in rows(tmp_path / "runs" / "r")}
    one, two = by_id["harness__calc-1"], by_id["harness__calc-2"]
    assert one["info"]["status"] == "time_limit" and one["error"] is None and 2 <= one["info"]["steps"] <= 3
    assert two["error"].startswith("env_error: image 127.0.0.1:9/harness-missing:never is not on this Docker engine")
    assert "127.0.0.1:9/harness-missing:never" in p.stderr
    assert agent_containers(docker.from_env(), tmp_path / "runs" / "r") == []
