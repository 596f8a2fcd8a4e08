"""Lazy name -> implementation registries, extended by entry points.

Each entry is a dotted path ("harness.sandbox.docker:DockerSandbox") so that listing what is
available never imports heavy optional dependencies (docker, vllm, torch, swebench). Third-party
plug-ins are found through the entry-point groups `harness.<plural>` (for example
`harness.benchmarks`), or registered in-process with `register(kind, name, target, summary)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:attribute"
    summary: str


class Registry:
    """A named set of implementations of one kind (benchmarks, solvers, scorers, backends, sandboxes)."""

    def __init__(self, kind: str, plural: str, group: str) -> None:
        self.kind = kind
        self.plural = plural
        self.group = group  # entry-point group
        self._entries: dict[str, Entry] = {}
        self._discovered = False

    def register(self, name: str, target: str, summary: str) -> None:
        """Add an implementation; `target` is "module:attribute", imported only when used."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, summary)

    def _discover(self) -> None:
        # Entry points are read once, on the first lookup, so `harness --help` reads no metadata.
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name not in self._entries:
                dist = getattr(ep, "dist", None)
                self._entries[ep.name] = Entry(ep.name, ep.value, f"(plug-in from {dist.name if dist else ep.value})")

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)

    def entries(self) -> list[Entry]:
        self._discover()
        return list(self._entries.values())

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def load(self, name: str) -> Any:
        """Import and return the implementation registered as `name` (KeyError lists the names)."""
        self._discover()
        try:
            entry = self._entries[name]
        except KeyError:
            allowed = ", ".join(self._entries) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; expected one of: {allowed}") from None
        module_name, _, attr = entry.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


BENCHMARKS = Registry("benchmark", "benchmarks", "harness.benchmarks")
SOLVERS = Registry("solver", "solvers", "harness.solvers")
SCORERS = Registry("scorer", "scorers", "harness.scorers")
BACKENDS = Registry("model backend", "model backends", "harness.backends")
SANDBOXES = Registry("sandbox", "sandboxes", "harness.sandboxes")
EXECUTORS = Registry("executor", "executors", "harness.executors")
REGISTRIES = {r.plural: r for r in (BENCHMARKS, SOLVERS, SCORERS, BACKENDS, SANDBOXES, EXECUTORS)}


def register(kind: str, name: str, target: str, summary: str = "") -> None:
    """The call a plug-in outside this package uses: register("benchmarks", "toy", "toy_pkg:Toy")."""
    try:
        REGISTRIES[kind].register(name, target, summary)
    except KeyError:
        raise KeyError(f"unknown registry {kind!r}; expected one of: {', '.join(REGISTRIES)}") from None


# One registration line per implementation.
BENCHMARKS.register("humaneval", "harness.benchmarks.humaneval:HumanEvalBenchmark", "OpenAI HumanEval, 164 tasks")
BENCHMARKS.register(
    "humaneval-plus", "harness.benchmarks.humaneval:HumanEvalPlusBenchmark", "EvalPlus HumanEval+ v0.1.10, 164 tasks"
)
BENCHMARKS.register(
    "swebench", "harness.benchmarks.swebench_bench:SWEBench", "SWE-bench lite/verified/full/dev or a local file"
)
SOLVERS.register("single-turn", "harness.solvers.single_turn:SingleTurn", "all prompts batched to the backend")
SOLVERS.register("agent", "harness.solvers.agent:AgentSolver", "mini-swe-agent in each SWE-bench instance's container")
SCORERS.register("exec", "harness.scoring.exec:ExecScorer", "programs in the sandbox pool")
SCORERS.register("swebench", "harness.scoring.swebench:SWEBenchScorer", "patches through the official swebench")
SANDBOXES.register("docker", "harness.sandbox.docker:DockerSandbox", "warm pool of locked-down containers")
SANDBOXES.register("bwrap", "harness.sandbox.bwrap:BwrapSandbox", "bubblewrap namespaces, no daemon needed")
BACKENDS.register("vllm", "harness.models.vllm_engine:VLLMBackend", "in-process vllm.LLM (TP/PP, Ray)")
BACKENDS.register(
    "vllm-server", "harness.models.vllm_server:VLLMServerBackend", "`vllm serve` subprocess or a running server"
)
BACKENDS.register("openai", "harness.models.openai_api:OpenAIBackend", "hosted OpenAI-compatible endpoint")
BACKENDS.register("transformers", "harness.models.hf_transformers:TransformersBackend", "batched transformers generate")
EXECUTORS.register("local", "harness.executors.base:LocalExecutor", "this machine: the stage's own thread pool")
EXECUTORS.register("ray", "harness.executors.ray_exec:RayExecutor", "one Ray task per instance on a Ray cluster")
