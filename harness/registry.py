"""Lazy name -> implementation registries.

Each entry is a dotted path ("harness.sandbox.docker:DockerSandbox") so that listing what is
available never imports heavy optional dependencies (docker, vllm, torch, swebench).
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
    """A named set of implementations of one kind (benchmarks, model backends, sandboxes)."""

    def __init__(self, kind: str, plural: str) -> None:
        self.kind = kind
        self.plural = plural
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, target: str, summary: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, summary)

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def load(self, name: str) -> Any:
        """Import and return the implementation registered as `name`."""
        try:
            entry = self._entries[name]
        except KeyError:
            allowed = ", ".join(self._entries) or "(none)"
            raise KeyError(f"unknown {self.kind} {name!r}; expected one of: {allowed}") from None
        module_name, _, attr = entry.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)


BENCHMARKS = Registry("benchmark", "benchmarks")
SANDBOXES = Registry("sandbox", "sandboxes")
MODEL_BACKENDS = Registry("model backend", "model backends")

# One registration line per implementation.
BENCHMARKS.register("humaneval", "harness.benchmarks.humaneval:HumanEval", "OpenAI HumanEval, 164 tasks")
BENCHMARKS.register(
    "humaneval-plus", "harness.benchmarks.humaneval:HumanEvalPlus", "EvalPlus HumanEval+ v0.1.10, 164 tasks"
)
SANDBOXES.register("docker", "harness.sandbox.docker:DockerSandbox", "warm pool of locked-down containers")
SANDBOXES.register("bwrap", "harness.sandbox.bwrap:BwrapSandbox", "bubblewrap namespaces, no daemon needed")
MODEL_BACKENDS.register("vllm", "harness.models.vllm_engine:VLLMBackend", "in-process vllm.LLM (TP/PP, Ray)")
MODEL_BACKENDS.register(
    "vllm-server",
    "harness.models.vllm_server:VLLMServerBackend",
    "`vllm serve` subprocess or a running server",
)
MODEL_BACKENDS.register("openai", "harness.models.openai_api:OpenAIBackend", "hosted OpenAI-compatible endpoint")
MODEL_BACKENDS.register(
    "transformers", "harness.models.hf_transformers:TransformersBackend", "batched transformers generate"
)
BENCHMARKS.register(
    "swebench", "harness.benchmarks.swebench:load_dataset", "SWE-bench lite/verified/full/dev or a local file"
)
