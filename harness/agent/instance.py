"""One SWE-bench instance through mini-swe-agent: a clean container, the loop, an exit status, a patch.

Written as the agent goes, under trajectories/<instance>/: steps.jsonl (every model reply as
received, its parsed actions or format error, each command's output, return code and duration,
tokens and latencies) and <instance>.traj.json (the package's own trajectory format, saved by its
agent after every step, so its inspector opens it).
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agent import INFRA_STATUSES, MODEL_STATUSES
from harness.agent.container import DiskLimitExceeded, EnvironmentFailure, HardenedDocker, Limits
from harness.agent.scaffold import HarnessModel, Scaffold
from harness.redact import redact_data

# The package's exit statuses, by the harness's name; all of these are the model's outcome (scored).
_EXIT = {
    "Submitted": "submitted",
    "LimitsExceeded": "step_limit",
    "TimeExceeded": "time_limit",
    "RepeatedFormatError": "format_errors",
}


class Stopped(Exception):
    """The run is being interrupted: the instance ends without an outcome (redone on resume)."""


@dataclass
class Outcome:
    """How one instance ended."""

    status: str
    submission: str = ""
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    error: str | None = None
    worktree_diff: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def infra(self) -> bool:
        return self.status in INFRA_STATUSES


class _Steps:
    """trajectories/<instance>/steps.jsonl, appended and flushed per event, the run's secrets masked."""

    def __init__(self, path: Path, secrets: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close(); a rerun starts afresh
        self.lock = threading.Lock()
        self.secrets = list(secrets)

    def __call__(self, event: dict) -> None:
        row = redact_data({"t": round(time.time(), 3), **event}, self.secrets)
        with self.lock:
            self.f.write(json.dumps(row, default=str) + "\n")
            self.f.flush()

    def close(self) -> None:
        self.f.close()


def _agent_class():
    from minisweagent.agents.default import DefaultAgent

    class HarnessAgent(DefaultAgent):
        """The package's agent, stopping between steps when the run is interrupted; its trajectory
        file (saved by the package after every step) has the run's secrets masked."""

        stop: threading.Event | None = None
        secrets: Sequence[str] = ()

        def serialize(self, *extra_dicts: dict) -> dict:
            return redact_data(super().serialize(*extra_dicts), self.secrets)

        def step(self) -> list[dict]:
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            return super().step()

    return HarnessAgent


def worktree_diff(env: HardenedDocker, base_commit: str) -> str:
    """`git diff` of everything in /testbed (new files included) against the base commit, at exit."""
    out, code = env.run_plain(
        ["sh", "-c", f"git add -A >/dev/null 2>&1; git -c core.fileMode=false diff --cached {base_commit}"]
    )
    return out if code == 0 else f"[harness: git diff failed with exit code {code}]\n{out}"


def _startup(env: HardenedDocker, scaffold: Scaffold, instance: dict) -> None:
    """The config's `run.env_startup_command` (rendered with the instance's fields), as the package's
    batch runner runs it before the agent starts."""
    from jinja2 import StrictUndefined, Template

    command = (scaffold.data.get("run") or {}).get("env_startup_command")
    if command:
        out = env.execute({"command": Template(command, undefined=StrictUndefined).render(**instance)})
        if out["returncode"] != 0:
            raise EnvironmentFailure(f"the config's env_startup_command failed: {out['output'][-500:]}")


def run_instance(
    instance: dict,
    *,
    scaffold: Scaffold,
    agent_settings: dict,
    env_settings: dict,
    limits: Limits,
    make_model: Callable[[Callable[[dict], None]], HarnessModel],
    client: Any,
    labels: dict[str, str],
    name: str,
    traj_dir: Path,
    stop: threading.Event,
    live: dict[str, HardenedDocker],
    secrets: Sequence[str] = (),
) -> Outcome:
    """Run the agent on one instance in a fresh container and remove the container, whatever happens."""
    from harness.models.base import ContextOverflow, GenerationFailed

    iid = instance["instance_id"]
    out_dir = traj_dir / iid
    steps = _Steps(out_dir / "steps.jsonl", secrets)
    traj = out_dir / f"{iid}.traj.json"
    traj.unlink(missing_ok=True)
    model = make_model(steps)
    t0 = time.monotonic()
    image = instance.get("image") or instance.get("image_name") or instance.get("docker_image")
    steps({"type": "start", "instance": iid, "image": image, "container": name, "limits": limits.__dict__})
    env = agent = None
    outcome: Outcome
    try:
        env = HardenedDocker(client=client, labels=labels, name=name, limits=limits, image=image, **env_settings)
        live[name] = env
        env.on_command = lambda e: steps({"type": "observation", **e})
        _startup(env, scaffold, instance)
        agent = _agent_class()(model, env, **{**agent_settings, "output_path": traj})
        agent.stop, agent.secrets = stop, list(secrets)
        result = agent.run(instance["problem_statement"])
        raw_status = result.get("exit_status", "")
        status = _EXIT.get(raw_status, raw_status)
        outcome = Outcome(status, result.get("submission") or "")
    except Stopped:
        outcome = Outcome("interrupted")
    except ContextOverflow as e:
        outcome = Outcome("context_overflow", info={"detail": str(e)})
    except GenerationFailed as e:
        outcome = Outcome("generation_error", error=f"model turn {model.calls} failed: {e}")
    except DiskLimitExceeded as e:
        outcome = Outcome("disk_limit", info={"detail": str(e)})
    except EnvironmentFailure as e:
        outcome = Outcome("env_error", error=str(e))
    except Exception as e:  # a harness or docker fault: infrastructure, retried on resume
        outcome = Outcome("env_error", error=f"{type(e).__name__}: {e}", info={"traceback": traceback.format_exc()})
    if stop.is_set() and outcome.status in (*INFRA_STATUSES, "interrupted"):
        outcome = Outcome("interrupted")  # its container was removed under it: not an environment fault
    try:
        if env is not None and outcome.status in MODEL_STATUSES:
            try:
                outcome.worktree_diff = worktree_diff(env, instance["base_commit"])
            except Exception as e:  # the record beside the outcome: its failure must not lose the outcome
                outcome.worktree_diff = f"[harness: git diff failed: {type(e).__name__}: {e}]"
    finally:
        if env is not None:
            env.cleanup()
            live.pop(name, None)
    outcome.steps = model.replies
    outcome.prompt_tokens, outcome.completion_tokens = model.prompt_tokens, model.completion_tokens
    outcome.wall_s = round(time.monotonic() - t0, 3)
    if agent is not None:
        agent.save(
            traj,
            {
                "info": {"exit_status": outcome.status, "submission": outcome.submission, **outcome.info},
                "instance_id": iid,
            },
        )
    steps(
        {
            "type": "exit",
            "status": outcome.status,
            "error": outcome.error,
            "steps": outcome.steps,
            "wall_s": outcome.wall_s,
            "submission": outcome.submission,
            "worktree_diff": outcome.worktree_diff,
        }
    )
    steps.close()
    return outcome
