"""An OpenAI-compatible test server on 127.0.0.1 that misbehaves on purpose (fault injection).

Each request is identified by its `seed` (one per sample). `faults[seed]` is a list of what the
first attempts get, in order: "429" (with Retry-After), "500", "slow" (sleeps past the client's
timeout), "truncated" (half a JSON body), "drop" (closes the connection without answering),
"garbage" (200 with a body that is not a completion), "always500" (every attempt), "context" /
"context_openai" (the 400 vLLM / OpenAI return for a prompt longer than the context window),
"400" (a plain 400 about something else). After the
listed faults the request succeeds with an answer derived from its prompt and seed.

`answer(body)` returns the reply's text, or a whole assistant message (a dict, e.g. with
`tool_calls`, see tool_call_message; a `finish_reason` key in it is sent as the choice's) for scripted
agent turns; `scripted(...)` replays a list of them in order. Every request body received is kept in `bodies`
(and the time.monotonic() it arrived at in `arrived`).

A replica going away: `stop()` refuses new connections from then on and cuts the open ones (requests in
flight get no answer); `stop_after = K` does that by itself right after the K-th answer (mid-run, at a
point the test knows); `start_again()` listens on the same port again.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The 400 bodies for a prompt longer than the context window: vLLM 0.32's OpenAI server (copied
# from a real reply) and OpenAI's API (its documented error code).
CONTEXT_ERRORS = {
    "context": {
        "error": {
            "message": "This model's maximum context length is 2048 tokens. However, your prompt contains at "
            "least 2049 input tokens, which exceeds this limit even without any output tokens. Please reduce "
            "the length of the input prompt. (parameter=input_tokens, value=2049)",
            "type": "BadRequestError",
            "param": "input_tokens",
            "code": 400,
        }
    },
    "context_openai": {
        "error": {
            "message": "Your input exceeds the context window of this model. Please adjust your input and try again.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }
    },
}


def tool_call_message(calls: list[tuple[str, str]], content: str | None = None) -> dict:
    """An assistant message calling tools: calls are (function name, JSON arguments text)."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in enumerate(calls)
        ],
    }


def scripted(replies: list[str | dict]) -> Callable[[dict], str | dict]:
    """An answer function that gives the replies in order, one per successful request."""
    queue = list(replies)
    lock = threading.Lock()

    def answer(body: dict) -> str | dict:
        with lock:
            return queue.pop(0)

    return answer


class FakeOpenAI:
    def __init__(self, answer=None, latency_s: float = 0.0, slow_s: float = 5.0) -> None:
        self.faults: dict[int, list[str]] = {}
        self.answer = answer or (lambda body: f"answer for seed {body.get('seed')}")
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.attempts: Counter[int] = Counter()
        self.successes: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.log: dict[int, list[str]] = defaultdict(list)
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []  # each POST's Authorization header
        self.gateway_down = False  # every POST answered 502, as a proxy whose server behind it is gone
        self.arrived: list[float] = []
        self.stop_after: int | None = None
        self.stopped_at: float | None = None
        self.connections: set[socket.socket] = set()
        self.sending = 0  # answers being written: stop() lets them finish, so none is half-sent
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle plus delayed ACKs
                # add ~40 ms to every keep-alive response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with server.lock:
                    server.connections.add(self.connection)

            def finish(self):
                with server.lock:
                    server.connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # the connection was cut by stop()
                    pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/health"):
                    self._send(200, b"")
                else:
                    self._send(404, b"{}")

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                seed = int(body.get("seed", -1))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    n = server.attempts[seed]
                    server.attempts[seed] += 1
                    server.bodies.append(body)
                    server.auth.append(self.headers.get("Authorization"))
                    server.arrived.append(time.monotonic())
                plan = server.faults.get(seed, [])
                fault = "always500" if "always500" in plan else (plan[n] if n < len(plan) else None)
                fault = "502" if server.gateway_down else fault
                server.log[seed].append(fault or "ok")
                try:
                    if server.latency_s:
                        time.sleep(server.latency_s)
                    self._respond(fault, body, seed)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _respond(self, fault, body, seed):
                if fault == "429":
                    self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0.2"})
                elif fault in ("500", "always500"):
                    self._send(500, b'{"error": "internal"}')
                elif fault == "502":
                    self._send(502, b"<html>502 Bad Gateway</html>")
                elif fault == "slow":
                    time.sleep(server.slow_s)
                    self._send(200, self._completion(body, seed))
                elif fault == "truncated":
                    full = self._completion(body, seed)
                    self._send(200, full[: len(full) // 2], length=len(full))
                elif fault == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:  # already cut by stop()
                        pass
                elif fault in CONTEXT_ERRORS:
                    self._send(400, json.dumps(CONTEXT_ERRORS[fault]).encode())
                elif fault == "400":
                    self._send(400, b'{"error": {"message": "unknown field: frobnicate", "code": 400}}')
                elif fault == "garbage":
                    self._send(200, b'{"object": "chat.completion", "choices": []}')
                else:
                    with server.lock:
                        if server.stopped_at is not None:  # stopped while this one was being worked on
                            self.close_connection = True
                            return
                        server.successes[seed] += 1
                        server.sending += 1
                        last = server.stop_after is not None and sum(server.successes.values()) >= server.stop_after
                    try:
                        self._send(200, self._completion(body, seed))
                    finally:
                        with server.lock:
                            server.sending -= 1
                    if last:
                        server.stop()

            def _completion(self, body, seed):
                reply = server.answer(body)
                if "messages" in body:
                    message = dict(reply) if isinstance(reply, dict) else {"role": "assistant", "content": reply}
                    # a scripted reply may set its own finish_reason (e.g. "length": cut at max_tokens)
                    finish = message.pop("finish_reason", None) or (
                        "tool_calls" if message.get("tool_calls") else "stop"
                    )
                    choice = {"index": 0, "message": message, "finish_reason": finish}
                else:
                    choice = {"index": 0, "text": reply, "finish_reason": "stop"}
                return json.dumps(
                    {
                        "id": f"x-{seed}",
                        "object": "chat.completion",
                        "choices": [choice],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    }
                ).encode()

            def _send(self, code, payload, headers=None, length=None):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(length if length is not None else len(payload)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                    if length is not None:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._handler = Handler
        self._listen(0)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _listen(self, port: int) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # A short poll interval: shutdown() waits up to one interval, and tests start many servers.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def stop(self) -> None:
        """Go away: connections are refused from now on, and the open ones are cut."""
        with self.lock:
            if self.stopped_at is not None:
                return
            self.stopped_at = time.monotonic()
        deadline = time.monotonic() + 2
        while self.sending and time.monotonic() < deadline:
            time.sleep(0.001)
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()  # the listening socket: connecting now gets ECONNREFUSED
        with self.lock:
            conns = list(self.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start_again(self) -> None:
        """Come back on the same port (after stop())."""
        self._listen(self.port)
        self.stop_after = None
        self.stopped_at = None
        self.thread.start()

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.stopped_at is None:
            self.httpd.shutdown()
            self.httpd.server_close()


if __name__ == "__main__":
    # Standalone (for benchmarks: a server in its own process does not share the client's GIL).
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    a = ap.parse_args()
    with FakeOpenAI(latency_s=a.latency) as srv:
        print(srv.base_url, flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin
