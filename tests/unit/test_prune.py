"""Container ownership without Docker: names, labels, whether a pid is its owner, and prune's verdicts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from harness.sandbox.prune import (
    BOOT_ID,
    HOST,
    PID,
    RUN,
    RUN_DIR,
    START,
    VERSION,
    Owner,
    container_name,
    judge,
    process_start,
)

pytestmark = pytest.mark.unit
DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # what dockerd accepts


def _dead_owner(run: str = "dead-run") -> Owner:
    """The owner identity of a real process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    start = process_start(child.pid)
    assert start, "a live child has a start time"
    child.communicate()
    return _with(child.pid, start, run)


def _with(pid: int, start: str, run: str) -> Owner:
    me = Owner.current()
    return Owner(me.host, me.boot_id, pid, start, run, f"/runs/{run}")


@pytest.fixture
def live_child() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield child
    child.communicate()


def test_names_are_readable_and_valid_for_docker() -> None:
    assert container_name("humaneval-smollm2", 4242, 3) == "harness-humaneval-smollm2-4242-w3"
    assert container_name("live run#1/é", 17, 1) == "harness-live-run-1-17-w1"
    assert container_name("", 17, 2) == "harness-17-w2"
    assert container_name("...__--", 17, 2) == "harness-17-w2"
    long = container_name("x" * 300, 99999, 12)
    assert long == f"harness-{'x' * 40}-99999-w12"
    for run in ("a b", "-lead", "ünïcødé", ".hidden", "run.2026-11-26_10:00", "/abs/path/"):
        name = container_name(run, 1, 1)
        assert DOCKER_NAME.match(name), name
        assert name.startswith("harness-") and name.endswith("-1-w1"), name


def test_process_start_is_this_process_start_time() -> None:
    start = process_start(os.getpid())
    assert start and start.isdigit()
    # starttime is in clock ticks after boot; psutil reads the same field and adds the boot time.
    ticks = os.sysconf("SC_CLK_TCK")
    assert abs(psutil.boot_time() + int(start) / ticks - psutil.Process().create_time()) < 1.0


def test_process_start_is_none_for_an_exited_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start(child.pid) is None


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.01)
        assert process_start(child.pid) is None  # exited, not yet reaped: its pid is not reusable yet
    finally:
        child.wait()


def test_labels_round_trip_and_name_the_process_run_and_version(tmp_path) -> None:
    me = Owner.current(tmp_path / "my run")
    labels = me.labels()
    assert labels[PID] == str(os.getpid()) and labels[START] == process_start(os.getpid())
    assert labels[RUN] == "my run" and labels[RUN_DIR] == str(tmp_path / "my run")
    assert labels[HOST] and labels[BOOT_ID] and labels[VERSION]
    assert Owner.from_labels(labels) == me


@pytest.mark.parametrize(
    "labels",
    [None, {}, {"org.harness.sandbox": "123-456"}, {PID: "x", HOST: "h"}, {PID: "0", HOST: "h"}, {PID: "12"}],
)
def test_unreadable_owner_labels_name_no_owner(labels) -> None:
    assert Owner.from_labels(labels) is None


def test_a_live_owner_is_kept(live_child) -> None:
    start = process_start(live_child.pid)
    assert start
    v = judge(_with(live_child.pid, start, "other").labels(), True, Owner.current())
    assert not v.remove and not v.gone and "owner alive" in v.why and f"pid {live_child.pid}" in v.why


def test_a_dead_owner_is_removed_running_or_not() -> None:
    dead = _dead_owner()
    for busy in (True, False):
        v = judge(dead.labels(), busy, Owner.current())
        assert v.remove and v.gone and "owner gone" in v.why and "run dead-run" in v.why


def test_a_reused_pid_does_not_look_alive(live_child) -> None:
    start = process_start(live_child.pid)
    assert start
    impostor = _with(live_child.pid, str(int(start) - 1), "old")  # same pid, an earlier process
    v = judge(impostor.labels(), True, Owner.current())
    assert v.remove and v.gone


def test_another_hosts_container_is_left_alone() -> None:
    dead = _dead_owner()
    other = Owner("elsewhere.invalid", "boot", dead.pid, dead.start, "remote", "/r")
    v = judge(other.labels(), False, Owner.current())
    assert not v.remove and not v.gone and "another host" in v.why


def test_a_container_made_in_another_pid_namespace_is_left_alone() -> None:
    dead = _dead_owner()  # gone here; but a pid of another namespace says nothing about this one's processes
    assert judge(dead.labels(), False, Owner.current()).gone
    other = Owner(dead.host, dead.boot_id, dead.pid, dead.start, dead.run, dead.run_dir, "pid:[4026530000]")
    v = judge(other.labels(), False, Owner.current())
    assert not v.remove and not v.gone and "another pid namespace" in v.why


def test_an_owner_from_an_earlier_boot_is_gone() -> None:
    me = Owner.current()
    old = Owner(me.host, "0" * 8, os.getpid(), me.start, "before-reboot")  # even with our own pid
    v = judge(old.labels(), True, me)
    assert v.remove and v.gone and "rebooted" in v.why


def test_own_containers_are_mine_not_gone(tmp_path) -> None:
    me = Owner.current(tmp_path)
    v = judge(me.labels(), True, me)
    assert not v.remove and v.mine and not v.gone


def test_unlabelled_containers_go_only_when_stopped() -> None:
    legacy = {"org.harness.sandbox": "123-456"}
    running, stopped = judge(legacy, True, Owner.current()), judge(legacy, False, Owner.current())
    assert not running.remove and not running.gone
    assert stopped.remove and not stopped.gone  # prune removes it; the automatic sweeps never do


class _StuckEngine:
    """Fault injection: a docker client whose engine fails to remove one container (500 device busy)."""

    def __init__(self, containers: list[dict]) -> None:
        self.containers_json, self.removed = containers, []
        self.api = self

    def containers(self, all: bool = True, filters: dict | None = None) -> list[dict]:
        return self.containers_json

    def remove_container(self, cid: str, force: bool = False) -> None:
        import docker.errors

        if cid == "stuck":
            raise docker.errors.APIError("500", explanation="device or resource busy")
        self.removed.append(cid)


def test_one_stuck_container_does_not_stop_prune_and_fails_it(capsys, monkeypatch) -> None:
    from harness.sandbox import prune as prune_mod

    labels = _dead_owner().labels()
    engine = _StuckEngine(
        [{"Id": i, "Names": [f"/harness-{i}"], "State": "exited", "Labels": labels} for i in ("stuck", "fine")]
    )
    monkeypatch.setattr(prune_mod, "harness_containers", lambda client: client.containers_json)
    report = prune_mod.prune(client=engine)
    assert engine.removed == ["fine"] and [e.name for e in report.failed] == ["harness-stuck"]
    monkeypatch.setattr(prune_mod, "prune", lambda force_all: report)
    assert prune_mod.main() == 1 and "device or resource busy" in capsys.readouterr().out
