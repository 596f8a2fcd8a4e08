"""The agent container's disk limit against the real engine: a burst within one command, a writer
left in the background, and the engine failing in the middle of the halt (fault injection)."""

from __future__ import annotations

import time

import pytest

from harness.agent.container import DiskLimitExceeded, EnvironmentFailure, HardenedDocker, Limits
from harness.agent.instance import worktree_diff
from tests.integration import swebench_local
from tests.integration.hostile_agent import write_files

pytestmark = [pytest.mark.swebench, pytest.mark.docker]

LIMIT_MB = 64
LABEL = "org.harness.test-agent-disk"
# A writer started in the background: 4 MiB every 0.1 s until killed, so it passes the limit in ~1.6 s.
BACKGROUND = (
    "nohup setsid sh -c 'i=0; while :; do head -c 4194304 /dev/zero > /tmp/bg$i; i=$((i+1)); sleep 0.1; done' "
    ">/dev/null 2>&1 & echo started"
)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict:
    import docker

    client = docker.from_env(timeout=600)
    local = swebench_local.build(client, tmp_path_factory.mktemp("swe"))
    yield {"client": client, "image": local["image"], "base": local["instance"]["base_commit"]}
    for c in client.api.containers(all=True, filters={"label": LABEL}):
        client.api.remove_container(c["Id"], force=True)


@pytest.fixture
def env(image):
    e = HardenedDocker(
        client=image["client"],
        labels={LABEL: "1"},
        name=f"harness-test-disk-{time.time_ns()}",
        limits=Limits(memory_mb=256, pids_limit=128, cpus=1.0, disk_mb=LIMIT_MB),
        image=image["image"],
        cwd="/testbed",
        timeout=60,
    )
    yield e
    e.cleanup()


def processes(env: HardenedDocker) -> list[str]:
    out, code = env.run_plain(["ps", "-eo", "args="])
    assert code == 0, out
    return [line.strip() for line in out.splitlines()]


def refuse(*args, **kwargs):
    import docker.errors

    raise docker.errors.APIError("refused by the test")


def burst(env: HardenedDocker) -> DiskLimitExceeded:
    with pytest.raises(DiskLimitExceeded) as info:
        env.execute({"command": write_files("/tmp", 3072, 64)})  # 192 MiB of 64 KiB files
    return info.value


def test_a_burst_is_stopped_near_the_limit_and_the_container_answers_after(env, image):
    env.execute({"command": "echo changed >> README.md"})
    bg = env.execute({"command": BACKGROUND})
    assert bg["output"].strip() == "started", bg
    assert any("bg$i" in p for p in processes(env))
    error = burst(env)
    print(error)
    assert LIMIT_MB <= int(str(error).split("grew to ")[1].split()[0]) < LIMIT_MB + LIMIT_MB // 4
    # started again with the files as they were, and nothing of the model's left running
    assert not [p for p in processes(env) if "bg$i" in p or "python3" in p]
    assert "+changed" in worktree_diff(env, image["base"])


def test_a_background_writer_past_the_limit_is_stopped_when_the_next_command_ends(env, image, monkeypatch):
    env.execute({"command": BACKGROUND})
    time.sleep(2.5)  # the model's turn: the writer passes the limit meanwhile
    # The next command ends before its first measurement (as `true` may): the one after it finds it.
    real_exec = env._exec
    monkeypatch.setattr(env, "_exec", lambda *args, watch=False, **kwargs: real_exec(*args, **kwargs))
    with pytest.raises(DiskLimitExceeded):
        env.execute({"command": "true"})
    assert not [p for p in processes(env) if "bg$i" in p]
    size = env._size()
    time.sleep(0.5)
    assert env._size() == size  # nothing writes any more
    assert not worktree_diff(env, image["base"]).startswith("[harness")  # and it answers the harness's git


def test_the_engine_forgetting_the_killed_command_is_still_the_disk_limit(env, monkeypatch):
    """With its init killed first, the engine may drop the exec's record (containerd#9719): 404."""
    import docker.errors

    api, halted = env.client.api, []
    real_kill = api.kill

    def kill(cid, *a, **kw):
        halted.append(cid)
        return real_kill(cid, *a, **kw)

    def inspect(exec_id):
        raise docker.errors.NotFound(f"No such exec instance: {exec_id}")

    real_inspect = api.exec_inspect
    monkeypatch.setattr(api, "kill", kill)
    monkeypatch.setattr(api, "exec_inspect", lambda i: inspect(i) if halted else real_inspect(i))
    assert "disk limit" in str(burst(env))
    assert halted


def test_a_container_that_does_not_start_again_is_still_the_disk_limit(env, image, monkeypatch):
    monkeypatch.setattr(env.client.api, "start", refuse)
    burst(env)
    with pytest.raises(EnvironmentFailure, match="is not running"):  # the instance records it beside the outcome
        worktree_diff(env, image["base"])


def test_an_engine_that_cannot_stop_the_container_is_an_environment_failure(env, monkeypatch):
    """Not the model's outcome: the limit could not be enforced."""
    for name in ("pause", "kill", "unpause"):
        monkeypatch.setattr(env.client.api, name, refuse)
    with pytest.raises(EnvironmentFailure, match="was not stopped"):
        env.execute({"command": write_files("/tmp", 3072, 64)})
