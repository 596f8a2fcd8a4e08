"""Sandbox protocol and the runner client shared by every sandbox kind.

A sandbox kind (docker, bwrap) only knows how to start one isolated instance of
`runner.py` and give back a byte channel to it; the pool (pool.py) runs jobs on the instances.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SandboxDied
from harness.records import ExecJob, ExecResult, Status

RUNNER_PATH = Path(__file__).with_name("runner.py")


# The runner's sys.argv[1]. It carries no meaning for the runner; it is there so that a runner (and
# every fork of it, which shares its command line) can be recognised in /proc/<pid>/cmdline from the
# host, to check that no runner outlived the harness. An argument rather than a line added to the
# source, so the source, and the runner_sha256 that provenance records, stay the bytes of runner.py.
RUNNER_MARKER = "harness-sandbox-runner"


def runner_source() -> str:
    """The runner's source, sent to each instance at start (so images need no rebuild for it)."""
    return RUNNER_PATH.read_text()


def runner_command(python: str) -> list[str]:
    """The command that starts a runner under `python`, ending in `-c SOURCE RUNNER_MARKER`."""
    return [python, "-I", "-u", "-c", runner_source(), RUNNER_MARKER]


def is_runner_cmdline(cmdline: bytes) -> bool:
    """Whether a /proc/<pid>/cmdline (NUL-separated arguments) is that of a runner or of a fork of one.

    True for the runner's python and its forks, and for the `bwrap` process that started one (its
    argv ends in the runner's command); false for anything else that merely mentions the marker.
    """
    args = cmdline.rstrip(b"\0").split(b"\0")
    return len(args) >= 3 and args[-1] == RUNNER_MARKER.encode() and args[-3] == b"-c"


def max_wall_s(timeout_s: float) -> float:
    """Wall time after which a job is stopped whatever its own time (see runner._watch): it was starved."""
    return 4 * timeout_s + 10


def lend_after_s(timeout_s: float) -> float:
    """Run time after which a job probably loops, and the pool lends its slot to another job."""
    return min(timeout_s, max(0.25, timeout_s / 10))


@dataclass(frozen=True)
class Limits:
    """Per-job and per-instance resource limits."""

    memory_mb: int = 1024  # per job (RLIMIT_AS above the runner's own size)
    instance_memory_mb: int = 2048  # per container (cgroup); bwrap has no cgroup
    pids: int = 128  # per container (cgroup)
    nproc: int = 256  # per job RLIMIT_NPROC where uids are not shared (bwrap's user namespace)
    file_mb: int = 32  # largest file a job may write
    tmpfs_mb: int = 256
    output_bytes: int = 4096  # captured output kept per job
    cpus: float = 1.0  # per container

    def runner_message(self, use_nproc: bool) -> dict:
        return {
            "limits": {
                "memory_bytes": self.memory_mb << 20,
                "file_bytes": self.file_mb << 20,
                "output_bytes": self.output_bytes,
                "nproc": self.nproc if use_nproc else None,
                "tmpdir": "/tmp",
            }
        }


class Channel(ABC):
    """A line-oriented byte channel to one runner instance.

    Subclasses provide `send` and `_read_some` (one wait for bytes); the line framing is shared.
    """

    def __init__(self) -> None:
        self._buf = bytearray()  # bytes received after the last complete line

    @abstractmethod
    def send(self, data: bytes) -> None: ...

    @abstractmethod
    def _read_some(self, timeout: float) -> bytes:
        """Wait at most `timeout` s for protocol bytes and return those that arrived.

        May return b"" when none did (timeout, or only diagnostics arrived); raises SandboxDied at
        end of stream or on a read error, with a message saying how the runner ended.
        """

    def recv_line(self, timeout: float, notice: tuple[float, Callable[[], None]] | None = None) -> bytes:
        """One line without its newline; raises SandboxDied on EOF or timeout.

        `notice` = (after_s, callback): the callback is called once if no line came within after_s.
        """
        start = time.monotonic()
        deadline = start + timeout
        notice_at = start + notice[0] if notice else None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line
            now = time.monotonic()
            if notice_at is not None and now >= notice_at:
                notice_at = None
                notice[1]()  # type: ignore[index]
            remaining = deadline - now
            if remaining <= 0:
                raise SandboxDied(f"runner did not answer within {timeout:.0f} s")
            wait = remaining if notice_at is None else max(0.0, min(remaining, notice_at - now))
            self._buf.extend(self._read_some(wait))

    @abstractmethod
    def close(self) -> None: ...

    def diagnostics(self) -> str:
        """Whatever the instance printed on stderr (for error messages)."""
        return ""


class Instance:
    """One running runner: send a job, read its answer."""

    def __init__(self, channel: Channel, limits: Limits, use_nproc: bool, start_timeout: float = 60.0):
        self.channel = channel
        self._next_id = 0
        line = channel.recv_line(start_timeout)
        try:
            self.info = json.loads(line)
        except ValueError as e:
            raise SandboxDied(f"runner did not start: {line[:200]!r} {channel.diagnostics()}") from e
        channel.send((json.dumps(limits.runner_message(use_nproc)) + "\n").encode())

    def execute(self, job: ExecJob, grace_s: float = 10.0, on_long: Callable[[], None] | None = None) -> ExecResult:
        """Run one job; `on_long` is called once if it is still running after lend_after_s(timeout)."""
        self._next_id += 1
        wall = max_wall_s(job.timeout_s)
        msg = {"id": self._next_id, "program": job.program, "timeout": job.timeout_s, "max_wall": wall}
        if job.suffix and job.program.endswith("\n" + job.suffix):  # the runner compiles the suffix once
            msg["program"], msg["suffix"] = job.program[: -len(job.suffix) - 1], job.suffix
        self.channel.send((json.dumps(msg) + "\n").encode())
        notice = (lend_after_s(job.timeout_s), on_long) if on_long else None
        line = self.channel.recv_line(wall + grace_s, notice)
        try:
            res = json.loads(line)
            assert res["id"] == self._next_id
            return ExecResult(
                Status(res["status"]), float(res["duration_s"]), res.get("detail", ""), res.get("output", "")
            )
        except (ValueError, KeyError, AssertionError) as e:
            raise SandboxDied(f"bad answer from runner: {line[:200]!r}") from e

    def close(self) -> None:
        self.channel.close()


class Sandbox(ABC):
    """A kind of sandbox: starts isolated runner instances and describes itself for provenance."""

    kind: str = "?"
    owner: str = ""  # the run directory graded for (set by make_sandbox); docker names and labels containers by it

    def __init__(self, workers: int, limits: Limits | None = None) -> None:
        self.workers = max(1, workers)
        self.limits = limits or Limits()

    @abstractmethod
    def check(self) -> None:
        """Raise EnvironmentNotReady, with the command that fixes it, if this sandbox cannot start."""

    @abstractmethod
    def start_instance(self) -> Instance: ...

    def cleanup(self) -> None:
        """Remove anything left behind by instances (called once at the end)."""
        return None

    def provenance(self) -> dict:
        import hashlib

        return {
            "kind": self.kind,
            "workers": self.workers,
            "limits": self.limits.__dict__,
            "runner_sha256": hashlib.sha256(runner_source().encode()).hexdigest(),
        }
