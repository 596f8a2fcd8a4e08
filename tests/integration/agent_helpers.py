"""A scripted "model" that plays mini-swe-agent's part, in either action format, for agent tests.

The fake OpenAI server (tests/fakes/openai_server.py) calls `ScriptedAgent.answer(body)` for each
turn. The turn's place in its conversation is the number of observations and format-error
feedbacks so far (each turn, good or malformed, adds exactly one user or tool message), and the
instance is read from the task message, so several instances can run at once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.fakes.openai_server import tool_call_message

REPO = Path(__file__).resolve().parents[2]

# Explore, fix with a shell command, run the test, make the patch, submit (the scaffold's protocol).
FIX = [
    "ls && cat calc/ops.py",
    "sed -i 's/return a - b/return a + b/' calc/ops.py",
    "python3 -m pytest -q tests/test_ops.py && python3 -c 'from calc.ops import add; assert add(2, 3) == 5'",
    "git diff -- calc/ops.py > patch.txt",
    "cat patch.txt",
    "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt",
]


def reply(mode: str, command: str, thought: str = "THOUGHT: next step") -> dict | str:
    """One well-formed turn running `command`, in the action format `mode` (tools | text)."""
    if mode == "tools":
        return tool_call_message([("bash", json.dumps({"command": command}))], content=thought)
    return f"{thought}\n\n```mswea_bash_command\n{command}\n```"


def turn_index(body: dict) -> int:
    """How many turns this conversation has had (system and task messages excluded)."""
    return sum(1 for m in body["messages"][2:] if m["role"] in ("user", "tool"))


def instance_of(body: dict) -> str:
    """The instance a request is about: the `[instance X]` tag the copies' problem statements carry."""
    m = re.search(r"\[instance ([^\]]+)\]", body["messages"][1]["content"])
    return m.group(1) if m else "harness__calc-1"


class ScriptedAgent:
    """Replies from a script per instance: a list of replies (str | dict), or a callable of the turn index.
    Each turn received is logged as (instance, turn index)."""

    def __init__(self, mode: str, script: list | Callable[[int, dict], object] | None = None, per_instance=None):
        self.mode = mode
        self.script = script if script is not None else [reply(mode, c) for c in FIX]
        self.per_instance = per_instance or {}
        self.turns: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def answer(self, body: dict):
        iid, n = instance_of(body), turn_index(body)
        with self.lock:
            self.turns.append((iid, n))
        script = self.per_instance.get(iid, self.script)
        if callable(script):
            return script(n, body)
        return script[min(n, len(script) - 1)]


def copies(local: dict, out: Path, n: int) -> Path:
    """A dataset of n copies of the local instance (ids harness__calc-1..n, one image)."""
    base = local["instance"]
    rows = []
    for i in range(1, n + 1):
        iid = f"harness__calc-{i}"
        rows.append({**base, "instance_id": iid, "problem_statement": f"{base['problem_statement']} [instance {iid}]"})
    path = out / f"calc-{n}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def agent_config(tmp: Path, base_url: str, dataset: Path, mode: str, model: dict | None = None, **solver) -> Path:
    """A run config: the fake endpoint as the model, the agent solver, the local dataset."""
    cfg = {
        "model": model
        or {
            "backend": "openai",
            "name": "scripted-agent",
            "base_url": base_url,
            "model": "scripted",
            "max_attempts": 3,
            "backoff_initial_s": 0.05,
            "request_timeout_s": 20,
        },
        "benchmark": {
            "name": "swebench",
            "path": str(dataset),
            "max_workers": 2,
            "timeout_s": 120,
            "min_free_disk_gb": 1,
        },
        "solver": {"name": "agent", "actions": mode, "step_limit": 12, "workers": 1, **solver},
        "sampling": {"max_tokens": 1024},
    }
    path = tmp / f"agent-{mode}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def harness(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


def rows(run_dir: Path) -> list[dict]:
    """generations.jsonl as written (every row, in order)."""
    return [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines() if line.strip()]


def agent_containers(client, run_dir: Path | None = None) -> list[str]:
    """Names of the agent containers on the engine: the run's in run_dir (owner label), else any run's."""
    labels = ["org.harness.agent"]
    if run_dir is not None:
        labels.append(f"org.harness.owner.run_dir={os.path.abspath(run_dir)}")  # as Owner.current records it
    # The low-level list: the high-level one inspects each container and fails on one removed meanwhile.
    return [c["Names"][0].lstrip("/") for c in client.api.containers(all=True, filters={"label": labels})]
