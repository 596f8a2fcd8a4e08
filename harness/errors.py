"""Error types that the CLI turns into exit codes and one-line messages."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: an error with a message meant for the user and an exit code."""

    exit_code = 1


class UserInputError(HarnessError):
    """Bad input (file, line, key): nothing was written; exit code 2."""

    exit_code = 2


class EnvironmentNotReady(HarnessError):
    """The machine lacks something (Docker engine, image, bwrap); the message says how to fix it."""

    exit_code = 3


class SandboxDied(Exception):
    """A sandbox instance stopped answering; the pool replaces it and retries the job."""
