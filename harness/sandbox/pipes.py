"""A Channel over a subprocess's stdin/stdout pipes (used by the bwrap sandbox)."""

from __future__ import annotations

import os
import select
import subprocess
import time

from harness.errors import SandboxDied
from harness.sandbox.base import Channel


class PipeChannel(Channel):
    """Line channel to a child process; stderr goes to a bounded buffer for diagnostics."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert self.proc.stdout and self.proc.stdin and self.proc.stderr
        self._out = self.proc.stdout.fileno()
        self._err = self.proc.stderr.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._err, False)
        self._buf = bytearray()
        self._errbuf = bytearray()

    def send(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise SandboxDied(f"runner stdin closed: {e}; {self.diagnostics()}") from e

    def recv_line(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxDied(f"runner did not answer within {timeout:.0f} s")
            ready, _, _ = select.select([self._out, self._err], [], [], remaining)
            if self._err in ready:
                chunk = os.read(self._err, 65536)
                if len(self._errbuf) < 65536:
                    self._errbuf.extend(chunk)
            if self._out in ready:
                chunk = os.read(self._out, 1 << 20)
                if not chunk:
                    raise SandboxDied(f"runner exited (code {self.proc.poll()}); {self.diagnostics()}")
                self._buf.extend(chunk)

    def diagnostics(self) -> str:
        return self._errbuf.decode("utf-8", "replace")[-2000:].strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
