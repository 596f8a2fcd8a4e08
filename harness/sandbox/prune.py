"""Who owns a harness container, and removing only those whose owner is gone.

Every container the harness creates (the sandbox pool's, and the SWE-bench grader's through
`LabellingClient`) carries labels naming its owner: the run (directory name and path) and the
process (hostname, boot id, pid, and that pid's start time in clock ticks after boot, so that a pid
the kernel handed to another process does not look like the owner), plus the harness version.
An owner is gone when its labels name this host and boot and no live process has that pid and start
time, or name this host and an earlier boot. Containers of other hosts cannot be checked from here
and are left alone. `prune` (`harness sandbox prune`) and the sweeps of a starting run use this.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

SANDBOX_LABEL = "org.harness.sandbox"  # the pool's session label (docker.LABEL), older than the owner labels
_P = "org.harness.owner."
RUN, RUN_DIR, HOST, BOOT_ID, PID, START = (_P + k for k in ("run", "run_dir", "host", "boot_id", "pid", "start"))
PIDNS = _P + "pid_ns"  # pids mean something only inside one pid namespace (a harness in a container has its own)
VERSION = "org.harness.version"
SWEBENCH_PREFIX = "sweb.eval."  # the official grader's container names: sweb.eval.<instance>.<run_id>
_BUSY = ("running", "restarting", "paused")  # container states in which someone may be using it


def process_start(pid: int) -> str | None:
    """Start time of the live process `pid` (field 22 of /proc/<pid>/stat), or None if there is none.

    A zombie counts as gone: it has exited. Without /proc (not Linux), "" for any existing pid.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, owned by another user
        return ""
    except OSError:
        return None
    # The command name (field 2) may hold spaces and ")"; the fields after its last ")" do not.
    rest = stat[stat.rindex(")") + 2 :].split()
    if rest[0] in ("Z", "X"):
        return None
    return rest[19]


def pid_ns() -> str:
    """This process's pid namespace ("" where the kernel does not show it)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def boot_id() -> str:
    """This kernel's boot id ("" where the kernel does not publish one)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """The process (and run) a container belongs to, as written in its labels."""

    host: str
    boot_id: str
    pid: int
    start: str  # process_start(pid) when the container was made; "" where unknown
    run: str = ""
    run_dir: str = ""
    pid_ns: str = ""

    @classmethod
    def current(cls, run_dir: str | os.PathLike | None = None) -> Owner:
        """This process, owning containers made for the run in `run_dir` (none: not for a run)."""
        pid = os.getpid()
        path = os.path.abspath(run_dir) if run_dir else ""
        return cls(
            socket.gethostname(), boot_id(), pid, process_start(pid) or "", os.path.basename(path), path, pid_ns()
        )

    def labels(self) -> dict[str, str]:
        """The labels a container of this owner carries (with the harness version)."""
        return {
            RUN: self.run,
            RUN_DIR: self.run_dir,
            HOST: self.host,
            BOOT_ID: self.boot_id,
            PID: str(self.pid),
            START: self.start,
            PIDNS: self.pid_ns,
            VERSION: harness.__version__,
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str] | None) -> Owner | None:
        """The owner named by a container's labels; None when they name none (or not readably)."""
        labels = labels or {}
        try:
            pid = int(labels[PID])
        except (KeyError, ValueError):
            return None
        if pid <= 0 or not labels.get(HOST):
            return None
        get = labels.get
        return cls(labels[HOST], get(BOOT_ID, ""), pid, get(START, ""), get(RUN, ""), get(RUN_DIR, ""), get(PIDNS, ""))

    def describe(self) -> str:
        """`run NAME, pid N on HOST`, for prune's report."""
        run = f"run {self.run}" if self.run else "no run"
        return f"{run}, pid {self.pid} on {self.host}"

    def alive(self) -> bool:
        """Whether the owning process still runs (meaningful only on the owner's host and boot)."""
        start = process_start(self.pid)
        return start is not None and (not start or not self.start or start == self.start)


def container_name(run: str, pid: int, serial: int, role: str = "w") -> str:
    """A readable docker name `harness-<run>-<pid>-<role><serial>` (w: a sandbox worker, a: an agent's
    instance container); the run part is sanitized and cut.

    Docker names match [a-zA-Z0-9][a-zA-Z0-9_.-]*; any other run of characters becomes one "-".
    """
    part = re.sub(r"[^a-zA-Z0-9_.-]+", "-", run).strip("-_.")[:40].rstrip("-_.")
    return "-".join(p for p in ("harness", part, str(pid), f"{role}{serial}") if p)


@dataclass(frozen=True)
class Verdict:
    """What prune does with one container and why."""

    remove: bool
    why: str
    gone: bool = False  # the owner is provably gone: what the automatic sweeps may act on
    mine: bool = False  # owned by the judging process itself


def judge(labels: dict[str, str] | None, busy: bool, me: Owner) -> Verdict:
    """Decide one container's fate from its labels and whether it is running (`busy`), judged by `me`.

    Without owner labels (an older harness made it) it is removed only when not running: a running
    one may still be a live run's, and an older harness's runner exits (and its container goes) by
    itself once the harness dies, so a running one most likely has a live owner.
    """
    owner = Owner.from_labels(labels)
    if owner is None:
        if busy:
            return Verdict(False, "no owner labels (an older harness); running, so possibly a live run's")
        return Verdict(True, "no owner labels (an older harness) and not running")
    who = owner.describe()
    if owner.host != me.host:
        return Verdict(False, f"{who}: another host's container; its owner cannot be checked from here")
    if owner.pid_ns and me.pid_ns and owner.pid_ns != me.pid_ns:
        return Verdict(False, f"{who}: made in another pid namespace (a container?); its owner cannot be checked here")
    if owner.boot_id and me.boot_id and owner.boot_id != me.boot_id:
        return Verdict(True, f"{who}: owner gone (the host rebooted since)", gone=True)
    if (owner.pid, owner.start) == (me.pid, me.start):
        return Verdict(False, f"{who}: this process", mine=True)
    if owner.alive():
        return Verdict(False, f"{who}: owner alive")
    return Verdict(True, f"{who}: owner gone", gone=True)


@dataclass(frozen=True)
class Entry:
    """One container in prune's report, with what became of it and why."""

    name: str
    state: str
    why: str


@dataclass
class PruneReport:
    """What prune removed, what it kept, and the grader containers it cannot attribute."""

    removed: list[Entry] = field(default_factory=list)
    kept: list[Entry] = field(default_factory=list)
    unowned: list[Entry] = field(default_factory=list)
    failed: list[Entry] = field(default_factory=list)


def _containers(client: Any, filters: dict) -> list[dict]:
    # The low-level list is one call with labels and state, so no container can vanish mid-listing.
    return client.api.containers(all=True, filters=filters)


def _name(c: dict) -> str:
    return (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/")


def _remove(client: Any, c: dict) -> str | None:
    """Force-remove one container; None when it is gone, else the engine's error (one stuck container
    must not stop the others' removal)."""
    import docker.errors

    try:
        client.api.remove_container(c["Id"], force=True)
    except docker.errors.NotFound:
        pass  # gone meanwhile (auto_remove, or its owner's own cleanup)
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: a removal is already in progress (auto_remove)
            return str(e.explanation or e)[:200]
    return None


def harness_containers(client: Any) -> list[dict]:
    """Every container the harness made: the pool's (session label, older ones too) and any with owner labels."""
    seen: dict[str, dict] = {}
    for flt in ({"label": SANDBOX_LABEL}, {"label": PID}):
        for c in _containers(client, flt):
            seen[c["Id"]] = c
    return sorted(seen.values(), key=_name)


def prune(force_all: bool = False, client: Any = None) -> PruneReport:
    """Remove the harness containers no live harness process owns; `force_all` removes all of them.

    SWE-bench grader containers (sweb.eval.*) without owner labels are never removed: an older harness
    or someone running the official grader by hand made them, and their owner cannot be told.
    """
    if client is None:
        from harness.sandbox.docker import docker_client

        client = docker_client()
    me, report = Owner.current(), PruneReport()
    for c in harness_containers(client):
        state = c.get("State", "")
        v = judge(c.get("Labels"), state in _BUSY, me)
        if force_all:
            v = Verdict(True, f"--all ({v.why})")
        failed = _remove(client, c) if v.remove else None
        if failed:
            report.failed.append(Entry(_name(c), state, f"removal failed: {failed}"))
            continue
        (report.removed if v.remove else report.kept).append(Entry(_name(c), state, v.why))
    for c in _containers(client, {"name": SWEBENCH_PREFIX}):
        if _name(c).startswith(SWEBENCH_PREFIX) and PID not in (c.get("Labels") or {}):
            why = "no owner labels: an older harness's or a hand-run grader's; `docker rm -f` it if it is stale"
            report.unowned.append(Entry(_name(c), c.get("State", ""), why))
    return report


def sweep(client: Any, filters: dict, run_dir: str | os.PathLike | None = None) -> list[str]:
    """Remove the containers matching `filters` whose owner is provably gone; returns their names.

    With `run_dir`, also this process's own containers of that run (its leftovers). Never a live
    process's, another host's, or one without owner labels.
    """
    me, path, removed = Owner.current(), os.path.abspath(run_dir) if run_dir else None, []
    for c in _containers(client, filters):
        labels = c.get("Labels") or {}
        v = judge(labels, c.get("State", "") in _BUSY, me)
        if (v.gone or (v.mine and path is not None and labels.get(RUN_DIR) == path)) and not _remove(client, c):
            removed.append(_name(c))
    return removed


class _LabellingContainers:
    def __init__(self, containers: Any, labels: dict[str, str]) -> None:
        self._containers, self._labels = containers, labels

    def create(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["labels"] = {**(kwargs.get("labels") or {}), **self._labels}
        return self._containers.create(*args, **kwargs)

    def get(self, container_id: str) -> Any:
        import docker.errors

        c = self._containers.get(container_id)
        v = judge(c.labels, c.status in _BUSY, Owner.current())
        if Owner.from_labels(c.labels) is not None and not (v.gone or v.mine):
            raise docker.errors.NotFound(f"{container_id} belongs to another live harness ({v.why})")
        return c

    def __getattr__(self, name: str) -> Any:
        return getattr(self._containers, name)


class LabellingClient:
    """A docker client whose created containers carry `labels`, for the SWE-bench grader.

    Its `containers.get` does not see containers of other live harness processes: the grader
    force-removes any container of the name it is about to use, and, not seeing it, takes a new
    name on the name conflict instead. Everything else is the wrapped client's.
    """

    def __init__(self, client: Any, labels: dict[str, str]) -> None:
        self._client = client
        self.containers = _LabellingContainers(client.containers, labels)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def main(force_all: bool = False) -> int:
    """`harness sandbox prune`: remove what no live harness owns, print each container's fate; exit code."""
    report = prune(force_all)
    groups = (("removed", report.removed), ("kept", report.kept), ("left alone", report.unowned))
    for title, entries in (*groups, ("FAILED", report.failed)):
        for e in entries:
            print(f"{title:<10} {e.name} ({e.state or '?'}): {e.why}")
    print(
        f"removed {len(report.removed)} container(s), kept {len(report.kept)}"
        + (f", left {len(report.unowned)} unlabelled SWE-bench grader container(s) alone" if report.unowned else "")
        + (f"; {len(report.failed)} could not be removed" if report.failed else "")
    )
    return 1 if report.failed else 0
