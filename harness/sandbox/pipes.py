"""A Channel over a subprocess's stdin/stdout pipes (used by the bwrap sandbox)."""

from __future__ import annotations

import os
import select
import subprocess

from harness.errors import SandboxDied
from harness.sandbox.base import Channel


class PipeChannel(Channel):
    """Line channel to a child process; stderr goes to a bounded buffer for diagnostics."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        super().__init__()
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
        self._errbuf = bytearray()

    def send(self, data: bytes) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise SandboxDied(f"runner stdin closed: {e}; {self.diagnostics()}") from e

    def _read_some(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._out, self._err], [], [], timeout)
        if self._err in ready:
            chunk = os.read(self._err, 65536)
            if len(self._errbuf) < 65536:
                self._errbuf.extend(chunk)
        if self._out not in ready:
            return b""
        chunk = os.read(self._out, 1 << 20)
        if not chunk:
            raise SandboxDied(f"runner exited (code {self.proc.poll()}); {self.diagnostics()}")
        return chunk

    def diagnostics(self) -> str:
        return self._errbuf.decode("utf-8", "replace")[-2000:].strip()

    def close(self) -> None:
        # End of input first: the runner finishes the clean-up of its last job and exits, and with it
        # the sandbox, so nothing of the job is left when close returns. Killed if it does not.
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f:
                f.close()
