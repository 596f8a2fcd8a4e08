"""Model backend protocol and helpers shared by the backends."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from harness.config import SamplingConfig
from harness.records import Generation, Prompt

Sink = Callable[[list[Generation]], None]


def request_seed(base: int, task_id: str, sample_id: int = 0) -> int:
    """A stable per-request seed: sampled runs are reproducible, and resume regenerates the same text."""
    return (base * 1_000_003 + zlib.crc32(task_id.encode()) + sample_id) % (2**31 - 1)


class ModelBackend(Protocol):
    """generate() calls sink with batches of finished generations (each batch is persisted durably)."""

    def preflight(self) -> None:
        """Fail in seconds, with one clear message, if this backend cannot run here."""

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        """Generate the sample ids in needed[task_id] for every prompt."""

    def provenance(self) -> dict: ...

    def close(self) -> None:
        """Release the engine / server (GPU memory is free afterwards)."""


def make_backend(cfg, run_dir: Path) -> ModelBackend:
    from harness.registry import MODEL_BACKENDS

    return MODEL_BACKENDS.load(cfg.backend)(cfg, run_dir)
