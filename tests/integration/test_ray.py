"""The ray executor on a real two-node Ray cluster started here (loopback only), both nodes using this
machine's Docker engine: SWE-bench grading spread over the nodes with the same verdicts as the local
executor, a node stopped mid-run, an agent run, and the missing-extra and missing-cluster errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.integration import ray_cluster, swebench_local
from tests.integration.agent_helpers import ScriptedAgent, agent_config, agent_containers, copies, harness, rows

pytestmark = [pytest.mark.ray, pytest.mark.swebench, pytest.mark.docker]


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> dict:
    import docker

    return swebench_local.build(docker.from_env(timeout=600), tmp_path_factory.mktemp("swe"))


@pytest.fixture(scope="module")
def cluster():
    tmp = Path(tempfile.mkdtemp(prefix="hray", dir="/tmp"))  # short: Ray's socket paths live under it
    c = ray_cluster.start(tmp)
    yield c
    c.kill()
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


def _preds(local: dict, dataset: Path, patches: list[str], out: Path) -> Path:
    ids = [json.loads(line)["instance_id"] for line in dataset.read_text().splitlines()]
    out.write_text(
        "".join(
            json.dumps({"instance_id": i, "model_name_or_path": "m", "model_patch": local["patches"][p]}) + "\n"
            for i, p in zip(ids, patches, strict=True)
        )
    )
    return out


def _samples(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines() if x.strip()]


def _evaluate(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return harness("evaluate", "swebench", *args, timeout=timeout, **kw)


def test_grading_on_two_nodes_gives_the_local_verdicts(local, cluster, tmp_path):
    dataset = copies(local, tmp_path, 5)  # four containers for the cluster's four slots: both nodes are needed
    preds = _preds(local, dataset, ["gold", "wrong", "gold", "gold", "empty"], tmp_path / "preds.jsonl")
    common = [str(preds), "--dataset-path", str(dataset)]
    p_local = _evaluate(*common, "--out", str(tmp_path / "local"))
    p_ray = _evaluate(*common, "--out", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", cluster.address)
    assert p_local.returncode == 0, p_local.stderr
    assert p_ray.returncode == 0, p_ray.stderr
    loc, ray = _samples(tmp_path / "local"), _samples(tmp_path / "ray")
    verdicts = {r["task_id"]: r["status"] for r in loc}
    assert verdicts == {
        "harness__calc-1": "resolved",
        "harness__calc-2": "unresolved",
        "harness__calc-3": "resolved",
        "harness__calc-4": "resolved",
        "harness__calc-5": "empty_patch",
    }
    assert {r["task_id"]: r["status"] for r in ray} == verdicts
    assert sorted(r["task_id"] for r in ray) == sorted(verdicts)  # each instance exactly once
    # Both nodes graded: the node each verdict names is one of the cluster's, and both appear.
    graded = [r for r in ray if r["status"] != "empty_patch"]
    assert {r["node"]["node_id"] for r in graded} == set(cluster.nodes.values())
    assert {r["node"]["ip"] for r in graded} == {ray_cluster.HEAD_IP, ray_cluster.NODE_B_IP}
    assert [r["node"] for r in ray if r["status"] == "empty_patch"] == [None]  # decided by the driver
    # The logs came back with the verdicts, into the driver's run directory.
    for r in ray:
        if r["status"] != "empty_patch":
            log_dir = Path(r["log_dir"])
            assert log_dir.is_relative_to(tmp_path / "ray") and (log_dir / "test_output.txt").is_file()
    res = json.loads((tmp_path / "ray" / "results.json").read_text())
    ex = res["provenance"]["grading_sessions"][-1]["grader"]["executor"]
    assert ex["name"] == "ray" and sum(ex["instances_by_node"].values()) == 4 and ex["failed_attempts"] == 0
    assert res["metrics"] == json.loads((tmp_path / "local" / "results.json").read_text())["metrics"]


def _grading_containers(client, run_dir: Path) -> list[str]:
    label = f"org.harness.owner.run_dir={os.path.abspath(run_dir)}"
    # The low-level list: the high-level one inspects each container and fails on one removed meanwhile.
    return [x["Names"][0].lstrip("/") for x in client.api.containers(all=True, filters={"label": label})]


def ray_cluster_repo() -> Path:
    return Path(__file__).resolve().parents[2]


def test_agent_run_through_ray(local, cluster, tmp_path):
    import docker

    dataset = copies(local, tmp_path, 2)
    agent = ScriptedAgent("tools")
    key = "sk-ray-test-0123456789"
    with FakeOpenAI(answer=agent.answer) as srv:
        model = {
            "backend": "openai", "name": "scripted-agent", "base_url": srv.base_url, "model": "scripted",
            "max_attempts": 3, "backoff_initial_s": 0.05, "request_timeout_s": 20, "api_key_env": "RAY_TEST_KEY",
        }  # fmt: skip
        cfg = agent_config(tmp_path, srv.base_url, dataset, "tools", model=model, workers=2)
        env = {**os.environ, "RAY_TEST_KEY": key}
        p = harness(
            "run", str(cfg), "--out", str(tmp_path / "runs"), "--run-id", "r",
            "--executor", "ray", "--ray-address", cluster.address, env=env,
        )  # fmt: skip
        auth = set(srv.auth)
    assert p.returncode == 0, p.stderr
    assert auth == {f"Bearer {key}"}  # the nodes had the key from the driver's environment
    run = tmp_path / "runs" / "r"
    got = rows(run)
    assert sorted(r["task_id"] for r in got) == ["harness__calc-1", "harness__calc-2"]
    assert all(r["info"]["status"] == "submitted" and r["error"] is None for r in got)
    assert {r["info"]["node"]["node_id"] for r in got} <= set(cluster.nodes.values())
    for r in got:  # the trajectory travelled back with the row
        steps = (run / r["info"]["trajectory"] / "steps.jsonl").read_text().splitlines()
        assert json.loads(steps[-1])["status"] == "submitted"
        assert (run / r["info"]["trajectory"] / f"{r['task_id']}.traj.json").is_file()
    res = json.loads((run / "results.json").read_text())
    assert res["counts"]["resolved"] == 2 and res["complete"] is True
    gen = json.loads((run / "generation.json").read_text())
    assert gen["sessions"][-1]["executor"]["name"] == "ray"
    assert not [f for f in run.rglob("*") if f.is_file() and key in f.read_text(errors="replace")]
    assert agent_containers(docker.from_env(), run) == []


def test_missing_ray_extra_is_exit_3_naming_the_install(local, cluster, tmp_path):
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\", name='ray')\n")
    dataset = copies(local, tmp_path, 1)
    preds = _preds(local, dataset, ["empty"], tmp_path / "preds.jsonl")
    args = [str(preds), "--dataset-path", str(dataset), "--executor", "ray", "--ray-address", cluster.address]
    env = {**os.environ, "PYTHONPATH": f"{shim.parent}:{ray_cluster_repo()}"}
    p = _evaluate(*args, "--out", str(tmp_path / "a"), env=env)
    assert p.returncode == 3, p.stderr
    assert "pip install 'harness[ray]'" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "a" / "samples.jsonl").exists()
    # The same command with Ray importable grades (so the check above is the shim's doing).
    p = _evaluate(*args, "--out", str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr


def test_unreachable_cluster_or_missing_resource_is_exit_3(local, cluster, tmp_path):
    dataset = copies(local, tmp_path, 1)
    preds = _preds(local, dataset, ["empty"], tmp_path / "preds.jsonl")
    base = [str(preds), "--dataset-path", str(dataset), "--executor", "ray"]
    p = _evaluate(*base, "--ray-address", "127.0.0.2:9", "--out", str(tmp_path / "a"), timeout=300)
    assert p.returncode == 3 and "cannot connect to a Ray cluster at 127.0.0.2:9" in p.stderr, p.stderr
    p = _evaluate(
        *base, "--ray-address", cluster.address, "--set", "executor.slots_resource=gpu_docker", "--out",
        str(tmp_path / "b"),
    )  # fmt: skip
    assert p.returncode == 3 and "advertises the resource 'gpu_docker'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("sig, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_stops_the_cluster_tasks_and_their_containers(local, cluster, tmp_path, sig, code):
    import signal

    import docker

    client = docker.from_env(timeout=600)
    dataset = copies(local, tmp_path, 2)
    preds = _preds(local, dataset, ["gold", "gold"], tmp_path / "preds.jsonl")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "evaluate", "swebench", str(preds), "--dataset-path", str(dataset)]
    cmd += ["--out", str(out), "--executor", "ray", "--ray-address", cluster.address, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ray_cluster_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_grading_containers(client, out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(_grading_containers(client, out)) == 2  # the check below can see them
    proc.send_signal(getattr(signal, sig))
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr  # Ray's own SIGTERM handler (a bare exit) is not left in place
    assert "Traceback" not in stderr and f"interrupted ({sig})" in stderr
    assert _grading_containers(client, out) == []  # gone when the command returns
    assert not (out / "samples.jsonl").exists() or (out / "samples.jsonl").read_text().strip() == ""


def test_a_node_stopped_mid_run_has_its_instances_retried_on_the_head(local, cluster, tmp_path):
    """Last in the module: it stops the module cluster's second node."""
    import docker

    client = docker.from_env(timeout=600)
    c = cluster
    dataset = copies(local, tmp_path, 4)
    preds = _preds(local, dataset, ["gold"] * 4, tmp_path / "preds.jsonl")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "harness", "evaluate", "swebench", str(preds), "--dataset-path", str(dataset)]
    cmd += ["--out", str(out), "--executor", "ray", "--ray-address", c.address, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ray_cluster_repo(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until all four are being graded (two slots per node), then stop the second node.
    deadline = time.monotonic() + 120
    while len(_grading_containers(client, out)) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(_grading_containers(client, out)) == 4, "the four instances never ran at once"
    assert c.kill(node_b_only=True) >= 1
    _stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    got = _samples(out)
    assert sorted(r["task_id"] for r in got) == [f"harness__calc-{i}" for i in range(1, 5)]  # exactly once
    assert all(r["status"] == "resolved" for r in got), [(r["task_id"], r["status"], r["detail"]) for r in got]
    retried = [r for r in got if r.get("failed_attempts")]
    assert retried, "no instance was retried: the node was not stopped while it graded"
    for r in retried:
        assert r["node"]["node_id"] == c.nodes["node_a"]  # the head finished it
        lost_on = [(a["node"] or {}).get("node_id") for a in r["failed_attempts"]]
        assert c.nodes["node_b"] in lost_on, r["failed_attempts"]
        assert r["attempts"] == len(r["failed_attempts"]) + 1
    assert "retrying" in stderr
    res = json.loads((out / "results.json").read_text())
    assert res["complete"] is True and res["counts"]["resolved"] == 4
    failed = sum(len(r["failed_attempts"]) for r in retried)
    assert res["provenance"]["grading_sessions"][-1]["grader"]["executor"]["failed_attempts"] == failed
    # The lost node's containers were removed (their owner process is gone): by the retries' sweep and the
    # clean-up task the driver runs on every node at the end.
    assert _grading_containers(client, out) == []
