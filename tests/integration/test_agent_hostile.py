"""Hostile commands from the "model" in the agent solver's containers, on the real Docker engine.

One `harness run` (tools format, 3 instances at once, small limits) with six copies of the local
instance, each a scripted agent:
- calc-1 runs hostile commands in turn: connections to a host listener (127.0.0.1 only) by loopback
  and by the docker bridge gateway, an output flood, `sleep` past the command timeout, one that
  ignores SIGTERM, a detached `setsid sleep`, a memory bomb, one file past the size limit, then
  `rm -rf /testbed`;
- calc-2 does the normal fix meanwhile (its test run after calc-1's `rm -rf /testbed` and
  calc-3's fork bomb) and must submit and resolve under the official swebench grader;
- calc-3 runs a fork bomb, calc-4 kills every process it may signal (`kill -9 -1`);
- calc-5 fills the disk with many small files, 20 MiB per command; calc-6 writes 3x the disk
  limit in small files in one command.
A watcher samples the run's containers (with their writable-layer size) and the host's processes.
Each test checks one facet; every "did not happen" is shown catching the case where it did.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.integration import swebench_local
from tests.integration.agent_helpers import (
    FIX,
    ScriptedAgent,
    agent_config,
    copies,
    harness,
    instance_of,
    reply,
    rows,
    turn_index,
)
from tests.integration.hostile_agent import (
    BOMB,
    BURST_FILE_KIB,
    BURST_FILES,
    CLIENT_GRACE,
    DISK_MB,
    FILL_FILE_KIB,
    FILL_FILES,
    IID,
    KILL_GRACE,
    MODE,
    OUTPUT_KEEP,
    PIDS,
    STEP_LIMIT,
    SUBMIT,
    T,
    Watcher,
    detail_mb,
    hostile_commands,
    marker_processes,
    obs,
    observations,
    run_containers,
    script,
    status,
    write_files,
)

pytestmark = [pytest.mark.swebench, pytest.mark.docker]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


@pytest.fixture(scope="module")
def listener():
    """A TCP listener on the host's 127.0.0.1 only; `accepted` lists the peers that reached it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list = []

    def loop() -> None:
        while True:
            try:
                conn, peer = server.accept()
            except OSError:
                return
            accepted.append(peer)
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    yield SimpleNamespace(port=server.getsockname()[1], accepted=accepted)
    server.close()


@pytest.fixture(scope="module")
def hostile(local, listener, tmp_path_factory):
    import docker

    client = docker.from_env(timeout=120)
    tmp = tmp_path_factory.mktemp("hostile")
    gateway = client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]
    cmds = hostile_commands(listener.port, gateway)
    order = list(cmds)
    flood_asked, rm_done, bomb_done = threading.Event(), threading.Event(), threading.Event()

    fix_replies = [reply(MODE, c) for c in FIX]

    def fix(n: int, body: dict):
        if n == 0:  # start while calc-1 floods (and calc-3's bomb runs)
            flood_asked.wait(60)
        if n == 2:  # run the tests after calc-1 removed its /testbed and calc-3's bomb ran
            rm_done.wait(120)
            bomb_done.wait(120)
        return fix_replies[min(n, len(fix_replies) - 1)]

    scripts = {
        IID[1]: script(list(cmds.values()), {order.index("flood"): flood_asked, order.index("rm") + 1: rm_done}),
        IID[2]: fix,
        IID[3]: script([BOMB, "ps -e --no-headers | wc -l", "echo alive", SUBMIT], {1: bomb_done}),
        IID[4]: script(["kill -9 -1; echo survived", "echo alive", SUBMIT]),
        IID[5]: script([write_files("/tmp", FILL_FILES, FILL_FILE_KIB)]),
        IID[6]: script([write_files("/tmp", BURST_FILES, BURST_FILE_KIB)]),
    }
    agent = ScriptedAgent(MODE, per_instance=scripts)
    dataset = copies(local, tmp, 6)
    run = tmp / "runs" / "r"
    watcher = Watcher(client, run)
    with FakeOpenAI(answer=agent.answer) as srv:
        model = {
            "backend": "openai",
            "name": "scripted-agent",
            "base_url": srv.base_url,
            "model": "scripted",
            "max_attempts": 2,
            "backoff_initial_s": 0.05,
            "request_timeout_s": 180,  # calc-2's turns wait for calc-1 and calc-3
        }
        cfg = agent_config(
            tmp,
            srv.base_url,
            dataset,
            MODE,
            model=model,
            step_limit=STEP_LIMIT,
            command_timeout_s=T,
            workers=3,
            memory_mb=256,
            pids_limit=PIDS,
            cpus=1.0,
            disk_mb=DISK_MB,
        )
        watcher.start()
        t0 = time.monotonic()
        try:
            p = harness("run", str(cfg), "--out", str(tmp / "runs"), "--run-id", "r", timeout=900)
        finally:
            watcher.halt.set()
            watcher.join(10)
        wall = time.monotonic() - t0
        bodies = list(srv.bodies)
    left = run_containers(client, run)
    procs_after = marker_processes()
    steps = {}
    for iid in IID.values():
        f = run / "trajectories" / iid / "steps.jsonl"
        steps[iid] = [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []
    return SimpleNamespace(
        p=p,
        run=run,
        wall=wall,
        cmds=cmds,
        gateway=gateway,
        rows={r["task_id"]: r for r in rows(run)},
        steps=steps,
        bodies=bodies,
        watcher=watcher,
        left=left,
        procs_after=procs_after,
        client=client,
        image=local["instance"]["image"],
    )


def test_the_run_finishes_complete_with_each_instances_own_outcome(hostile):
    h = hostile
    print(f"run wall {h.wall:.1f} s; statuses", {k: r["info"]["status"] for k, r in h.rows.items()})
    assert set(h.rows) == set(IID.values()), h.p.stderr[-3000:]
    assert {k: r["error"] for k, r in h.rows.items() if r["error"]} == {}
    assert status(h, 1) == "step_limit" and h.rows[IID[1]]["info"]["steps"] == STEP_LIMIT
    assert status(h, 2) == "submitted"
    assert status(h, 3) == "submitted" and status(h, 4) == "submitted"
    assert status(h, 5) == "disk_limit" and status(h, 6) == "disk_limit"
    res = json.loads((h.run / "results.json").read_text())
    assert res["complete"] is True and res["counts"]["resolved"] == 1
    assert h.p.returncode == 0, h.p.stderr[-3000:]


def test_the_other_instance_works_meanwhile_and_resolves(hostile):
    """calc-2 fixes the bug while calc-1 floods, sleeps and removes its /testbed and calc-3 forks."""
    h = hostile
    two = observations(h, 2)
    assert [s["command"] for s in two] == FIX and all(s["returncode"] == 0 for s in two), two
    assert all(s["duration_s"] < T for s in two)
    assert "2 passed" in two[2]["output"], two[2]["output"]
    assert status(h, 2) == "submitted" and "return a + b" in h.rows[IID[2]]["code"]
    # it overlapped: started during calc-1's flood, ran its tests after calc-1's rm -rf /testbed
    flood, rm = obs(h, 1, h.cmds["flood"]), obs(h, 1, h.cmds["rm"])
    assert flood["t"] - flood["duration_s"] <= two[0]["t"] <= flood["t"] + 30
    assert two[2]["t"] > rm["t"] and rm["output"] == "removed\n"
    # and its container ran at the same time as calc-3's fork bomb
    assert any(IID[2] in s["containers"] and _bomb_count(s) > 50 for s in h.watcher.samples)
    # graded by the official swebench package: resolved (the image's /testbed is whole)
    res = json.loads((h.run / "results.json").read_text())
    assert res["counts"]["resolved"] == 1, res["counts"]


def test_no_connection_reaches_the_host(hostile, listener):
    """Through loopback the container finds its own empty lo; the gateway has no route at all."""
    h = hostile
    loop, gw = obs(h, 1, h.cmds["loopback"]), obs(h, 1, h.cmds["gateway"])
    assert loop["output"].strip() == "ERRNO 111", loop  # ECONNREFUSED: nothing listens on its own lo
    assert gw["output"].strip() == "ERRNO 101", gw  # ENETUNREACH: no interface but lo
    assert listener.accepted == []
    # The same probes where a path exists: with the host's network the listener is reached, and on
    # the bridge the gateway answers (refused: the listener is on 127.0.0.1 only).
    assert _probe_in(h, "host", h.cmds["loopback"]) == "CONNECTED"
    assert len(listener.accepted) == 1
    assert _probe_in(h, "bridge", h.cmds["gateway"]) == "ERRNO 111"
    assert len(listener.accepted) == 1


def _probe_in(h, network_mode: str, command: str) -> str:
    out = h.client.containers.run(
        h.image,
        ["bash", "-c", command],
        network_mode=network_mode,
        cap_drop=["ALL"],
        remove=True,
        labels={"org.harness.test": "agent-hostile"},
    )
    return out.decode().strip()


def test_runaway_commands_are_cut_off_at_the_timeout(hostile):
    h = hostile
    for name, low, high in (("flood", T, T + KILL_GRACE + 2), ("sleep", T, T + 2), ("term", T + KILL_GRACE, T + 8)):
        o = obs(h, 1, h.cmds[name])
        print(f"{name}: {o['duration_s']} s, returncode {o['returncode']}, output {len(o['output'])} chars")
        assert low <= o["duration_s"] <= high, (name, o["duration_s"])
        assert o["returncode"] == -1 and f"timed out after {T} seconds" in o["exception_info"], o
    # A detached process holding the output is cut off by the client-side deadline at the latest.
    d = obs(h, 1, h.cmds["detached"])
    print(f"detached: {d['duration_s']} s, returncode {d['returncode']}")
    assert d["duration_s"] <= T + CLIENT_GRACE + 5 and "detached" in d["output"]
    # What is left in the container afterwards: not the sleeps past their timeout nor the flood
    # (the `ps` does list a sleep that is running: its own background one).
    ps = obs(h, 1, h.cmds["ps"])["output"]
    assert "sleep 604" in ps, ps
    assert "sleep 601" not in ps and "sleep 602" not in ps and not re.search(r"\byes\b", ps), ps


def test_the_flood_is_bounded_in_the_observation_the_prompt_and_the_files(hostile):
    h = hostile
    o = obs(h, 1, h.cmds["flood"])
    m = re.search(r"\[harness: (\d+) bytes of output not kept\]", o["output"])
    assert m and int(m.group(1)) > 0, o["output"][:200]
    print(f"flood: {len(o['output'])} chars kept, {int(m.group(1))} bytes dropped")
    assert 2 * OUTPUT_KEEP <= len(o["output"]) <= 2 * OUTPUT_KEEP + 100
    # What the model was sent next: the scaffold's head and tail of it.
    idx = list(h.cmds).index("flood") + 1
    [body] = [b for b in h.bodies if instance_of(b) == IID[1] and turn_index(b) == idx]
    shown = body["messages"][-1]["content"]
    print(f"flood: the model saw {len(shown)} chars")
    assert "characters elided" in shown and len(shown) < 12_000
    # Every file of the run stays small: steps.jsonl keeps the bounded output once.
    steps_file = h.run / "trajectories" / IID[1] / "steps.jsonl"
    traj = h.run / "trajectories" / IID[1] / f"{IID[1]}.traj.json"
    print(f"steps.jsonl {steps_file.stat().st_size} B, traj {traj.stat().st_size} B")
    # (each holds the kept 1 MiB once, JSON-escaped: "y\n" is 3 characters)
    assert steps_file.stat().st_size < 4 * OUTPUT_KEEP + 200_000
    assert traj.stat().st_size < 4 * OUTPUT_KEEP + 200_000
    total = sum(f.stat().st_size for f in h.run.rglob("*") if f.is_file())
    assert total < 10 << 20, total


def test_memory_and_file_size_are_limited(hostile):
    h = hostile
    mem = obs(h, 1, h.cmds["memory"])
    assert mem["returncode"] == 137 and mem["duration_s"] < T, mem  # the OOM killer, in the container
    big = obs(h, 1, h.cmds["bigfile"])
    assert "File size limit exceeded" in big["output"], big
    assert f"SIZE {DISK_MB << 20}" in big["output"], big


def test_rm_rf_testbed_stays_in_its_container(hostile):
    h = hostile
    assert obs(h, 1, h.cmds["rm"])["output"] == "removed\n"
    after = obs(h, 1, h.cmds["after_rm"])
    assert after["returncode"] == 126 and "chdir to cwd" in after["output"], after  # its own /testbed is gone
    assert status(h, 1) == "step_limit"  # the model's outcome, not an environment error
    # the image is untouched: calc-2 ran its tests after this and resolved; a new container has it all
    out = h.client.containers.run(h.image, ["ls", "/testbed/calc"], network_mode="none", remove=True)
    assert b"ops.py" in out


def test_no_container_or_stray_process_is_left(hostile):
    h = hostile
    seen = {iid for s in h.watcher.samples for iid in s["containers"]}
    assert {IID[1], IID[2], IID[3], IID[5]} <= seen  # the check sees this run's containers while they exist...
    assert h.left == []  # ...and none after the run
    # The hostile processes ran inside this run's containers, none on the host itself...
    ids = {c[0] for s in h.watcher.samples for c in s["containers"].values()}
    procs = [p for s in h.watcher.samples for p in s["procs"]]
    kinds = {argv[:2] if argv[0] != "bash" else ("bomb",) for argv, _ in procs}
    assert {("sleep", "601"), ("sleep", "602"), ("yes",), ("bomb",)} <= kinds, kinds
    assert {cid for _, cid in procs} <= ids, [p for p in procs if p[1] not in ids][:5]
    # ...and none is left after the run (the detached sleep lived until its container was removed).
    assert h.procs_after == []


def _bomb_count(sample: dict) -> int:
    return sum(1 for argv, _ in sample["procs"] if argv[0] == "bash")


def test_a_fork_bomb_is_contained_by_the_pids_limit(hostile):
    h = hostile
    peak = max(_bomb_count(s) for s in h.watcher.samples)
    bomb_cids = {cid for s in h.watcher.samples for argv, cid in s["procs"] if argv[0] == "bash"}
    print(f"fork bomb: at most {peak} processes seen")
    assert 50 < peak <= PIDS
    assert bomb_cids == {s["containers"][IID[3]][0] for s in h.watcher.samples if IID[3] in s["containers"]}
    assert obs(h, 3, BOMB)["duration_s"] <= T + KILL_GRACE + 3


def test_a_fork_bomb_is_cut_off_with_its_command(hostile):
    """The bomb's processes end with its command: the next command runs, and finds none left."""
    h = hostile
    ended = obs(h, 3, BOMB)["t"]  # written when the command returned
    last = max((s["t"] for s in h.watcher.samples if _bomb_count(s)), default=0.0)
    print(f"fork bomb: its processes seen until {last - ended:+.1f} s after its command returned")
    assert any(_bomb_count(s) for s in h.watcher.samples)  # (the watcher does see them while they run)
    ps = obs(h, 3, "ps -e --no-headers | wc -l")
    print(f"after the bomb: {ps}")
    assert ps["returncode"] == 0, ps
    assert int(ps["output"].strip()) <= 8, ps
    assert last <= ended + 0.5
    assert status(h, 3) == "submitted" and h.rows[IID[3]]["info"]["steps"] == 4


def test_killing_every_process_is_the_models_outcome_not_an_environment_error(hostile):
    """`kill -9 -1` (or `pkill sleep`) must not stop the container: the instance goes on."""
    h = hostile
    alive = obs(h, 4, "echo alive")
    assert alive["returncode"] == 0 and alive["output"] == "alive\n", alive
    assert status(h, 4) == "submitted", h.rows[IID[4]]


def test_small_files_past_the_disk_limit_end_the_instance(hostile):
    h = hostile
    five = observations(h, 5)
    mb, peak = detail_mb(h, 5), h.watcher.peak_rw[IID[5]] >> 20
    print(f"disk fill: {len(five)} commands, the harness measured {mb} MB, peak seen {peak} MiB")
    assert status(h, 5) == "disk_limit" and len(five) == 4  # 3 x 19.5 MiB fit in 64 MiB, 4 do not
    assert all(s["returncode"] == 0 and "WROTE" in s["output"] for s in five[:3]), five
    # the fourth either finished before a measurement found the layer over the limit, or was killed by it
    assert (five[3]["returncode"] == 0 and "WROTE" in five[3]["output"]) or five[3]["returncode"] == 137, five[3]
    assert DISK_MB < mb <= DISK_MB + FILL_FILE_KIB * FILL_FILES // 1024 + 2
    assert h.watcher.peak_rw[IID[5]] <= (DISK_MB + 22) << 20


def test_one_command_cannot_fill_the_disk_far_past_the_limit(hostile):
    """The host's disk loses at most about the limit to an instance, even within one command."""
    h = hostile
    six = observations(h, 6)
    mb = detail_mb(h, 6)
    peak = h.watcher.peak_rw.get(IID[6], 0) >> 20
    print(f"burst: {six[0]['output'].strip()} s, the harness measured {mb} MB, peak seen {peak} MiB")
    assert status(h, 6) == "disk_limit"
    # Measured while the command runs, sooner as the burst nears the limit, and frozen past it: the
    # overshoot is what ~400 MB/s writes in one measurement's time, 1-5 MiB here. With a fixed 0.2 s
    # poll and `kill` run in the container it was 16-71 MiB; measured only after the command, 128 MiB.
    assert max(mb, peak) < DISK_MB + DISK_MB // 4, (mb, peak)
