"""What the hostile agent run is made of: its settings, the hostile commands, a watcher of the run's
containers and of the host's processes, and readers of the run's trajectories (for
tests/integration/test_agent_hostile.py)."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from tests.integration.agent_helpers import reply

MODE = "tools"
T = 4  # command timeout (s)
DISK_MB = 64
PIDS = 128
STEP_LIMIT = 13
KILL_GRACE = 5  # `timeout -k 5`
CLIENT_GRACE = 15  # the client-side deadline is the command timeout + 15 s
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
FILL_FILE_KIB, FILL_FILES = 20, 1000  # calc-5: 19.5 MiB per command, over 64 MiB at the 4th
BURST_FILE_KIB, BURST_FILES = 64, 3072  # calc-6: 192 MiB in one command
OUTPUT_KEEP = 512 * 1024
MARKERS = {("sleep", "601"), ("sleep", "602"), ("sleep", "603"), ("yes",)}
BOMB = ":(){ :|:& };:"
IID = {i: f"harness__calc-{i}" for i in range(1, 7)}


def probe(host: str, port: int) -> str:
    """A command that tries a TCP connection and prints CONNECTED or the errno."""
    code = (
        "import socket\ntry:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=3)\n    print('CONNECTED')\n"
        "except OSError as e:\n    print('ERRNO', e.errno)"
    )
    return f'python3 -c "{code}"'


def hostile_commands(port: int, gateway: str) -> dict[str, str]:
    return {
        "loopback": probe("127.0.0.1", port),
        "gateway": probe(gateway, port),
        "flood": "yes",
        "sleep": "sleep 601",
        "term": "trap '' TERM; sleep 602",
        "detached": "setsid sleep 603 & echo detached",
        "ps": "sleep 604 & ps -eo pid,ppid,stat,args",  # sleep 604: a process that does exist
        "memory": "python3 -c 'x = bytearray(1 << 30)'",
        "bigfile": "dd if=/dev/zero of=/tmp/big bs=1M count=200; stat -c 'SIZE %s' /tmp/big; rm -f /tmp/big",
        "rm": "rm -rf /testbed && echo removed",
        "after_rm": "ls /",
        "submit": SUBMIT,
    }


def write_files(d: str, n: int, kib: int) -> str:
    return (
        f"python3 -c \"import os, tempfile, time; d = tempfile.mkdtemp(dir='{d}'); t = time.time(); "
        f"[open(os.path.join(d, str(i)), 'wb').write(b'x' * {kib * 1024}) for i in range({n})]; "
        "print('WROTE', round(time.time() - t, 2))\""
    )


# -- watching the run from the host -----------------------------------------------------------------


def _docker_id(pid: str) -> str | None:
    try:
        m = re.search(r"([0-9a-f]{64})", Path(f"/proc/{pid}/cgroup").read_text())
    except OSError:
        return None
    return m.group(1) if m else None


def marker_processes() -> list[tuple[tuple[str, ...], str | None]]:
    """Host processes running one of the hostile commands (or the fork bomb): (argv, docker container id)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = tuple(
                a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
            )
        except OSError:
            continue
        if argv in MARKERS or (len(argv) == 3 and argv[0] == "bash" and argv[2] == BOMB):
            found.append((argv, _docker_id(pid)))
    return found


def run_containers(client, run_dir: Path, size: bool = False) -> list[dict]:
    """The agent containers of this run (not other runs' on the same engine)."""
    from harness.agent.container import AGENT_LABEL
    from harness.sandbox.prune import RUN_DIR

    mine = {str(run_dir), os.path.realpath(run_dir)}
    return [
        c
        for c in client.api.containers(all=True, filters={"label": AGENT_LABEL}, size=size)
        if (c.get("Labels") or {}).get(RUN_DIR) in mine
    ]


class Watcher(threading.Thread):
    """Samples this run's containers and the host's marker processes until stopped."""

    def __init__(self, client, run_dir: Path) -> None:
        super().__init__(daemon=True)
        self.client, self.run_dir = client, run_dir
        self.halt = threading.Event()
        self.samples: list[dict] = []  # {"t", "containers": {iid: (id, name, state)}, "procs": [...]}
        self.peak_rw: dict[str, int] = {}

    def run(self) -> None:
        from harness.agent.container import AGENT_LABEL

        while not self.halt.is_set():
            try:
                cs = run_containers(self.client, self.run_dir, size=True)
            except Exception:
                cs = []
            containers = {}
            for c in cs:
                iid = c["Labels"][AGENT_LABEL]
                containers[iid] = (c["Id"], c["Names"][0].lstrip("/"), c["State"])
                self.peak_rw[iid] = max(self.peak_rw.get(iid, 0), c.get("SizeRw") or 0)
            self.samples.append({"t": time.time(), "containers": containers, "procs": marker_processes()})
            self.halt.wait(0.2)


# -- the run ------------------------------------------------------------------------------------------


def script(commands: list[str], events: dict[int, threading.Event] | None = None):
    """A per-instance script: turn n runs commands[n] (the last one repeats); events[n] is set when turn n is asked."""
    replies = [reply(MODE, c) for c in commands]

    def answer(n: int, body: dict):
        if events and n in events:
            events[n].set()
        return replies[min(n, len(replies) - 1)]

    return answer


def observations(h, i: int) -> list[dict]:
    return [s for s in h.steps[IID[i]] if s["type"] == "observation"]


def obs(h, i: int, command: str) -> dict:
    """The first observation of `command` in instance i's trajectory."""
    found = [s for s in observations(h, i) if s["command"] == command]
    assert found, (command, [s["command"] for s in observations(h, i)])
    return found[0]


def status(h, i: int) -> str:
    return h.rows[IID[i]]["info"]["status"]


def detail_mb(h, i: int) -> int:
    m = re.search(r"grew to (\d+) MB", h.rows[IID[i]]["info"].get("detail", ""))
    assert m, h.rows[IID[i]]["info"]
    return int(m.group(1))


# -- the tests ----------------------------------------------------------------------------------------
