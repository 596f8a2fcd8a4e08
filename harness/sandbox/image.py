"""Building the execution image: from the Dockerfile where a registry answers, else offline.

The offline route makes a Debian root filesystem with debootstrap (python3 and numpy from
Debian, the mirror read from this machine's apt configuration at run time) and `docker import`s
it. Both routes tag the result `harness-sandbox:<hash>`, the hash covering the Dockerfile and
the offline recipe, so a changed recipe never reuses a stale image.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from harness.errors import EnvironmentNotReady

REPO = "harness-sandbox"
OFFLINE_PACKAGES = ("python3", "python3-numpy")
OFFLINE_CHANGES = ("USER 65534:65534", "WORKDIR /tmp", "ENV PYTHONDONTWRITEBYTECODE=1", 'CMD ["python3"]')


def sandboxes_dir() -> Path:
    """sandboxes/ in a source checkout, or the copy packed into the wheel."""
    here = Path(__file__).resolve()
    for cand in (here.parents[2] / "sandboxes", here.parents[1] / "_sandboxes"):
        if cand.is_dir():
            return cand
    raise EnvironmentNotReady("cannot find the sandboxes/ directory of the harness installation")


def dockerfile_dir() -> Path:
    return sandboxes_dir() / "humaneval"


def image_tag() -> str:
    """harness-sandbox:<12 hex of sha256(Dockerfile + offline recipe)>."""
    h = hashlib.sha256()
    h.update((dockerfile_dir() / "Dockerfile").read_bytes())
    h.update(repr((OFFLINE_PACKAGES, OFFLINE_CHANGES)).encode())
    return f"{REPO}:{h.hexdigest()[:12]}"


def debian_mirror_and_suite() -> tuple[str, str]:
    """The Debian mirror and suite this machine's apt uses (deb822 or one-line format)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        text = path.read_text()
        for stanza in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(\S+)", stanza, re.M)
            if uris and suites and "security" not in uris.group(1) and "-" not in suites.group(1):
                return uris.group(1), suites.group(1)
    lists = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in lists:
        if path.exists():
            for line in path.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+", line)
                if m and "security" not in m.group(1) and "-" not in m.group(2):
                    return m.group(1), m.group(2)
    raise EnvironmentNotReady("cannot find a Debian mirror in /etc/apt: the offline build needs one")


def build_from_dockerfile(client, tag: str, log: Callable[[str], None]) -> None:
    """docker build sandboxes/humaneval; raises on failure (e.g. no registry to pull from)."""
    _, logs = client.images.build(
        path=str(dockerfile_dir()), tag=tag, rm=True, pull=False, labels={"org.harness.build": "dockerfile"}
    )
    for chunk in logs:
        if "stream" in chunk and chunk["stream"].strip():
            log(chunk["stream"].rstrip())


def build_offline(
    client,
    tag: str,
    log: Callable[[str], None],
    cache_dir: Path | None = None,
    packages: tuple[str, ...] = OFFLINE_PACKAGES,
    changes: tuple[str, ...] = OFFLINE_CHANGES,
) -> None:
    """debootstrap a minimal Debian with `packages` (python3 + numpy by default) and import it as the image."""
    if not shutil.which("debootstrap"):
        raise EnvironmentNotReady("the offline build needs debootstrap: `apt-get install debootstrap`")
    mirror, suite = debian_mirror_and_suite()
    with tempfile.TemporaryDirectory(prefix="harness-rootfs-", dir=cache_dir) as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            suite,
            str(rootfs),
            mirror,
        ]
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentNotReady(f"debootstrap failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        # Trim what a sandbox never needs; the image shrinks by about a third.
        for sub in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            shutil.rmtree(rootfs / sub, ignore_errors=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, _, version = tag.partition(":")
        log(f"importing {tarball.stat().st_size >> 20} MB as {tag}")
        client.api.import_image_from_file(
            str(tarball), repository=repo, tag=version, changes=[*changes, "LABEL org.harness.build=offline"]
        )


def build(offline: bool, log: Callable[[str], None], force: bool = False) -> str:
    """Build the sandbox image unless it exists; returns the tag."""
    import docker.errors

    from harness.sandbox.docker import docker_client

    client = docker_client(timeout=600)
    tag = image_tag()
    if not force:
        try:
            client.images.get(tag)
            log(f"{tag} already exists")
            return tag
        except docker.errors.ImageNotFound:
            pass
    if not offline:
        try:
            build_from_dockerfile(client, tag, log)
            return tag
        except (docker.errors.BuildError, docker.errors.APIError) as e:
            log(f"Dockerfile build failed ({str(e).splitlines()[0][:200]}); building offline instead")
    build_offline(client, tag, log)
    return tag
