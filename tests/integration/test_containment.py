"""Every hostile behaviour of point 5 ends as failed / timeout / error, is contained, and leaves the host
and the other samples unaffected. Runs against the real Docker engine and real bubblewrap."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.conftest import REPO
from tests.integration.helpers import grade_rows, runner_processes

TASK = "HumanEval/0"


def hostile_cases(tmp_path, port):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOP SECRET")
    canary = tmp_path / "canary.txt"
    canary.write_text("still here")
    written = tmp_path / "pwned.txt"
    fake = '{"nonce": "0", "status": "passed", "detail": "", "duration_s": 0.0, "output": "", "id": %d}'
    forge = "\n".join(
        [
            "import os",
            *[f"print('{fake % i}')" for i in range(1, 4)],
            "for fd in range(1, 64):",
            "    for i in range(1, 4):",
            "        try:",
            f"            os.write(fd, ('{fake}' % i + '\\n').encode())",
            "        except OSError:",
            "            pass",
            "os._exit(0)",
        ]
    )
    return (
        {
            "exit": ("exit(0)", {"failed"}),
            "sys_exit": ("import sys\nsys.exit(0)", {"failed"}),
            "os_exit": ("import os\nos._exit(0)", {"failed"}),
            "kill_parent": (
                "import ctypes, os\nlibc = ctypes.CDLL(None)\nlibc.kill(os.getppid(), 9)\nlibc.kill(1, 9)\nos._exit(0)",
                {"failed"},
            ),
            # kill(-1) reaches every process but the caller and PID 1 (the runner): nothing to kill.
            "kill_everything": ("import ctypes, os\nctypes.CDLL(None).kill(-1, 9)\nos._exit(0)", {"failed"}),
            "fake_result_lines": (forge, {"failed"}),
            "fork_bomb": (
                "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()",
                {"timeout", "error"},
            ),
            "memory_bomb": ("x = []\nwhile True:\n    x.append(bytearray(10**7))", {"error"}),
            "infinite_loop": ("while True:\n    pass", {"timeout"}),
            "stdout_flood_fd": ("import os\nwhile True:\n    os.write(1, b'x' * 65536)", {"timeout"}),
            "stdout_flood_print": ("while True:\n    print('y' * 1000)", {"timeout"}),
            "read_host_file": (f"print(open({str(secret)!r}).read())", {"failed"}),
            "read_repo_file": (f"print(open({str(REPO / 'pyproject.toml')!r}).read())", {"failed"}),
            "write_host_file": (f"open({str(written)!r}, 'w').write('pwned')", {"failed"}),
            "write_system_dir": ("open('/usr/harness-pwned', 'w').write('pwned')", {"failed"}),
            "delete_host_file": (
                f"import ctypes\nassert ctypes.CDLL(None).unlink({str(canary).encode()!r}) == 0",
                {"failed"},
            ),
            "network": (
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
                {"failed"},
            ),
        },
        secret,
        canary,
        written,
    )


def test_hostile_code_is_contained(sandbox_kind, humaneval, tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept_loop():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                pass

    t = threading.Thread(target=accept_loop, daemon=True)
    t.start()
    cases, secret, canary, written = hostile_cases(tmp_path, port)
    canonical = humaneval.by_id[TASK].canonical_solution
    names = list(cases)
    # Each hostile trailer follows a correct solution, so a grader that trusted exit codes or
    # printed lines would count it as passed. Correct samples of other tasks are interleaved.
    rows = []
    for i, name in enumerate(names):
        rows.append({"task_id": TASK, "completion": canonical + "\n" + cases[name][0] + "\n"})
        other = humaneval.tasks[1 + i]
        rows.append({"task_id": other.task_id, "completion": other.canonical_solution})
    before = set(runner_processes())
    results, samples = grade_rows(humaneval, rows, tmp_path / "run", sandbox_kind, timeout_s=3.0)
    stop.set()
    t.join()
    by_sample = {s["sample_id"]: s for s in samples if s["task_id"] == TASK}
    for i, name in enumerate(names):
        got = by_sample[i]
        assert got["status"] in cases[name][1], (name, got)
        assert not got["passed"]
        assert len(got.get("output", "")) <= 4096 + 4096, name
    others = [s for s in samples if s["task_id"] != TASK]
    assert len(others) == len(names) and all(s["passed"] for s in others), others
    assert results["counts"]["infra_error"] == 0
    assert results["provenance"]["sandbox"]["instances_replaced"] == 0
    assert accepted == [], "a sample reached the host's loopback"
    assert canary.read_text() == "still here"
    assert not written.exists()
    assert secret.read_text() == "TOP SECRET"
    import pathlib

    assert not pathlib.Path("/usr/harness-pwned").exists()
    assert set(runner_processes()) - before == set(), "sandbox processes outlived the run"
    details = {names[i]: by_sample[i]["detail"] for i in range(len(names))}
    assert "FileNotFoundError" in details["read_host_file"] or "PermissionError" in details["read_host_file"]
    assert "MemoryError" in details["memory_bomb"]


def test_a_sample_cannot_see_another_samples_files(sandbox_kind, humaneval, tmp_path):
    """Jobs get fresh working directories: a file left by one sample is gone for the next."""
    canonical = humaneval.by_id[TASK].canonical_solution
    rows = [
        {
            "task_id": TASK,
            "completion": canonical + "\nimport tempfile\nopen('/tmp/leak', 'w').write('x')\n"
            "open('left-behind', 'w').write('x')\n",
        },
        {
            "task_id": TASK,
            "completion": canonical + "\nimport os\nassert not os.path.exists('left-behind')\n",
        },
    ]
    _, samples = grade_rows(humaneval, rows, tmp_path / "run", sandbox_kind, workers=1)
    assert [s["status"] for s in samples] == ["passed", "passed"], samples


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["docker"])
def test_container_is_locked_down(kind, humaneval, tmp_path):
    """Inside the container: uid 65534, no capabilities, read-only root, no network interfaces but lo."""
    probe = "\n".join(
        [
            "import os",
            "assert os.getuid() == 65534, os.getuid()",
            "status = open('/proc/self/status').read()",
            "assert 'CapEff:\\t0000000000000000' in status, status",
            "assert 'NoNewPrivs:\\t1' in status, status",
            "ifaces = open('/proc/net/dev').read()",
            "assert 'eth0' not in ifaces, ifaces",
            "try:",
            "    open('/etc/harness-probe', 'w')",
            "    raise SystemExit('root filesystem is writable')",
            "except OSError:",
            "    pass",
        ]
    )
    canonical = humaneval.by_id[TASK].canonical_solution
    _, samples = grade_rows(
        humaneval,
        [{"task_id": TASK, "completion": canonical + "\n" + probe + "\n"}],
        tmp_path / "run",
        kind,
        workers=1,
    )
    assert samples[0]["status"] == "passed", samples[0]
