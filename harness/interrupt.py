"""Ctrl-C and SIGTERM: stop the work, say so at once, and name the command that resumes.

The handler raises `Interrupted`, which is neither a KeyboardInterrupt (typer turns that into a
silent exit 130) nor an Exception (an `except Exception` on the way up could take it for a failure
to retry or to score). Clean-up (containers, engine processes) then runs in the usual `finally`
blocks; a second signal during clean-up raises again and stops at once.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


class Interrupted(BaseException):
    """The process received SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


# What the interrupted command should be re-run as; the run commands set it once their directory exists.
_resume_hint: list[str] = []
_received: list[int] = []


def set_resume_hint(command: str) -> None:
    """The command that completes what this process was doing (e.g. `harness run --resume DIR`)."""
    _resume_hint.append(command)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = not _received
    _received.append(signum)
    if first:
        name = signal.Signals(signum).name
        print(f"harness: {name} received; stopping (again to stop at once, skipping clean-up)", file=sys.stderr)
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGINT and SIGTERM in this (the main) thread."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def message(signum: int) -> str:
    """The last line an interrupted command prints."""
    hint = _resume_hint[-1] if _resume_hint else "re-run the same command"
    return f"interrupted ({signal.Signals(signum).name}); nothing recorded is lost: {hint} to resume"
