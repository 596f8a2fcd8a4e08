"""The solver protocol: turn samples into answers with a model backend, into generations.jsonl.

A solver writes one GenerationRow per (task, sample) through rundir.GenerationWriter (an error
row is retried on resume, never scored) and returns the generation provenance. `single-turn` sends
every prompt to the backend at once; a multi-turn agent is another solver. A new solver is one
module with a subclass of `Solver`, registered in harness/registry.py or by an entry point in the
group `harness.solvers`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from harness.config import PluginConfig, RunConfig
from harness.records import Sample

if TYPE_CHECKING:
    from harness.benchmarks.base import Benchmark


class Solver(ABC):
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    remote: ClassVar[bool] = False  # can run its per-instance work through a remote executor (executor: ray)

    def __init__(self, cfg: PluginConfig, run: RunConfig) -> None:
        self.cfg, self.run = cfg, run

    @property
    def variant(self) -> str | None:
        """A solver whose figures must never be ranked beside single-turn ones names its own leaderboard
        suffix here (the agent: `agent-tools`); None ranks with the benchmark's plain leaderboard."""
        return None

    def check(self, bench: Benchmark, run_dir: Path | None = None) -> None:
        """Pre-flight of the model side (backend reachable, settings valid); fail in seconds. With the
        run directory of a resumed run, a solver with nothing left to do needs no model."""
        from harness.models.base import make_backend

        make_backend(self.run.model, None).preflight()

    @abstractmethod
    def solve(self, bench: Benchmark, samples: Sequence[Sample], run_dir: Path, quiet: bool = False) -> dict:
        """Answer every (sample, sample_id) not yet answered in run_dir; return the generation provenance."""
