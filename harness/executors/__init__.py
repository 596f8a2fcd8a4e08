"""Executors: where per-instance container work runs (SWE-bench grading, agent instances).

`local` is the stages' own thread pool on this machine's Docker engine. `ray` sends each instance
to a Ray cluster as one task that needs one unit of a custom resource (the containers a node can
hold); the driver stays the only writer of the run directory.
"""

from __future__ import annotations

from harness.config import ExecutorConfig
from harness.errors import UserInputError


def make_executor(cfg: ExecutorConfig):
    """The executor the config names (from the registry, imported only when used)."""
    from harness.registry import EXECUTORS

    if cfg.name not in EXECUTORS:
        known = ", ".join(EXECUTORS.names())
        raise UserInputError(f"executor.name: unknown executor {cfg.name!r}; expected one of: {known}")
    return EXECUTORS.load(cfg.name)(cfg)
