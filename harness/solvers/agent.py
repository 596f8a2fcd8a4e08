"""The `agent` solver: mini-swe-agent works in each SWE-bench instance's container over many turns.

Each instance runs in its own hardened container (harness/agent/container.py), `workers` at once.
Its outcome is one generations.jsonl row, written when it ends: the submitted patch (graded by the
official swebench package like any patch), the exit status, steps, tokens, and the `git diff` the
agent left in the worktree (recorded, not graded). Generation and environment errors are error rows
(never scored; the run is incomplete and resume retries them); an instance in flight when the run
died has no row, and resume starts it again in a clean container.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from harness import provenance
from harness.agent import INFRA_STATUSES
from harness.config import PluginConfig, RunConfig, expand_env_fields
from harness.errors import EnvironmentNotReady, UserInputError
from harness.progress import Progress
from harness.records import Answer, Generation, GenerationRow, Sample
from harness.redact import redact_data, redact_text
from harness.rundir import GenerationWriter, read_generation_provenance, read_generations, write_generation_provenance
from harness.solvers.base import Solver

if TYPE_CHECKING:
    from harness.agent.instance import Outcome
    from harness.agent.scaffold import HarnessModel, Scaffold
    from harness.benchmarks.base import Benchmark

TRAJECTORIES = "trajectories"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class _Context:
    """What every instance of one session shares."""

    backend: Any
    client: Any
    owner: Any
    run_dir: Path
    secrets: list[str]
    cpus: float
    stop: threading.Event = field(default_factory=threading.Event)
    live: dict = field(default_factory=dict)  # container name -> its environment, while it runs


class AgentConfig(PluginConfig):
    name: Literal["agent"]
    actions: Literal["tools", "text"] = Field("tools", description="tools: OpenAI tool calls; text: one code block")
    config: str | None = Field(None, description="a mini-swe-agent config file (default: the package's)")
    step_limit: int | None = Field(None, ge=0, description="model calls per instance (default: the config's, 250)")
    command_timeout_s: int | None = Field(None, ge=1, description="per command (default: the config's, 60)")
    instance_time_limit_s: int | None = Field(
        None, ge=0, description="wall time per instance, checked between steps (default: the config's; 0: none)"
    )
    workers: int = Field(4, ge=1, description="instances in flight at once, each in its own container")
    network: bool = Field(False, description="give the containers a network (default: none)")
    memory_mb: int = Field(4096, ge=128)
    pids_limit: int = Field(1024, ge=16)
    cpus: float | None = Field(None, gt=0, description="default: 2, or the engine's CPUs if fewer")
    disk_mb: int = Field(4096, ge=16, description="the container's writable layer, and any one file")
    expand = expand_env_fields("config")


class AgentSolver(Solver):
    """mini-swe-agent's loop, prompts and parsing; the harness's backends and hardened containers."""

    Config = AgentConfig
    remote = True

    def __init__(self, cfg: AgentConfig, run: RunConfig) -> None:
        super().__init__(cfg, run)
        self.cfg: AgentConfig = cfg
        self._scaffold: Scaffold | None = None
        self._executor = None

    @property
    def variant(self) -> str:
        """Agent runs rank on their own leaderboard, per action format."""
        return f"agent-{self.cfg.actions}"

    @property
    def executor(self):
        """The run's executor (local unless executor.name says otherwise), made once."""
        if self._executor is None:
            from harness.executors import make_executor

            self._executor = make_executor(self.run.executor)
        return self._executor

    @property
    def scaffold(self) -> Scaffold:
        from harness.agent.scaffold import load_scaffold

        if self._scaffold is None:
            self._scaffold = load_scaffold(self.cfg.actions, self.cfg.config)
        return self._scaffold

    def check(self, bench: Benchmark, run_dir: Path | None = None) -> None:
        if bench.name != "swebench":
            raise UserInputError(f"solver.name agent: works on SWE-bench instances, not benchmark {bench.name!r}")
        sampling = self.run.sampling
        if sampling.n != 1:
            raise UserInputError("sampling.n: the agent solver runs each instance once; set sampling.n: 1")
        sc = self.scaffold  # the package is installed and the config loads
        model_class = str((sc.data.get("model") or {}).get("model_class") or "")
        if ("textbased" in model_class) != (self.cfg.actions == "text") and model_class:
            raise UserInputError(
                f"solver.config {sc.path}: model_class {model_class!r} does not parse actions: {self.cfg.actions}"
            )
        m = self.run.model
        # A server the harness starts gets the parser's flags; an attached one was started with its own.
        local = m.backend == "vllm" or (m.backend == "vllm-server" and not m.base_url)
        if self.cfg.actions == "tools" and local and not m.tool_call_parser:
            raise UserInputError(
                f"solver.actions tools: model.tool_call_parser is not set, so {m.backend} would answer in text "
                "only; set it (e.g. hermes for Qwen, llama4_pythonic for Llama 4) or use solver.actions: text"
            )
        if "max_tokens" not in sampling.model_fields_set:
            raise UserInputError(
                "sampling.max_tokens: set it for agent turns (e.g. 4096); the default, 512, is for single answers "
                "and would cut the scaffold's replies short"
            )
        samples = bench.load()[0]
        bad = [s.task_id for s in samples if not _SAFE_ID.match(s.task_id)]
        if bad:  # trajectories/<instance id>/ is a directory name
            raise UserInputError(f"instance_id {bad[0]!r}: not usable as a directory name (letters, digits, ._-)")
        todo = set(self.needed(samples, run_dir) if run_dir is not None else [s.task_id for s in samples])
        if todo and self.executor.remote:  # the nodes' engines are checked by each task on its node
            from harness.agent.remote import check_remote_model
            from harness.models.base import make_backend

            check_remote_model(self.run)
            make_backend(self.run.model, None).preflight()  # the key variable, and an endpoint that answers
            self.executor.check()
        elif todo:
            self._check_engine([s for s in samples if s.task_id in todo])
            super().check(bench, run_dir)

    def _check_engine(self, samples: Sequence[Sample]) -> None:
        """The engine can hold the containers, and knows every image or is told it will pull them."""
        from harness.sandbox.docker import docker_client

        client = docker_client()
        cpus = client.info().get("NCPU") or 0
        if cpus and self.cfg.cpus and self.cfg.cpus > cpus:
            raise UserInputError(f"solver.cpus {self.cfg.cpus}: the Docker engine has {cpus} CPUs")
        if any(_image(s.data) is None for s in samples):
            raise UserInputError("the agent solver needs each instance's image (the dataset's `image` field)")
        absent = []
        for img in sorted({str(_image(s.data)) for s in samples}):
            try:
                client.images.get(img)
            except Exception:
                absent.append(img)
        if absent:
            shown = ", ".join(absent[:3]) + (" ..." if len(absent) > 3 else "")
            print(
                f"agent: {len(absent)} instance image(s) not on this engine yet (pulled when needed): {shown}",
                file=sys.stderr,
            )

    def needed(self, samples: Sequence[Sample], run_dir: Path | None) -> list[str]:
        """Instances without an outcome: never run, in flight when the run died, or an error row."""
        have = read_generations(run_dir) if run_dir is not None else {}
        return [s.task_id for s in samples if not ((g := have.get((s.task_id, 0))) and g.error is None)]

    def solve(self, bench: Benchmark, samples: Sequence[Sample], run_dir: Path, quiet: bool = False) -> dict:
        from harness.agent.container import AGENT_LABEL
        from harness.models.base import make_backend
        from harness.redact import secrets_in
        from harness.sandbox.docker import docker_client
        from harness.sandbox.prune import Owner, sweep
        from harness.store import RunStore

        todo = set(self.needed(samples, run_dir))
        old = read_generation_provenance(run_dir)
        if not todo:
            return old
        instances = [s for s in samples if s.task_id in todo]
        if self.executor.remote:
            return self._solve_remote(bench, instances, run_dir, old, quiet)
        client = docker_client(timeout=600)
        sweep(client, {"label": AGENT_LABEL}, run_dir)  # a killed session's containers (their owner is gone)
        with RunStore(run_dir):  # the lock: a second process on this directory would run the same instances
            backend = make_backend(self.run.model, run_dir)
            backend.preflight()
            if hasattr(backend, "start"):
                backend.start()
            cpus = self.cfg.cpus or min(2.0, float(client.info().get("NCPU") or 2))
            secrets = secrets_in(self.run.model.model_dump())
            ctx = _Context(backend, client, Owner.current(run_dir), run_dir, secrets, cpus)
            counts, wall, prov = self._run_all(bench, instances, ctx, quiet)
        gen_prov = self._provenance(old, prov, counts, wall, ctx.cpus)
        write_generation_provenance(run_dir, gen_prov)
        return gen_prov

    def _solve_remote(
        self, bench: Benchmark, instances: Sequence[Sample], run_dir: Path, old: dict, quiet: bool
    ) -> dict:
        """The instances on the executor's nodes; this process writes what they return."""
        from harness.agent.remote import run_remote
        from harness.models.base import make_backend
        from harness.store import RunStore

        with RunStore(run_dir):
            min_free = float(getattr(bench.cfg, "min_free_disk_gb", 0.0))
            counts, wall, ex_prov = run_remote(self, self.executor, instances, run_dir, min_free, quiet)
        prov = make_backend(self.run.model, run_dir).provenance()  # the endpoint; the nodes made the requests
        for counters in ("client", "replicas"):  # each node's own client counted them; tokens are in the rows
            prov.pop(counters, None)
        gen_prov = self._provenance(old, prov, counts, wall, self.cfg.cpus or 0.0)
        gen_prov["sessions"][-1]["executor"] = ex_prov
        write_generation_provenance(run_dir, gen_prov)
        return gen_prov

    def _run_all(
        self, bench: Benchmark, instances: Sequence[Sample], ctx: _Context, quiet: bool
    ) -> tuple[Counter[str], float, dict]:
        """Every instance, `workers` at once; a row per instance as it ends. Returns the statuses, the
        wall time and the backend's provenance."""
        from harness.scoring.swebench import docker_root_free_gb

        writer = GenerationWriter(ctx.run_dir)
        progress = Progress(len(instances), f"agent ({self.run.model.backend}, {self.cfg.actions})", quiet=quiet)
        lock, counts, first_error = threading.Lock(), Counter[str](), []
        min_free = float(getattr(bench.cfg, "min_free_disk_gb", 0.0))
        t0 = time.monotonic()

        def one(sample: Sample) -> None:
            if ctx.stop.is_set():
                return
            free = docker_root_free_gb(ctx.client)
            if free < min_free:  # each instance may pull an image of several GB: stop before the disk fills
                raise EnvironmentNotReady(
                    f"only {free:.1f} GB free for Docker images, under benchmark.min_free_disk_gb {min_free}; "
                    "free space (e.g. `docker image prune`), then resume"
                )
            outcome = self._run_one(sample, ctx)
            if outcome.status == "interrupted":
                return
            row = self._row(sample, outcome, ctx.secrets)
            with lock:
                if ctx.stop.is_set() and outcome.infra:
                    return
                writer.write([row])
                counts[outcome.status] += 1
                if outcome.infra and not first_error:
                    first_error.append(f"{sample.task_id}: {row.error}")
                progress.advance()

        pool = ThreadPoolExecutor(self.cfg.workers, thread_name_prefix="agent")
        try:
            futures = {pool.submit(one, s) for s in instances}
            while futures:
                done, futures = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()
        except BaseException:
            ctx.stop.set()  # every instance ends at its next step; removing the containers ends running commands
            for env in list(ctx.live.values()):
                env.cleanup()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown()
        finally:
            with lock:
                writer.close()
            progress.close()
            prov = ctx.backend.provenance()
            ctx.backend.close()
            if counts and not quiet:
                print("agent: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=sys.stderr)
            if first_error:
                print(f"agent: first infrastructure error: {first_error[0]}", file=sys.stderr)
        return counts, time.monotonic() - t0, prov

    def _run_one(self, sample: Sample, ctx: _Context) -> Outcome:
        from harness.agent.container import AGENT_LABEL, Limits, next_serial
        from harness.agent.instance import run_instance
        from harness.agent.scaffold import HarnessModel
        from harness.models.base import request_seed
        from harness.sandbox.prune import container_name

        sc, cfg, sampling = self.scaffold, self.cfg, self.run.sampling
        agent = {**sc.agent}
        if cfg.step_limit is not None:
            agent["step_limit"] = cfg.step_limit
        if cfg.instance_time_limit_s is not None:
            agent["wall_time_limit_seconds"] = cfg.instance_time_limit_s
        env = {**sc.environment}
        if cfg.command_timeout_s is not None:
            env["timeout"] = cfg.command_timeout_s
        # The container's own end is a backstop for one nobody removes (a kill -9 and no sweep since);
        # limits are checked between steps, so a live instance may run well past its time limit.
        limit = int(agent.get("wall_time_limit_seconds") or 0)
        lifetime = limit + 2 * 3600 if limit else 24 * 3600
        limits = Limits(cfg.network, cfg.memory_mb, cfg.pids_limit, ctx.cpus, cfg.disk_mb, lifetime)
        label = {"model_name": self.run.model.name, "backend": self.run.model.backend}

        def make_model(on_turn: Callable[[dict], None]) -> HarnessModel:
            def seed(call: int) -> int:
                return request_seed(sampling.seed, sample.task_id, call)

            return HarnessModel(ctx.backend, sampling, sc.model, cfg.actions, seed, on_turn, label)

        owner = ctx.owner
        return run_instance(
            sample.data,
            scaffold=sc,
            agent_settings=agent,
            env_settings=env,
            limits=limits,
            make_model=make_model,
            client=ctx.client,
            labels={**owner.labels(), AGENT_LABEL: sample.task_id},
            name=container_name(owner.run, owner.pid, next_serial(), role="a"),
            traj_dir=ctx.run_dir / TRAJECTORIES,
            stop=ctx.stop,
            live=ctx.live,
            secrets=ctx.secrets,
        )

    def _row(self, sample: Sample, o: Outcome, secrets: Sequence[str]) -> GenerationRow:
        """The instance's generations.jsonl row: the submitted patch as the answer (an agent has no one
        raw reply: its replies are in the trajectory), its record in `info` with the secrets masked."""
        info = {
            "status": o.status,
            "steps": o.steps,
            "wall_s": o.wall_s,
            "worktree_diff": o.worktree_diff,
            "trajectory": f"{TRAJECTORIES}/{sample.task_id}",
            **o.info,
        }
        gen = Generation(
            sample.task_id,
            0,
            None,
            finish_reason=o.status,
            prompt_tokens=o.prompt_tokens,
            completion_tokens=o.completion_tokens,
            latency_s=o.wall_s,
            error=redact_text(f"{o.status}: {o.error}", secrets) if o.infra else None,
        )
        return GenerationRow.of(gen, None if o.infra else Answer("patch", o.submission), redact_data(info, secrets))

    def _provenance(self, old: dict, prov: dict, counts: Counter, wall: float, cpus: float) -> dict:
        c = self.cfg
        sessions = [
            *old.get("sessions", []),
            {
                "instances": sum(counts.values()),
                "statuses": dict(sorted(counts.items())),
                "errors": sum(n for st, n in counts.items() if st in INFRA_STATUSES),  # retried on resume
                "wall_s": round(wall, 2),
                "finished_at": provenance.now_iso(),
            },
        ]
        gen_prov = {
            **prov,
            "sampling": self.run.sampling.model_dump(),
            "solver": "agent",
            "agent": {
                "actions": c.actions,
                "scaffold": self.scaffold.provenance(),
                "settings": {**c.model_dump(mode="json"), "cpus": cpus},  # the CPUs each container had
                "environment": {"kind": "docker", "image": "the instance's own (dataset field `image`)"},
            },
            "sessions": sessions,
            "generation_wall_s": round(sum(s["wall_s"] for s in sessions), 2),
            "host": provenance.host(),
        }
        return gen_prov


def _image(instance: dict) -> str | None:
    return instance.get("image") or instance.get("image_name") or instance.get("docker_image")
