"""bubblewrap sandbox: namespaces without a daemon, for machines without Docker.

Each instance is `bwrap --unshare-all --as-pid-1 ... python3 -I -u -c RUNNER MARKER`: no network,
a new PID namespace with the runner as PID 1, a private tmpfs /tmp, every capability dropped, and a
read-only view of only the system directories and the Python installation the runner needs
(no /etc, /home, /root, /work or the current directory). Jobs get RLIMIT_AS, RLIMIT_NPROC,
RLIMIT_FSIZE and RLIMIT_CPU from the runner, since there is no cgroup here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from harness.errors import EnvironmentNotReady
from harness.sandbox.base import Instance, Limits, Sandbox, runner_command
from harness.sandbox.pipes import PipeChannel

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin")


def _python_roots() -> list[str]:
    """Directories that hold the interpreter, its stdlib and numpy, bound read-only."""
    roots = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)}
    try:
        import numpy

        roots.add(str(Path(numpy.__file__).resolve().parent.parent))
    except ImportError:
        pass
    return sorted(r for r in roots if not any(r.startswith(d + "/") or r == d for d in SYSTEM_DIRS))


def readonly_binds() -> list[str]:
    """bwrap arguments exposing only the system directories and the Python installation, read-only."""
    argv: list[str] = []
    for d in SYSTEM_DIRS:
        if Path(d).is_symlink():
            argv += ["--symlink", str(Path(d).readlink()), d]
        elif Path(d).is_dir():
            argv += ["--ro-bind", d, d]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    return argv


class BwrapSandbox(Sandbox):
    kind = "bwrap"

    def __init__(self, workers: int, limits: Limits | None = None, python: str | None = None) -> None:
        super().__init__(workers, limits)
        self.python = python or sys.executable
        self.bwrap = shutil.which("bwrap")

    def argv(self) -> list[str]:
        assert self.bwrap
        argv = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "OPENBLAS_NUM_THREADS",
            "1",
            "--setenv",
            "OMP_NUM_THREADS",
            "1",
            "--setenv",
            "MKL_NUM_THREADS",
            "1",
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--chdir",
            "/tmp",
            "--uid",
            "65534",
            "--gid",
            "65534",
        ]
        argv += readonly_binds()
        return [*argv, *runner_command(self.python)]

    def check(self) -> None:
        if not self.bwrap:
            raise EnvironmentNotReady(
                "bubblewrap is not installed: `apt-get install bubblewrap` (or use --sandbox docker)"
            )
        probe = subprocess.run(
            [self.bwrap, "--unshare-all", "--ro-bind", "/", "/", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode != 0:
            raise EnvironmentNotReady(
                f"bubblewrap cannot create namespaces here: {probe.stderr.strip()} "
                "(enable unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1)"
            )

    def start_instance(self) -> Instance:
        return Instance(PipeChannel(self.argv()), self.limits, use_nproc=True)

    def provenance(self) -> dict:
        import platform

        out = subprocess.run([self.bwrap or "bwrap", "--version"], capture_output=True, text=True)
        return {
            **super().provenance(),
            "bwrap_version": out.stdout.strip(),
            "python": self.python,
            "python_version": platform.python_version(),
        }
