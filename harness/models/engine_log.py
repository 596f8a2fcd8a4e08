"""vLLM's output goes to a log in the run directory; a failed start shows what in it matters.

On the console a run shows its own progress and result table; the engine's hundreds of lines
(vLLM's logger in this process and in the engine's processes, weight-loading bars, C++ warnings)
go to RUN_DIR/engine.log (in-process engine) or RUN_DIR/server.log (`vllm serve`). When the
engine does not start, the root cause is often only in that log, several processes and
tracebacks before its last line ("Engine core initialization failed. See root cause above"), so
`summary` shows the log's exception lines, or its tail when it has none, and names the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from harness.errors import EnvironmentNotReady

ENGINE_LOG = "engine.log"
# vLLM's prefix: "(EngineCore pid=14787) ERROR 11-26 22:42:45 [core.py:1510] "
_PREFIX = re.compile(r"^\([^)]*\) [A-Z]+ \S+ \S+ \[[^\]]*\] ")
# "ValueError: ...", "torch.OutOfMemoryError: ...", "Exception: ..." (not "raise ValueError(")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception)\w*: \S")


@contextlib.contextmanager
def output_to(log: IO) -> Iterator[None]:
    """Point this process's stdout and stderr (the file descriptors) at log: vLLM's logger, its
    progress bars, C++ warnings, and the engine processes spawned meanwhile, which inherit them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()  # what Python still buffers belongs to the log, not the console
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def summary(path: Path, max_lines: int = 12, tail: int = 30) -> str:
    """The log's distinct exception lines (the root cause among them), else its last lines; then its path."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    errors = dict.fromkeys(m[:500] for line in lines if _EXCEPTION.match(m := _PREFIX.sub("", line)))
    if errors:
        shown = list(errors)[:max_lines]
        return f"errors in {path}:\n" + "\n".join(f"  {e}" for e in shown)
    return f"the last lines of {path}:\n" + "\n".join(lines[-tail:])


class EngineLog:
    """RUN_DIR/engine.log for the life of an in-process engine: `capture()` around its start (the
    engine's processes inherit the file as their stdout and stderr), then `follow_logger()` for
    what vLLM logs in this process afterwards, `close()` when the engine is shut down."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.environ.setdefault("VLLM_LOGGING_COLOR", "0")  # no escape codes in a file (read when vllm loads)
        self.file: IO = open(path, "a", buffering=1)  # noqa: SIM115 - closed by close()
        self._handlers: list[tuple[logging.StreamHandler, IO]] = []

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Everything this process and its new children print goes to the log meanwhile."""
        with output_to(self.file):
            yield

    def follow_logger(self) -> None:
        """vLLM's logger writes to the sys.stdout it was configured with: from now on, to the log."""
        for h in logging.getLogger("vllm").handlers:
            if type(h) is logging.StreamHandler:
                self._handlers.append((h, h.setStream(self.file)))

    def failed(self, what: str, e: BaseException) -> EnvironmentNotReady:
        """The error to raise when the engine did not start: the exception, and what the log says."""
        return EnvironmentNotReady(f"{what}: {type(e).__name__}: {str(e).strip()[:2000]}\n{summary(self.path)}")

    def close(self) -> None:
        for h, stream in self._handlers:
            h.setStream(stream)
        self._handlers = []
        self.file.close()
