"""Agent instances through a remote executor: each instance runs on a node, in a container of the
node's own Docker engine, talking to the model endpoint itself.

The node side (`run_on_node`) is the local solver's instance run with the node's engine and a
scratch directory for the trajectory; the driver side (`run_remote`) writes the shipped trajectory
under the run directory, then the instance's generations.jsonl row, so the driver stays the only
writer. An `env_error` or a lost node is retried on another node; what still fails is an error row
(never scored, retried on resume), as in a local run.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserInputError
from harness.executors.base import (
    Done,
    RemoteExecutor,
    Shipped,
    node_docker,
    read_tree,
    remove_run_containers,
    write_tree,
)
from harness.progress import Progress
from harness.records import Generation, GenerationRow, Sample
from harness.rundir import GenerationWriter

if TYPE_CHECKING:
    from harness.agent.scaffold import Scaffold
    from harness.config import RunConfig
    from harness.solvers.agent import AgentConfig, AgentSolver

_NODE: dict[str, Any] = {}  # per worker process: the model backend, reused across tasks


def check_remote_model(run: RunConfig) -> None:
    """The nodes call the model themselves: it must be an endpoint, not a server or engine in this process."""
    m = run.model
    if m.backend == "vllm" or (m.backend == "vllm-server" and not m.base_url):
        raise UserInputError(
            f"executor {run.executor.name}: the agent's nodes call the model themselves, so model.backend {m.backend} "
            "needs model.base_url (a running `vllm serve`, one per node or a shared one, several URLs for replicas)"
        )


def _node_backend(run: RunConfig):
    """This worker's backend for the run's model, made and checked once."""
    from harness.models.base import make_backend

    key = run.model.model_dump_json()
    if _NODE.get("model_key") != key:
        backend = make_backend(run.model, None)
        backend.preflight()
        if hasattr(backend, "start"):
            backend.start()
        _NODE["backend"], _NODE["model_key"] = backend, key
    return _NODE["backend"]


def run_on_node(
    cfg: AgentConfig, run: RunConfig, scaffold: Scaffold, sample: Sample, run_dir: str, min_free_gb: float
) -> Shipped:
    """One instance on this node: its row, and its trajectory files. The scaffold comes loaded from the
    driver (a config path may not exist on the node, or hold another file)."""
    from harness.agent.container import AGENT_LABEL
    from harness.redact import redact_text, secrets_in
    from harness.sandbox.prune import Owner, sweep
    from harness.scoring.swebench import docker_root_free_gb
    from harness.solvers.agent import TRAJECTORIES, AgentSolver, _Context

    solver = AgentSolver(cfg, run)
    solver._scaffold = scaffold
    secrets = secrets_in(run.model.model_dump())
    try:
        client = node_docker()
        sweep(client, {"label": AGENT_LABEL}, run_dir)  # containers of this node's workers that died
        free = docker_root_free_gb(client)
        if free < min_free_gb:
            raise RuntimeError(f"only {free:.1f} GB free for images on this node (min {min_free_gb})")
        backend = _node_backend(run)
    except Exception as e:  # this node cannot run it: an infrastructure error, tried elsewhere
        return Shipped(_error_row(sample.task_id, redact_text(f"env_error: {type(e).__name__}: {e}", secrets)))
    cpus = cfg.cpus or min(2.0, float(client.info().get("NCPU") or 2))
    with tempfile.TemporaryDirectory(prefix="harness-agent-") as tmp:
        ctx = _Context(backend, client, Owner.current(run_dir), Path(tmp), secrets, cpus)
        outcome = solver._run_one(sample, ctx)
        row = solver._row(sample, outcome, secrets)
        files = read_tree(Path(tmp) / TRAJECTORIES)
    return Shipped(dataclasses.replace(row, info={**(row.info or {}), "cpus": cpus}), files)


def _error_row(task_id: str, error: str) -> GenerationRow:
    gen = Generation(task_id, 0, None, finish_reason="env_error", error=error[:500])
    return GenerationRow.of(gen, None, {"status": "env_error"})


def _retryable(row: GenerationRow) -> str | None:
    # A node's fault (engine, image, disk) may not be another's; a model endpoint's failure would be.
    return row.error if (row.info or {}).get("status") == "env_error" else None


def run_remote(
    solver: AgentSolver,
    executor: RemoteExecutor,
    instances: Sequence[Sample],
    run_dir: Path,
    min_free_gb: float,
    quiet: bool,
) -> tuple[Counter[str], float, dict]:
    """Every instance through the executor, a row written as each ends. Returns the statuses, the wall
    time and the executor's provenance."""
    from harness.solvers.agent import TRAJECTORIES

    run = solver.run
    env = {}
    key_var = getattr(run.model, "api_key_env", None)
    if key_var:
        import os

        if os.environ.get(key_var):
            env[key_var] = os.environ[key_var]  # the nodes read the key from the same variable
    args = (solver.cfg, run, solver.scaffold)
    items = [(s.task_id, (*args, s, str(run_dir.resolve()), min_free_gb)) for s in instances]
    writer = GenerationWriter(run_dir)
    counts: Counter[str] = Counter()
    progress = Progress(len(items), f"agent ({run.model.backend}, {solver.cfg.actions}, ray)", quiet=quiet)
    t0 = time.monotonic()

    from harness.redact import redact_data, secrets_in

    secrets = secrets_in(run.model.model_dump())

    def done(d: Done) -> None:
        if d.value is not None:
            row: GenerationRow = d.value.value
            shutil.rmtree(run_dir / TRAJECTORIES / d.key, ignore_errors=True)  # an earlier attempt's files
            write_tree(run_dir / TRAJECTORIES, d.value.files)
        else:
            row = _error_row(d.key, "env_error: lost")
        info = {**(row.info or {}), "node": d.node}
        if d.attempts:
            info["failed_attempts"] = redact_data(d.attempts, secrets)
        error = f"env_error: after {len(d.attempts)} attempts: {d.error}"[:500] if d.error is not None else row.error
        row = dataclasses.replace(row, info=info, error=error)
        writer.write([row])
        counts[(row.info or {}).get("status") or "env_error"] += 1
        progress.advance()

    try:
        from harness.agent.container import AGENT_LABEL

        cleanup = (remove_run_containers, (str(run_dir.resolve()), {"label": AGENT_LABEL}))
        prov = executor.map(run_on_node, items, done, _retryable, env, cleanup)
    finally:
        writer.close()
        progress.close()
        if counts and not quiet:
            print("agent: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=sys.stderr)
    return counts, time.monotonic() - t0, prov
