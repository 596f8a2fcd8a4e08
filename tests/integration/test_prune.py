"""`harness sandbox prune` and the sweeps of a starting run, against the real Docker engine.

A live pool (owned by this test process) must survive every one of them and keep grading; containers
whose owner is a process that really ran and exited must go; those of another host, of a live other
process, and unlabelled ones (an older harness's, a hand-run SWE-bench grader's) are left alone.
Only the harness.sandbox.docker import is at the top, so that the CLI test also runs on code that
predates harness.sandbox.prune (and fails there: the old prune removed the live pool).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness.records import ExecJob, Status
from harness.sandbox.docker import LABEL, DockerSandbox, docker_client

pytestmark = pytest.mark.docker
PARK = ["python3", "-c", "import time; time.sleep(600)"]  # a container that stays up doing nothing


def _child() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def _owner(pid: int, start: str, run: str, host: str | None = None):
    from harness.sandbox.prune import Owner

    me = Owner.current()
    return Owner(host or me.host, me.boot_id, pid, start, run, f"/runs/{run}")


@pytest.fixture
def dead_owner():
    """The identity of a real process that ran and exited: its real pid and start time."""
    from harness.sandbox.prune import process_start

    child = _child()
    start = process_start(child.pid)
    child.communicate()
    return _owner(child.pid, start, "dead-run")


@pytest.fixture
def live_other_owner():
    """The identity of another live process on this host (not the one running the checks)."""
    from harness.sandbox.prune import process_start

    child = _child()
    yield _owner(child.pid, process_start(child.pid), "other-live-run")
    child.communicate()


class Parked:
    """Containers this test makes by hand, removed at the end whatever happened."""

    def __init__(self) -> None:
        self.client = docker_client()
        self.ids: list[str] = []

    def make(self, name: str, labels: dict, start: bool = True) -> str:
        from harness.sandbox.image import image_tag

        cid = self.client.api.create_container(image_tag(), PARK, name=name, labels=labels, network_disabled=True)["Id"]
        self.ids.append(cid)
        if start:
            self.client.api.start(cid)
        return cid

    def state(self, cid: str) -> str:
        """The container's state, or "gone"."""
        import docker.errors

        try:
            return self.client.api.inspect_container(cid)["State"]["Status"]
        except docker.errors.NotFound:
            return "gone"

    def remove_all(self) -> None:
        for cid in self.ids:
            try:
                self.client.api.remove_container(cid, force=True)
            except Exception:
                pass


@pytest.fixture
def parked() -> Iterator[Parked]:
    p = Parked()
    yield p
    p.remove_all()


@pytest.fixture
def live_pool(tmp_path) -> Iterator[tuple[DockerSandbox, list]]:
    """Two running instances of a real pool owned by this process, for the run `live run#1`."""
    sb = DockerSandbox(2)
    sb.owner = str(tmp_path / "live run#1")
    sb.check()
    instances = [sb.start_instance() for _ in range(2)]
    yield sb, instances
    for inst in instances:
        inst.close()
    sb.cleanup()


def _tag() -> str:
    return secrets.token_hex(3)


def _assert_pool_alive_and_usable(parked: Parked, instances: list) -> None:
    for inst in instances:
        assert parked.state(inst.container_id) == "running"
        job = ExecJob("t", 0, "assert 6 * 7 == 42\n", "sha", 10.0)
        assert inst.execute(job).status is Status.PASSED


def _prune_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "sandbox", "prune", *args], capture_output=True, text=True)


def test_pool_containers_have_readable_names_and_owner_labels(live_pool, parked) -> None:
    from harness.sandbox.prune import PID, RUN, RUN_DIR, START, VERSION, process_start

    sb, instances = live_pool
    for inst in instances:
        attrs = parked.client.api.inspect_container(inst.container_id)
        assert re.fullmatch(rf"/harness-live-run-1-{os.getpid()}-w\d+", attrs["Name"]), attrs["Name"]
        labels = attrs["Config"]["Labels"]
        assert labels[PID] == str(os.getpid()) and labels[START] == process_start(os.getpid())
        assert labels[RUN] == "live run#1" and labels[RUN_DIR] == sb.owner and labels[VERSION]
    names = {parked.client.api.inspect_container(i.container_id)["Name"] for i in instances}
    assert len(names) == 2


def test_prune_removes_dead_owners_containers_and_keeps_the_live_pool(live_pool, parked, dead_owner) -> None:
    from harness.sandbox.prune import container_name

    _, instances = live_pool
    tag = _tag()
    pool_labels = {LABEL: f"{dead_owner.pid}-{tag}", **dead_owner.labels()}
    dead_running = parked.make(container_name("dead-run", dead_owner.pid, 1) + f"-{tag}", pool_labels)
    dead_created = parked.make(container_name("dead-run", dead_owner.pid, 2) + f"-{tag}", pool_labels, start=False)
    # Owner labels only (no pool label): no starting pool's sweep touches it, so only this prune can remove it.
    dead_other_name = f"harness-prune-test-dead-{tag}"
    dead_other = parked.make(dead_other_name, dead_owner.labels())
    remote_owner = _owner(dead_owner.pid, dead_owner.start, "remote-run", host="elsewhere.invalid")
    remote = parked.make(f"harness-prune-test-remote-{tag}", {LABEL: "1-1", **remote_owner.labels()})
    legacy_running = parked.make(f"harness-prune-test-legacy-up-{tag}", {LABEL: f"1-{tag}"})
    legacy_stopped = parked.make(f"harness-prune-test-legacy-down-{tag}", {LABEL: f"1-{tag}"}, start=False)

    # Another process, as `harness sandbox prune` would be.
    cmd = "import sys; from harness.sandbox.prune import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

    _assert_pool_alive_and_usable(parked, instances)
    for cid in (dead_running, dead_created, dead_other, legacy_stopped):
        assert parked.state(cid) == "gone", proc.stdout
    assert parked.state(remote) == "running" and parked.state(legacy_running) == "running"
    out = proc.stdout
    assert re.search(
        rf"^removed +{dead_other_name} \(running\): run dead-run, pid {dead_owner.pid} .*owner gone$", out, re.M
    )
    for inst in instances:
        name = parked.client.api.inspect_container(inst.container_id)["Name"].lstrip("/")
        assert re.search(rf"^kept +{name} \(running\): run live run#1, pid {os.getpid()} .*owner alive$", out, re.M)
    assert re.search(rf"^kept +harness-prune-test-remote-{tag} .*another host", out, re.M)
    assert re.search(rf"^kept +harness-prune-test-legacy-up-{tag} .*no owner labels", out, re.M)


def test_cli_prune_keeps_a_live_pool(live_pool, parked) -> None:
    _, instances = live_pool
    # An old `harness sandbox prune` (no --all) removes every harness container on the engine, other
    # people's live runs included: recognise it and fail before running it.
    usage = _prune_cli("--help")
    assert "--all" in usage.stdout, "harness sandbox prune is the old one, which removes live runs' containers"
    proc = _prune_cli()
    assert proc.returncode == 0, proc.stderr
    _assert_pool_alive_and_usable(parked, instances)
    assert "owner alive" in proc.stdout


class _OneRunApi:
    """The engine's API seen through a filter on one run directory, so that --all here cannot touch
    anyone else's containers on this engine (a test must not end other people's runs)."""

    def __init__(self, api, run_dir: str) -> None:
        from harness.sandbox.prune import RUN_DIR

        self._api, self._only = api, f"{RUN_DIR}={run_dir}"

    def containers(self, all: bool, filters: dict) -> list[dict]:
        label = [x for x in (filters.get("label"), self._only) if x]  # docker ANDs the labels of a list
        return self._api.containers(all=all, filters={**filters, "label": label})

    def __getattr__(self, name: str):
        return getattr(self._api, name)


class _OneRunClient:
    def __init__(self, client, run_dir: str) -> None:
        self.api = _OneRunApi(client.api, run_dir)


def test_prune_all_removes_even_a_live_pool(live_pool, parked) -> None:
    from harness.sandbox.prune import prune

    sb, instances = live_pool
    report = prune(force_all=True, client=_OneRunClient(parked.client, sb.owner))
    assert all(parked.state(i.container_id) == "gone" for i in instances)
    assert len(report.removed) == 2 and all(e.why.startswith("--all (run live run#1") for e in report.removed)


def test_a_starting_pool_sweeps_gone_owners_only(tmp_path, parked, dead_owner, live_other_owner) -> None:
    tag = _tag()
    dead = parked.make(f"harness-prune-test-dead-{tag}", {LABEL: f"{dead_owner.pid}-{tag}", **dead_owner.labels()})
    live_labels = {LABEL: f"{live_other_owner.pid}-{tag}", **live_other_owner.labels()}
    live = parked.make(f"harness-prune-test-live-{tag}", live_labels)
    sb = DockerSandbox(1)
    sb.owner = str(tmp_path / "new-run")
    sb.check()
    inst = sb.start_instance()
    try:
        assert parked.state(dead) == "gone"
        assert parked.state(live) == "running"
        _assert_pool_alive_and_usable(parked, [inst])
    finally:
        inst.close()
        sb.cleanup()


def test_swebench_grader_containers_are_labelled_and_only_dead_ones_swept(
    tmp_path, parked, dead_owner, live_other_owner
) -> None:
    import docker.errors

    from harness.sandbox.image import image_tag
    from harness.sandbox.prune import PID, RUN_DIR, LabellingClient, Owner
    from harness.scoring.swebench import _sweep

    run_dir = tmp_path / "swe-run"
    client = LabellingClient(parked.client, Owner.current(run_dir).labels())
    tag = _tag()
    # As the grader creates them: through the client the scorer hands it.
    mine = client.containers.create(image=image_tag(), name=f"sweb.eval.prune-test-{tag}.mine", command=PARK)
    parked.ids.append(mine.id)
    mine.reload()
    assert mine.labels[PID] == str(os.getpid()) and mine.labels[RUN_DIR] == str(run_dir)
    live_name = f"sweb.eval.prune-test-{tag}.live"
    live = parked.make(live_name, live_other_owner.labels())
    dead = parked.make(f"sweb.eval.prune-test-{tag}.dead", dead_owner.labels())
    unlabelled_name = f"sweb.eval.prune-test-{tag}.unlabelled"
    unlabelled = parked.make(unlabelled_name, {})
    # The grader force-removes whatever it finds under the name it wants: a live run's is hidden from it.
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(live_name)
    assert client.containers.get(dead).id == dead

    _sweep(client, run_dir)
    assert parked.state(mine.id) == "gone" and parked.state(dead) == "gone"
    assert parked.state(live) == "running" and parked.state(unlabelled) == "running"

    cmd = "import sys; from harness.sandbox.prune import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert parked.state(live) == "running" and parked.state(unlabelled) == "running"
    assert re.search(rf"^kept +{re.escape(live_name)} .*owner alive$", proc.stdout, re.M)
    assert re.search(rf"^left alone +{re.escape(unlabelled_name)} .*no owner labels", proc.stdout, re.M)
