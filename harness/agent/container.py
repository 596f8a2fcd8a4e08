"""The agent's environment: one hardened container per instance, from the instance's own image.

It is mini-swe-agent's `DockerEnvironment` (its config, template variables, serialization and the
submission check are the package's) with the container made by the harness:
- no network unless the config allows it, all capabilities dropped, no-new-privileges, memory
  (without swap), pids and CPU limits, a per-file size limit and a limit on the container's writable
  layer (measured while a command runs, as `disk.DiskWatch` schedules, and after it; past it the
  container is frozen, killed with its init and started again, its `sleep` anew, for the harness's
  own commands), tini as PID 1 so that
  killed commands leave no zombies; tini and its `sleep` run as nobody, the commands as root without
  CAP_KILL, so that no command can stop the container; processes left running past half the pids
  limit are killed after each command (a fork bomb does not outlive its command);
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

import docker.errors
import requests
from minisweagent.environments.docker import DockerEnvironment, DockerEnvironmentConfig

from harness.agent.disk import DiskWatch

AGENT_LABEL = "org.harness.agent"  # value: the instance id
# tini and the keeping `sleep` run as nobody, the agent's commands as root without CAP_KILL: so no
# command (`kill -9 -1`, `pkill sleep`) can end the container under the agent.
KEEPER_USER, EXEC_USER = "65534:65534", "0:0"
OUTPUT_KEEP = 512 * 1024  # bytes kept at each end of a command's output (the scaffold shows 5,000 chars each)
_SERIAL = itertools.count(1)
# What a call to the engine can raise: the SDK's own errors, and its transport's (a dropped socket).
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)


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
        self._rw = (0, time.monotonic())  # the writable layer's last measured size, and when
        self._start_container(labels)

    def _start_container(self, labels: dict[str, str] | None = None) -> None:  # type: ignore[override]
        from docker.types import Ulimit

        lim = self.limits
        disk = lim.disk_mb << 20
        self._pull_if_missing()
        try:
            c = self.client.containers.create(
                self.config.image,
                ["sleep", str(lim.lifetime_s)],
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
                user=KEEPER_USER,
                labels=labels or {},
            )
        except _ENGINE_ERRORS as e:
            raise EnvironmentFailure(f"container for {self.config.image} was not created: {e}") from None
        self.container_id = c.id
        try:
            c.start()
        except _ENGINE_ERRORS as e:
            self.cleanup()  # created but not started: nobody else would remove it
            raise EnvironmentFailure(f"container for {self.config.image} did not start: {e}") from None

    def _pull_if_missing(self) -> None:
        image = self.config.image
        try:
            self.client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except _ENGINE_ERRORS as e:
            raise EnvironmentFailure(f"image {image}: the engine did not answer ({e})") from None
        try:
            self.client.images.pull(image)
        except _ENGINE_ERRORS as e:
            raise EnvironmentFailure(f"image {image} is not on this Docker engine and was not pulled: {e}") from None

    def execute(self, action: dict, cwd: str = "", *, timeout: int | None = None) -> dict[str, Any]:
        """Run one command in cwd (default /testbed) under the command timeout; the package's output dict."""
        command = action.get("command", "")
        limit = timeout or self.config.timeout
        env = {k: v for k in self.config.forward_env if (v := os.getenv(k)) is not None} | self.config.env
        argv = ["timeout", "-k", "5", str(limit), *self.config.interpreter, command]
        t0 = time.monotonic()
        out, code, cut, over = self._exec(argv, cwd or self.config.cwd, env, limit + 15, watch=True)
        elapsed = time.monotonic() - t0
        out = out.replace("\r\n", "\n").replace("\r", "\n")  # as the package's text-mode subprocess reads it
        reaped = self._reap()
        note = f"\n[harness: {reaped} processes left running exceeded half the pids limit and were killed]\n"
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
                    "output": out + (note if reaped else ""),
                    "exception_info": output["exception_info"],
                    "duration_s": round(elapsed, 3),
                }
            )
        self._check_finished(output)  # on the command's own output: a submission ends the instance as it is
        if reaped:
            output["output"] += note
        size = over or self._size()
        if size > self.limits.disk_mb << 20:
            if not over:  # grown past it since the command's last measurement: a background writer, say
                self._halt()
                self._restart()
            raise DiskLimitExceeded(
                f"the container's files grew to {size >> 20} MB, over its {self.limits.disk_mb} MB disk limit"
            )
        return output

    def _exec(
        self, argv: list[str], cwd: str, env: dict[str, str], deadline_s: float, watch: bool = False
    ) -> tuple[str, int, bool, int]:
        """(output, exit code, cut off by the client-side deadline, the writable layer's size in bytes if
        `watch` found it over the disk limit while the command ran, which is then killed; else 0)."""
        from docker.utils.socket import frames_iter

        api = self.client.api
        try:
            ex = api.exec_create(
                self.container_id, argv, workdir=cwd, environment=env, stdout=True, stderr=True, user=EXEC_USER
            )
            sock = api.exec_start(ex["Id"], socket=True)
        except _ENGINE_ERRORS as e:
            raise EnvironmentFailure(f"docker exec failed: {e}") from None
        buf, raw = _Bounded(), getattr(sock, "_sock", sock)
        raw.settimeout(None)  # a command may be silent for long; the deadline below bounds the wait

        def read() -> None:
            try:
                for _stream, data in frames_iter(sock, tty=False):
                    buf.add(data)
            except OSError:
                pass  # shut down at the deadline

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        end, over, failed = time.monotonic() + deadline_s, 0, None
        disk = DiskWatch(self.limits.disk_mb << 20, self._size, *self._rw) if watch else None
        while reader.is_alive() and (left := end - time.monotonic()) > 0:
            reader.join(min(left, disk.wait()) if disk else left)
            if disk and reader.is_alive():
                disk.measure()
                if disk.over():  # one command must not fill the host's disk before it ends
                    over = disk.size
                    try:
                        self._halt()
                    except EnvironmentFailure as e:
                        failed = e  # raised once the output stream is closed
                    reader.join(5)
                    break
        cut = reader.is_alive() and not over
        if reader.is_alive():  # something detached from `timeout` still holds the output open: stop reading
            try:
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            reader.join(5)
        try:
            sock.close()
        except OSError:
            pass
        if failed:
            raise failed
        if over:
            try:
                code = self._exit_code(ex["Id"], wait_s=5.0)
            except EnvironmentFailure:  # the engine may drop an exec's record when its container's init dies first
                code = None
            self._restart()
            return buf.text(), 137 if code is None else code, False, over
        code = self._exit_code(ex["Id"], wait_s=0.0 if cut else 5.0)
        # No exit code: it still runs (something detached held the output); it was cut off.
        return buf.text(), (-1 if code is None else code), cut or code is None, over

    def _exit_code(self, exec_id: str, wait_s: float) -> int | None:
        """The exec's exit code; None while it runs. The engine may report the exit a moment after the
        output closed (more so under load): waited for up to wait_s."""
        end = time.monotonic() + wait_s
        while True:
            try:
                state = self.client.api.exec_inspect(exec_id)
            except _ENGINE_ERRORS as e:
                raise EnvironmentFailure(f"docker exec inspect failed: {e}") from None
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def _size(self) -> int:
        """The container's writable layer in bytes (the last known size when the engine does not answer)."""
        try:
            found = self.client.api.containers(all=True, filters={"id": self.container_id}, size=True)
        except _ENGINE_ERRORS:
            return self._rw[0]
        if not found:
            raise EnvironmentFailure("the instance container is gone")
        self._rw = (found[0].get("SizeRw") or 0, time.monotonic())
        return self._rw[0]

    def _halt(self) -> None:
        """Stop every process in the container at once, its files kept. Frozen first (the cgroup freezer:
        ~10 ms, where an exec of `kill` takes ~50 ms of writing more), then its init is killed, which
        ends the whole PID namespace: detached and background processes too."""
        api, cid = self.client.api, self.container_id
        try:
            api.pause(cid)
        except _ENGINE_ERRORS:
            pass  # killed below all the same
        try:
            api.kill(cid)
        except _ENGINE_ERRORS:
            try:  # an engine that does not kill a paused container
                api.unpause(cid)
                api.kill(cid)
            except _ENGINE_ERRORS as e:
                raise EnvironmentFailure(f"the container over its disk limit was not stopped: {e}") from None

    def _restart(self) -> None:
        """Start the halted container again (its layer as it was) for the harness's own commands. If it
        does not start, the worktree diff fails and says so; the instance stays the model's `disk_limit`."""
        api, cid = self.client.api, self.container_id
        try:
            api.wait(cid, timeout=30)
            api.start(cid)
        except _ENGINE_ERRORS:
            pass

    def _pids(self) -> int | None:
        """Processes in the container: the engine's cgroup counter when this host can read it, else `top`."""
        cid = self.container_id
        for path in (
            f"/sys/fs/cgroup/pids/docker/{cid}/pids.current",  # cgroup v1, cgroupfs driver
            f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/pids.current",  # v2, systemd driver
            f"/sys/fs/cgroup/docker/{cid}/pids.current",  # v2, cgroupfs driver
        ):
            try:
                with open(path) as f:
                    return int(f.read())
            except (OSError, ValueError):
                continue
        try:
            return len(self.client.api.top(cid).get("Processes") or [])
        except _ENGINE_ERRORS:
            return None

    def _reap(self) -> int:
        """Kill what commands left running once it nears the pids limit (a fork bomb outliving its
        command); background processes below that are the agent's own business, as in the package."""
        n = self._pids()
        if n is None or n <= max(8, self.limits.pids_limit // 2):
            return 0
        self._kill_all()
        return n

    def _kill_all(self) -> None:
        """SIGKILL every process the agent's commands started (root's; the keeper is nobody's). A
        container at its pids limit may refuse the exec for a moment: retried."""
        api = self.client.api
        for _ in range(100):
            try:
                ex = api.exec_create(self.container_id, ["sh", "-c", "kill -9 -1"], user=EXEC_USER)
                api.exec_start(ex["Id"])
            except _ENGINE_ERRORS:
                pass
            if (self._pids() or 0) <= 3:  # tini, the keeper, and an exec on its way out
                return
            time.sleep(0.05)

    def run_plain(self, argv: list[str], timeout_s: int = 120) -> tuple[str, int]:
        """A harness command in the container (not the agent's): (output, exit code)."""
        out, code, _, _ = self._exec(argv, self.config.cwd, {}, timeout_s)
        return out, code

    def cleanup(self) -> None:
        """Remove the container now (waits for the removal)."""
        cid, self.container_id = getattr(self, "container_id", None), None
        if cid is None:
            return
        try:
            self.client.api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except _ENGINE_ERRORS:
            pass  # the sweep of the next run, or `harness sandbox prune`, removes it

    def __del__(self) -> None:  # the package's would shell out to `docker stop`; cleanup is explicit here
        pass


def next_serial() -> int:
    """A process-wide serial for container names."""
    return next(_SERIAL)
