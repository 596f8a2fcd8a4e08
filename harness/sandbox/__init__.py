"""Sandboxes for model-generated code. `make_sandbox` picks one by name; `auto` prefers Docker."""

from __future__ import annotations

import os

from harness.errors import EnvironmentNotReady
from harness.registry import SANDBOXES
from harness.sandbox.base import Limits, Sandbox


def make_sandbox(kind: str, workers: int, limits: Limits | None = None, owner: str | os.PathLike = "") -> Sandbox:
    """A ready-to-use sandbox; raises EnvironmentNotReady with the fixing command otherwise.

    `owner` is the run directory it grades for: containers are named and labelled after it, so that
    `harness sandbox prune` can tell a live run's containers from a dead one's.
    """
    if kind == "auto":
        reasons = []
        for name in ("docker", "bwrap"):
            sb = SANDBOXES.load(name)(workers, limits)
            sb.owner = os.fspath(owner)
            try:
                sb.check()
                return sb
            except EnvironmentNotReady as e:
                reasons.append(f"{name}: {e}")
        raise EnvironmentNotReady(
            "no sandbox is available, and model code never runs unsandboxed. " + " | ".join(reasons)
        )
    try:
        cls = SANDBOXES.load(kind)
    except KeyError as e:
        raise EnvironmentNotReady(str(e.args[0])) from None
    sb = cls(workers, limits)
    sb.owner = os.fspath(owner)
    sb.check()
    return sb
