"""A real two-node Ray cluster on this machine, on loopback only, for the `ray` tier.

The head is 127.0.0.2 and the second node 127.0.0.3 (Ray rewrites 127.0.0.1 to the machine's
outward address, any other loopback address it keeps), each advertising two `harness_docker`
slots and a resource of its own (`node_a`, `node_b`) so a test can tell them apart. Both use this
machine's Docker engine. The cluster lives in its own temp dir, so stopping it kills only its own
processes (never `ray stop`, which would stop every Ray process on the machine).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HEAD_IP, NODE_B_IP = "127.0.0.2", "127.0.0.3"
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    temp_dir: Path
    port: int
    client_port: int
    nodes: dict[str, str] = field(default_factory=dict)  # node_a / node_b -> Ray node id

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    def start_head(self) -> None:
        _ray_start(
            "--head",
            "--temp-dir",
            str(self.temp_dir),
            "--node-ip-address",
            HEAD_IP,
            "--port",
            str(self.port),
            "--ray-client-server-port",
            str(self.client_port),
            "--include-dashboard=false",
            "--resources",
            json.dumps({"harness_docker": 2, "node_a": 1}),
        )

    def start_node_b(self) -> None:
        _ray_start(
            "--address", self.address, "--node-ip-address", NODE_B_IP,
            "--resources", json.dumps({"harness_docker": 2, "node_b": 1}),
        )  # fmt: skip
        self.nodes = node_ids(self.address)

    def processes(self, node_b_only: bool = False) -> list:
        """This cluster's processes (with node_b_only: the second node's raylet and its children)."""
        import psutil

        roots = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if node_b_only:
                if "raylet" in cmd and "node_b," in cmd and str(self.temp_dir) in cmd:
                    roots.append(p)
            elif str(self.temp_dir) in cmd or f"--port={self.client_port}" in cmd:
                roots.append(p)
        found = {p.pid: p for p in roots}
        for p in roots:
            try:
                found.update({c.pid: c for c in p.children(recursive=True)})
            except psutil.NoSuchProcess:
                pass
        return list(found.values())

    def kill(self, node_b_only: bool = False) -> int:
        """SIGKILL this cluster's processes (or the second node's); returns how many."""
        procs = self.processes(node_b_only)
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except Exception:
                pass
        return len(procs)


def _ray_start(*args: str) -> None:
    cmd = [RAY, "start", "--num-cpus", "1", "--disable-usage-stats", *args]
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"ray start failed ({p.returncode}): {p.stderr[-2000:]}")


def node_ids(address: str) -> dict[str, str]:
    """node_a / node_b -> node id of the alive nodes, asked of the cluster by a separate driver."""
    code = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR');"
        "print(json.dumps({r: n['NodeID'] for n in ray.nodes() if n['Alive'] for r in n['Resources'] "
        "if r.startswith('node_')}))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def start(temp_dir: Path) -> Cluster:
    """A head and a second node, up and both registered."""
    c = Cluster(temp_dir, _free_port(), _free_port())
    c.start_head()
    try:
        c.start_node_b()
        deadline = time.monotonic() + 60
        while set(c.nodes) != {"node_a", "node_b"} and time.monotonic() < deadline:
            time.sleep(1)
            c.nodes = node_ids(c.address)
        if set(c.nodes) != {"node_a", "node_b"}:
            raise RuntimeError(f"the cluster has nodes {c.nodes}, not node_a and node_b")
    except BaseException:
        c.kill()
        raise
    return c
