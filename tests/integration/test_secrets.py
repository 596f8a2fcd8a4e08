"""No secret reaches a run directory or the report site, end to end through `harness run` and
`harness report`: an endpoint on loopback that echoes the request's credentials in its error bodies,
an API key from `api_key_env`, and a `${VAR}` base URL holding `user:password@`. Every file is
searched; the endpoint's host and path must still be there (so the search would find a leak). Also:
an endpoint that refuses connections fails at pre-flight, in one line naming the connection error."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.docker

KEY = "sk-live-K3y-0123456789abcdef"
PASSWORD = "pw-S3cr3t-0f-the-url"
USER = "alice"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (KEY, PASSWORD, BASIC, f"{USER}:{PASSWORD}")
N_TASKS = 4


class EchoingEndpoint:
    """OpenAI-compatible on 127.0.0.1. While `failing`, the first two tasks get errors that echo the
    request's credentials (a 401 with every header and the URL it was reached at, a 500 with the
    Authorization header line); the others, and every request once `failing` is off, the reference answer."""

    def __init__(self, humaneval) -> None:
        self.tasks = humaneval.tasks[:N_TASKS]
        self.failing = True
        self.auth_seen: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(404, b"{}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                auth = self.headers.get("Authorization", "")
                endpoint.auth_seen.append(auth)
                content = body["messages"][-1]["content"]
                index = next(i for i, t in enumerate(endpoint.tasks) if t.prompt in content)
                if endpoint.failing and index == 0:
                    userinfo = base64.b64decode(auth.split()[-1]).decode() if auth.startswith("Basic ") else ""
                    echo = {  # the client keeps the body's start: the URL first, then the headers
                        "error": {
                            "url": f"http://{userinfo}@{self.headers['Host']}{self.path}",
                            "message": f"invalid credentials {auth.split()[-1] if auth else ''}",
                            "headers": {"Authorization": auth},
                        }
                    }
                    self._send(401, json.dumps(echo).encode())
                elif endpoint.failing and index == 1:
                    self._send(500, f"upstream rejected\nAuthorization: {auth}\n".encode())
                else:
                    task = endpoint.tasks[index]
                    answer = "```python\n" + task.prompt + task.canonical_solution + "```\n"
                    reply = {
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                    }
                    self._send(200, json.dumps(reply).encode())

            def _send(self, code, payload):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> EchoingEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(tmp_path: Path, name: str, base_url: str) -> Path:
    cfg = {
        "model": {
            "backend": "openai",
            "name": name,
            "base_url": base_url,
            "model": "fake-model",
            "api_key_env": "SECRETS_TEST_KEY",
            "max_concurrency": 2,
            "max_attempts": 2,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.05,
        },
        "benchmark": {"name": "humaneval", "limit": N_TASKS},
        "sampling": {"max_tokens": 64},
        "sandbox": {"kind": "docker", "workers": 1},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _harness(tmp_path: Path, *args: str, url: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, SECRETS_TEST_KEY=KEY, SECRETS_TEST_URL=url)
    cmd = [sys.executable, "-m", "harness", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


def _leaks(root: Path) -> dict[str, list[str]]:
    """Every file under root holding a secret (read as bytes: any file, text or not, counts)."""
    found: dict[str, list[str]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            hits = [s for s in SECRETS if s.encode() in data]
            if hits:
                found[str(p.relative_to(root))] = hits
    return found


def _text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_no_secret_in_run_directories_or_the_report(humaneval, tmp_path):
    with EchoingEndpoint(humaneval) as ep:
        url = f"http://{USER}:{PASSWORD}@{ep.host}/v1"  # credentials in the URL, from the environment
        out = tmp_path / "results"
        runs = {
            "with-url-credentials": (_config(tmp_path, "url-creds", "${SECRETS_TEST_URL}"), url),
            "with-api-key": (_config(tmp_path, "api-key", f"http://{ep.host}/v1"), ""),
        }
        consoles = []
        for run_id, (cfg, env_url) in runs.items():
            proc = _harness(tmp_path, "run", str(cfg), "--out", str(out), "--run-id", run_id, "-q", url=env_url)
            assert proc.returncode == 1, proc.stderr  # the echoing requests are generation errors
            gens = [json.loads(line) for line in (out / run_id / "generations.jsonl").read_text().splitlines()]
            assert sum(g["error"] is not None for g in gens) == 2, gens
            consoles.append(proc.stderr)
        # The endpoint did receive the credentials (so the echoes held them).
        assert f"Bearer {KEY}" in ep.auth_seen and f"Basic {BASIC}" in ep.auth_seen

        # --resume expands ${SECRETS_TEST_URL} again and reaches the endpoint with the credentials.
        ep.failing, ep.auth_seen[:] = False, []
        resumed = _harness(tmp_path, "run", "--resume", str(out / "with-url-credentials"), "-q", url=url)
        assert resumed.returncode == 0, resumed.stderr
        assert ep.auth_seen == [f"Basic {BASIC}"] * 2
        site = tmp_path / "site"
        report = _harness(tmp_path, "report", str(out), "--out", str(site))
        assert report.returncode == 0, report.stderr

    assert _leaks(out) == {} and _leaks(site) == {}
    for console in consoles:  # the failure is named once (not per sample), masked
        assert console.count("first error: ") == 1 and "HTTP 401" in console, console
        assert not [s for s in SECRETS if s in console], console
    config = (out / "with-url-credentials" / "config.yaml").read_text()
    assert "${SECRETS_TEST_URL}" in config
    # Where the runs pointed is still recorded and published (so the searches above could find a leak).
    for root in (out / "with-url-credentials", out / "with-api-key", site):
        assert f"{ep.host}/v1" in _text(root)
    prov = json.loads((out / "with-url-credentials" / "results.json").read_text())["provenance"]["model"]
    assert prov["base_url"] == f"http://***@{ep.host}/v1"
    errors = (out / "with-api-key" / "generations.jsonl").read_text()
    assert "Bearer ***" in errors and "invalid credentials ***" in errors
    errors = (out / "with-url-credentials" / "generations.jsonl").read_text()
    assert f"http://***@{ep.host}/v1/chat/completions" in errors and "Basic ***" in errors


def test_unreachable_endpoint_fails_at_preflight_naming_the_connection_error(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(tmp_path, "down", f"http://127.0.0.1:{port}/v1")
    proc = _harness(tmp_path, "run", str(cfg), "--out", str(tmp_path / "results"))
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Connection refused" in lines[0] and f"127.0.0.1:{port}/v1" in lines[0], lines
    assert not (tmp_path / "results").exists()
