"""The agent's environment: one hardened container per instance, from the instance's own image.

It is mini-swe-agent's `DockerEnvironment` (its config, template variables, serialization and the
submission check are the package's) with the container made by the harness:
- no network unless the config allows it, all capabilities dropped, no-new-privileges, memory
  (without swap), pids and CPU limits, a per-file size limit and a limit on the container's writable
  layer (checked after each command), tini as PID 1 so that killed commands leave no zombies;
- owner labels, so that `harness sandbox prune` and the next run's sweep remove it after a kill -9;
  its own `sleep` ends it after the instance's time limit even if nobody does;
- each command under coreutils `timeout` (its whole process group is killed at the deadline), its
  output bounded in memory (head and tail kept), and a client-side deadline for commands that
  detach from the timeout.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minisweagent.environments.docker import DockerEnvironment, DockerEnvironmentConfig

AGENT_LABEL = "org.harness.agent"  # value: the instance id
OUTPUT_KEEP = 512 * 1024  # bytes kept at each end of a command's output (the scaffold shows 5,000 chars each)
_SERIAL = itertools.count(1)


class EnvironmentFailure(Exception):
    """The container could not be started or stopped answering: infrastructure, never the model's doing."""


class DiskLimitExceeded(Exception):
    """The agent's files outgrew the container's disk limit: the instance ends (the model's doing)."""


@dataclass(frozen=True)
class Limits:
    """What one agent container may use."""

    network: bool = False
    memory_mb: int = 4096
    pids_limit: int = 1024
    cpus: float = 2.0
    disk_mb: int = 4096  # the writable layer, and any one file
    lifetime_s: int = 4 * 3600  # the container's own sleep: it stops by itself after this


class _Bounded:
    """A command's output: all of it up to 2 x OUTPUT_KEEP bytes, else the head, the tail and a count."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = OUTPUT_KEEP - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > OUTPUT_KEEP:
                cut = len(self.tail) - OUTPUT_KEEP
                self.dropped += cut
                del self.tail[:cut]

    def text(self) -> str:
        middle = f"\n[harness: {self.dropped} bytes of output not kept]\n".encode() if self.dropped else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", errors="replace")


class HardenedDocker(DockerEnvironment):
    """mini-swe-agent's Docker environment, in a container the harness makes and removes."""

    def __init__(self, *, client: Any, labels: dict[str, str], name: str, limits: Limits, **kwargs: Any) -> None:
        # DockerEnvironment.__init__ would start its own (unhardened) container: only its config is taken.
        self.config = DockerEnvironmentConfig(**kwargs)
        self.client, self.limits = client, limits
        self.container_id: str | None = None
        self.name = name
        self.on_command: Callable[[dict], None] | None = None  # sees each command's outcome (trajectories)
        self._start_container(labels)

    def _start_container(self, labels: dict[str, str] | None = None) -> None:  # type: ignore[override]
        import docker.errors
        from docker.types import Ulimit

        lim = self.limits
        disk = lim.disk_mb << 20
        try:
            c = self.client.containers.run(
                self.config.image,
                ["sleep", str(lim.lifetime_s)],
                detach=True,
                name=self.name,
                working_dir=self.config.cwd,
                network_mode="bridge" if lim.network else "none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=f"{lim.memory_mb}m",
                memswap_limit=f"{lim.memory_mb}m",
                pids_limit=lim.pids_limit,
                nano_cpus=int(lim.cpus * 1e9),
                ulimits=[Ulimit(name="fsize", soft=disk, hard=disk)],
                init=True,
                labels=labels or {},
            )
        except docker.errors.ImageNotFound:
            raise EnvironmentFailure(f"image {self.config.image} is not on this Docker engine") from None
        except docker.errors.DockerException as e:
            raise EnvironmentFailure(f"container for {self.config.image} did not start: {e}") from None
        self.container_id = c.id

    def execute(self, action: dict, cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
        """Run one command in cwd (default /testbed) under the command timeout; the package's output dict."""
        command = action.get("command", "")
        limit = timeout or self.config.timeout
        env = {k: v for k in self.config.forward_env if (v := os.getenv(k)) is not None} | self.config.env
        argv = ["timeout", "-k", "5", str(limit), *self.config.interpreter, command]
        t0 = time.monotonic()
        out, code, cut = self._exec(argv, cwd or self.config.cwd, env, limit + 15)
        elapsed = time.monotonic() - t0
        if cut or (code in (124, 137) and elapsed >= limit):
            # The package's shape for a command that timed out (its subprocess.TimeoutExpired).
            msg = f"Command '{command}' timed out after {limit} seconds"
            output = {
                "output": out,
                "returncode": -1,
                "exception_info": f"An error occurred while executing the command: {msg}",
                "extra": {"exception_type": "TimeoutExpired", "exception": msg, "duration_s": round(elapsed, 3)},
            }
        else:
            output = {
                "output": out,
                "returncode": code,
                "exception_info": "",
                "extra": {"duration_s": round(elapsed, 3)},
            }
        if self.on_command is not None:
            self.on_command(
                {
                    "command": command,
                    "returncode": output["returncode"],
                    "output": out,
                    "exception_info": output["exception_info"],
                    "duration_s": round(elapsed, 3),
                }
            )
        self._check_disk()
        self._check_finished(output)
        return output

    def _exec(self, argv: list[str], cwd: str, env: dict[str, str], deadline_s: float) -> tuple[str, int, bool]:
        """(output, exit code, cut off by the client-side deadline)."""
        import docker.errors
        from docker.utils.socket import frames_iter

        api = self.client.api
        try:
            ex = api.exec_create(self.container_id, argv, workdir=cwd, environment=env, stdout=True, stderr=True)
            sock = api.exec_start(ex["Id"], socket=True)
        except docker.errors.DockerException as e:
            raise EnvironmentFailure(f"docker exec failed: {e}") from None
        buf, raw = _Bounded(), getattr(sock, "_sock", sock)

        def read() -> None:
            try:
                for _stream, data in frames_iter(sock, tty=False):
                    buf.add(data)
            except OSError:
                pass  # shut down at the deadline

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(deadline_s)
        cut = reader.is_alive()
        if cut:  # something detached from `timeout` still holds the output open: stop reading it
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            reader.join(5)
        try:
            sock.close()
        except OSError:
            pass
        code = -1
        try:
            code = api.exec_inspect(ex["Id"]).get("ExitCode")
        except docker.errors.DockerException as e:
            raise EnvironmentFailure(f"docker exec inspect failed: {e}") from None
        return buf.text(), (-1 if code is None else int(code)), cut

    def _check_disk(self) -> None:
        import docker.errors

        try:
            found = self.client.api.containers(all=True, filters={"id": self.container_id}, size=True)
        except docker.errors.DockerException:
            return
        if not found:
            raise EnvironmentFailure("the instance container is gone")
        size = found[0].get("SizeRw") or 0
        if size > self.limits.disk_mb << 20:
            raise DiskLimitExceeded(
                f"the container's files grew to {size >> 20} MB, over its {self.limits.disk_mb} MB disk limit"
            )

    def run_plain(self, argv: list[str], timeout_s: int = 120) -> tuple[str, int]:
        """A harness command in the container (not the agent's): (output, exit code)."""
        out, code, _ = self._exec(argv, self.config.cwd, {}, timeout_s)
        return out, code

    def cleanup(self) -> None:
        """Remove the container now (waits for the removal)."""
        cid, self.container_id = getattr(self, "container_id", None), None
        if cid is None:
            return
        import docker.errors

        try:
            self.client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.DockerException:
            pass  # the sweep of the next run, or `harness sandbox prune`, removes it

    def __del__(self) -> None:  # the package's would shell out to `docker stop`; cleanup is explicit here
        pass


def next_serial() -> int:
    """A process-wide serial for container names."""
    return next(_SERIAL)
