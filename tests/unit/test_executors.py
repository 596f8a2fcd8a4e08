"""Executor pieces that need no cluster: shipped files, the node named by Ray's error, the CLI's
executor flags, the config, the fast failure of an address that refuses connections."""

from __future__ import annotations

import socket
import time

import pytest

from harness.config import ExecutorConfig
from harness.errors import EnvironmentNotReady, UserInputError
from harness.executors import make_executor
from harness.executors.base import LocalExecutor, read_tree, write_tree


def test_shipped_files_round_trip_and_cannot_leave_the_run_directory(tmp_path):
    src = tmp_path / "node"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "log.txt").write_bytes(b"x\r\ny")
    (src / "top.json").write_text("{}")
    files = read_tree(src)
    assert files == {"a/b/log.txt": b"x\r\ny", "top.json": b"{}"}
    write_tree(tmp_path / "run", files)
    assert (tmp_path / "run" / "a" / "b" / "log.txt").read_bytes() == b"x\r\ny"
    assert not list((tmp_path / "run").rglob("*.part"))
    with pytest.raises(ValueError, match="outside"):
        write_tree(tmp_path / "run", {"../escaped.txt": b"no"})
    assert not (tmp_path / "escaped.txt").exists()


def test_big_shipped_files_are_cut_to_their_head(tmp_path, monkeypatch):
    import harness.executors.base as base

    monkeypatch.setattr(base, "MAX_FILE_BYTES", 10)
    (tmp_path / "big.log").write_bytes(b"0123456789abcdef")
    (tmp_path / "small.log").write_bytes(b"0123456789")
    files = read_tree(tmp_path)
    assert files["small.log"] == b"0123456789"
    assert files["big.log"].startswith(b"0123456789\n[cut by the harness") and b"abcdef" not in files["big.log"]


def test_the_lost_tasks_node_is_read_from_rays_error():
    from harness.executors.ray_exec import _node_of

    nid = "4a1389a59c5c1af4d78c5ece43fd2c494ed0aa006feed6334f1fa3ca"
    err = RuntimeError(f"Task failed because the node it was running on is dead. Node IP: 127.0.0.3, node ID: {nid}")
    assert _node_of(err) == {"node_id": nid}
    assert _node_of(RuntimeError("worker crashed")) is None


def test_executor_flags_become_settings():
    from harness.cli_eval import executor_overrides

    assert executor_overrides(None, None) == []
    assert executor_overrides("local", None) == ['executor.name="local"']
    assert executor_overrides(None, "h:6379") == ['executor.name="ray"', 'executor.address="h:6379"']
    with pytest.raises(UserInputError, match="--ray-address: only with --executor ray"):
        executor_overrides("local", "h:6379")


def test_executor_config():
    assert ExecutorConfig().name == "local" and not make_executor(ExecutorConfig()).remote
    assert isinstance(make_executor(ExecutorConfig()), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'slurm'; expected one of: local, ray"):
        ExecutorConfig(name="slurm")
    with pytest.raises(ValueError, match="max_attempts"):
        ExecutorConfig(name="ray", max_attempts=0)


def test_an_address_that_refuses_connections_fails_at_once():
    from harness.executors.ray_exec import RayExecutor

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ex = RayExecutor(ExecutorConfig(name="ray", address=f"127.0.0.1:{port}"))
    t0 = time.monotonic()
    with pytest.raises(EnvironmentNotReady, match=f"cannot connect to a Ray cluster at 127.0.0.1:{port}"):
        ex._probe()
    assert time.monotonic() - t0 < 5
    with socket.socket() as listener:  # and one that listens passes the probe
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        RayExecutor(ExecutorConfig(name="ray", address=f"127.0.0.1:{listener.getsockname()[1]}"))._probe()
