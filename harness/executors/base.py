"""The executor protocol, the local executor, and what travels between a node and the driver.

A remote executor runs `fn(*args)` for each item somewhere else and hands the driver, for each
item exactly once, either the function's value or the reason every attempt failed. The function
returns a `Shipped` value: the record plus the files it wrote on the node (logs, trajectories),
which the driver writes into the run directory, so the run directory has one writer.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness.config import ExecutorConfig

# Per-instance files larger than this are cut (their head kept) rather than sent through the object store.
MAX_FILE_BYTES = 64 * 2**20


@dataclass
class Shipped:
    """A task's value: the record and the files under its scratch directory, by relative path."""

    value: Any
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Done:
    """One item's end, as the driver sees it: the value (None when every attempt failed), the node of
    the attempt that counted, and every attempt that did not."""

    key: str
    value: Any
    node: dict | None
    attempts: list[dict]
    error: str | None = None


Retryable = Callable[[Any], str | None]  # why a returned value is an infrastructure failure (None: it is not)


class Executor:
    """Where per-instance work runs; `remote` says whether it leaves this process."""

    remote: ClassVar[bool] = False

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Pre-flight: raise EnvironmentNotReady (with the fixing command) when it cannot run."""

    def provenance(self) -> dict:
        return {"name": self.cfg.name}


class RemoteExecutor(Executor, ABC):
    """Runs one function per instance away from this process."""

    remote: ClassVar[bool] = True

    @abstractmethod
    def map(
        self,
        fn: Callable[..., Shipped],
        items: Sequence[tuple[str, tuple]],
        on_done: Callable[[Done], None],
        retryable: Retryable,
        env: dict[str, str] | None = None,
        cleanup: tuple[Callable[..., Shipped], tuple] | None = None,
    ) -> dict:
        """Run fn(*args) for every (key, args); on_done once per key, from the calling thread; returns
        the session's provenance (nodes, attempts). env is set while each runs; cleanup (a function
        and its arguments) runs once on every node at the end and after an interrupt."""


class LocalExecutor(Executor):
    """This machine's Docker engine. The stages keep their own thread pools, with their shared Docker
    client, stop flag and live containers; choosing it changes nothing in how they run."""


def node_info() -> dict:
    """The node this process runs on: its Ray node id where there is one, address and host name."""
    import harness

    info = {"hostname": socket.gethostname(), "pid": os.getpid(), "harness": harness.__version__}
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            info["node_id"] = ctx.get_node_id()
            info["ip"] = ray.util.get_node_ip_address()
    except ImportError:
        pass
    return info


_NODE_DOCKER: list = []  # this worker process's Docker client, reused by the tasks it runs one after another


def node_docker():
    """This node's Docker engine (EnvironmentNotReady when none answers), one client per process."""
    from harness.sandbox.docker import docker_client

    if not _NODE_DOCKER:
        _NODE_DOCKER.append(docker_client(timeout=600))
    return _NODE_DOCKER[0]


def remove_run_containers(run_dir: str, filters: dict) -> Shipped:
    """Force-remove this node's containers of the run in run_dir that match filters (an interrupted
    run's, whose tasks were killed); the names removed."""
    from harness.sandbox.prune import RUN_DIR, _containers, _name, _remove

    client = node_docker()
    labels = [f"{RUN_DIR}={run_dir}", *([filters["label"]] if "label" in filters else [])]
    found = _containers(client, {**filters, "label": labels})
    return Shipped([_name(c) for c in found if _remove(client, c) is None])


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under root by its relative path (big ones cut to their head)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                data = data[:MAX_FILE_BYTES] + b"\n[cut by the harness: file over 64 MiB]\n"
            out[p.relative_to(root).as_posix()] = data
    return out


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Write shipped files under root; a path that would leave root is refused."""
    base = root.resolve()
    for rel, data in files.items():
        dest = (root / rel).resolve()
        if not dest.is_relative_to(base):
            raise ValueError(f"shipped file {rel!r} would be written outside {root}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
