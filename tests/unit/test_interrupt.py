"""Ctrl-C (SIGINT) and SIGTERM: the CLI says what happened and how to resume, and exits 128+signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.unit.test_plugin_benchmark import REPO, _answer, _config, _plugin_site


def _start_run(tmp_path: Path, base_url: str) -> subprocess.Popen:
    site = _plugin_site(tmp_path)
    env = dict(os.environ, FAKE_API_KEY="sk-test", PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    cmd = [sys.executable, "-m", "harness", "run", str(_config(tmp_path, base_url)), "--out", "r", "--run-id", "x"]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_says_how_to_resume(tmp_path, sig):
    with FakeOpenAI(answer=_answer, latency_s=30) as srv:
        proc = _start_run(tmp_path, srv.base_url)
        deadline = time.monotonic() + 60
        while not srv.attempts and time.monotonic() < deadline:  # generating: a request is in flight
            time.sleep(0.1)
        assert srv.attempts, "the run never reached the model"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    run_dir = Path("r") / "x"
    assert f"interrupted ({sig.name})" in err and f"`harness run --resume {run_dir}`" in err, err
    assert "Traceback" not in err
    assert (tmp_path / run_dir / "config.yaml").is_file()  # the directory the message names exists
