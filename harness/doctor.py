"""`harness doctor`: what the sandboxes need, what is there, and the command that fixes the rest."""

from __future__ import annotations

import shutil
import subprocess

from harness.errors import EnvironmentNotReady


def _line(ok: bool, what: str, detail: str) -> None:
    print(f"[{'ok' if ok else '--'}] {what:<16} {detail}")


def report() -> bool:
    """Print one line per component; True when at least one sandbox is usable."""
    from harness.sandbox.bwrap import BwrapSandbox
    from harness.sandbox.docker import DockerSandbox, docker_client
    from harness.sandbox.image import image_tag

    docker_ok = False
    try:
        client = docker_client(timeout=10)
        _line(True, "docker engine", f"version {client.version().get('Version')}")
        sb = DockerSandbox(1)
        try:
            sb.check()
            _line(True, "sandbox image", f"{sb.image} ({sb._image_id[:19]})")
            docker_ok = True
        except EnvironmentNotReady as e:
            _line(False, "sandbox image", str(e))
    except EnvironmentNotReady as e:
        _line(False, "docker engine", str(e))
        _line(False, "sandbox image", f"{image_tag()} (needs the engine)")
    bwrap_ok = False
    try:
        BwrapSandbox(1).check()
        out = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
        _line(True, "bubblewrap", out)
        bwrap_ok = True
    except EnvironmentNotReady as e:
        _line(False, "bubblewrap", str(e))
    _line(
        bool(shutil.which("debootstrap")),
        "debootstrap",
        "present (offline image builds)"
        if shutil.which("debootstrap")
        else "missing: `apt-get install debootstrap` for `harness sandbox build --offline`",
    )
    usable = [n for n, ok in (("docker", docker_ok), ("bwrap", bwrap_ok)) if ok]
    print(f"sandbox auto -> {usable[0] if usable else 'NONE: model code will not run'}")
    return bool(usable)
