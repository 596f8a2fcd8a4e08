"""Hosted OpenAI-compatible endpoints (chat or completions), also used to talk to `vllm serve`.

httpx's async client is used directly (not the openai package) so that every failure mode is
visible: 429 / 5xx / timeouts / dropped connections / malformed bodies are retried with exponential
backoff and full jitter (honouring Retry-After), at most `max_attempts` times; what still fails is
a generation error, never an answer. `generate` runs its batch on its own event loop; `chat` (one
turn, from any number of threads) submits to one long-lived loop in a background thread; both share
one request function (`_exchange`), and `replicas.ReplicaPool` spreads requests over the replicas
`base_url` may list, taking out (and later back) one that stops answering.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from harness.config import OpenAIModel, SamplingConfig
from harness.errors import UserInputError
from harness.models import replicas
from harness.models.base import (
    ChatTurn,
    ContextOverflow,
    GenerationFailed,
    RateLimiter,
    Sink,
    ToolCall,
    is_context_overflow,
    request_seed,
)
from harness.models.replicas import ReplicaPool, Session, base_urls, check_replicas
from harness.records import Generation, Prompt
from harness.redact import backend_secrets, redact_text, redact_url

GATEWAY_DOWN = {502, 503, 504}  # counted against a replica's health, like a refused connection
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class _Malformed(Exception):
    pass


@dataclass
class _Outcome:
    """What one request came to after its retries: the parsed body, or why there is none."""

    value: Any = None
    attempts: int = 1
    latency_s: float | None = None
    usage: dict = field(default_factory=dict)
    error: str | None = None
    status: int | None = None  # the HTTP status of a non-retryable failure
    body: str = ""  # that failure's whole response body (the error string keeps only its start)

    def tokens(self) -> tuple[int | None, int | None]:
        return self.usage.get("prompt_tokens"), self.usage.get("completion_tokens")


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


async def _wind_down(session: Session | None) -> None:
    """Cancel the turns still running on this loop (their callers get CancelledError, not a hang)."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in others:
        t.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    if session is not None:
        await session.aclose()


def _usage(data: object) -> dict:
    usage = data.get("usage") if isinstance(data, dict) else None
    if usage is not None and not isinstance(usage, dict):
        raise _Malformed(f"malformed response: usage is {type(usage).__name__}")
    return usage or {}


def parse_turn(data: object) -> tuple[str | None, tuple[ToolCall, ...], str | None, dict]:
    """(content, tool calls, finish_reason, message) of a chat completion; _Malformed if it is not one.
    An empty message (no content, no tool calls) is a reply: the model said nothing, which an agent's
    parser answers with its format-error feedback, as the scaffold does; retrying would hide it."""
    try:
        choice = data["choices"][0]  # type: ignore[index]
        msg = choice["message"]
        content = msg.get("content")
        calls = tuple(
            ToolCall(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in msg.get("tool_calls") or ()
        )
        if content is not None and not isinstance(content, str):
            raise TypeError("content is not a string")
        if not all(isinstance(x, str) for c in calls for x in (c.id, c.name, c.arguments)):
            raise TypeError("a tool call's id, name or arguments is not a string")
        return content, calls, choice.get("finish_reason"), msg
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise _Malformed(f"malformed response: {type(e).__name__}: {e}") from None


class OpenAIBackend:
    """Any OpenAI-compatible endpoint (or replicas of one): at most max_concurrency requests in flight each."""

    def __init__(self, cfg: OpenAIModel, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.stats = {
            "requests": 0,
            "retries": 0,
            "errors": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "max_in_flight": 0,
        }
        self._in_flight = 0
        self._stats_lock = threading.Lock()  # generate's loop and chat's loop run in different threads
        self._chat_lock = threading.Lock()
        self._chat_loop: asyncio.AbstractEventLoop | None = None
        self._chat_thread: threading.Thread | None = None
        self._chat_state: tuple[asyncio.Semaphore, RateLimiter, Session] | None = None
        self.pool = ReplicaPool(base_urls(cfg.base_url), cfg.max_concurrency)
        # Masked in every error text kept: endpoints echo request headers (the key) and URLs.
        self._secrets = [s for u in self.pool.urls for s in backend_secrets(u, cfg.api_key_env)]

    # -- lifecycle ------------------------------------------------------------------------------
    def api_key(self) -> str | None:
        """The key from the variable named by api_key_env (the key itself is never configured)."""
        return os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None

    def preflight(self) -> None:
        """Check the key variable and the URL before anything is sent."""
        if self.cfg.api_key_env and not os.environ.get(self.cfg.api_key_env):
            raise UserInputError(
                f"model.api_key_env: the variable {self.cfg.api_key_env} is not set; export it with the endpoint's key"
            )
        url = self.cfg.base_url
        if isinstance(url, str) and not url.startswith(("http://", "https://")):  # a list is checked by the config
            raise UserInputError(f"model.base_url: expected an http(s) URL, got {redact_url(url)!r}")
        self._check_reachable()

    def _check_reachable(self) -> None:
        """One GET per replica before anything is written, so that an endpoint refusing connections (or a
        host that does not resolve) fails now with its reason, not as one generation error per sample
        after the retries (EnvironmentNotReady when no replica answers; the others start taken out)."""
        check_replicas(self.pool, min(self.cfg.request_timeout_s, 10.0), self._redact)

    def provenance(self) -> dict:
        """The endpoint (with a list, each replica and what it did), the client settings and what the client did."""
        return {
            "backend": "openai",
            **replicas.provenance(self.cfg.base_url, self.pool),
            "model_id": self.cfg.model,
            "api": self.cfg.api,
            "max_concurrency": self.cfg.max_concurrency,
            "client": self.stats,
        }

    def close(self) -> None:
        """Stop chat's background loop (if chat was used) and close its connections."""
        with self._chat_lock:
            loop, thread, state = self._chat_loop, self._chat_thread, self._chat_state
            self._chat_loop = self._chat_thread = self._chat_state = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_wind_down(state[2] if state else None), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()

    def _client(self, base_url: str):
        import httpx

        headers = {"Content-Type": "application/json"}
        key = self.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(
            max_connections=self.cfg.max_concurrency, max_keepalive_connections=self.cfg.max_concurrency
        )
        return httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(self.cfg.request_timeout_s),
        )

    def _redact(self, text: str) -> str:
        """Error text as it may be kept: the key, URL credentials and echoed auth headers masked."""
        return redact_text(text, self._secrets)

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _enter(self) -> None:
        with self._stats_lock:
            self._in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self._in_flight)
            self.stats["requests"] += 1

    def _leave(self) -> None:
        with self._stats_lock:
            self._in_flight -= 1

    # -- one request, with the retry policy -------------------------------------------------------
    async def _exchange(
        self, session: Session, limiter: RateLimiter, path: str, body: dict, parse: Callable[[object], Any]
    ) -> _Outcome:
        """POST body to path until parse() accepts a response or the policy gives up. Each attempt goes to
        the replica the pool picks; a transport failure with another replica healthy is retried there at
        once (no backoff): the body, hence the answer, is the same whichever replica serves it."""
        import httpx

        est = body["max_tokens"] + len(str(body.get("messages") or body.get("prompt"))) // 3
        last_error = ""
        avoid: int | None = None
        for attempt in range(1, self.cfg.max_attempts + 1):
            delay: float | None = None
            await limiter.acquire(est)  # before the lease: a cancel while rate-limited holds no replica slot
            lease = await session.acquire(avoid)
            avoid = None
            self._enter()
            t0 = time.monotonic()
            try:
                resp = await lease.client.post(path, json=body)
                if resp.status_code in GATEWAY_DOWN:  # a proxy answering for a server behind it that is not
                    if lease.failed():
                        avoid = lease.index
                else:
                    lease.answered()  # any other status: the replica is up (a 5xx or 429 is retried with backoff)
                if resp.status_code in RETRY_STATUS:
                    # Masked before it is cut short: a cut could leave part of a key that no longer matches.
                    last_error = f"HTTP {resp.status_code}: {self._redact(resp.text)[:200]}"
                    delay = _retry_after(resp.headers)
                elif resp.status_code >= 400:
                    # 400/401/403/404: retrying cannot help; say so plainly.
                    self._count("errors")
                    limiter.settle(est, 0)
                    error = f"HTTP {resp.status_code}: {self._redact(resp.text)[:300]}"
                    return _Outcome(attempts=attempt, error=error, status=resp.status_code, body=resp.text)
                else:
                    data = resp.json()
                    value, usage = parse(data), _usage(data)
                    latency = time.monotonic() - t0
                    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
                    self._count("prompt_tokens", pt or 0)
                    self._count("completion_tokens", ct or 0)
                    limiter.settle(est, (pt or 0) + (ct or 0) if usage else None)
                    return _Outcome(value, attempt, round(latency, 4), usage)
            except (httpx.TransportError, _Malformed, ValueError) as e:  # ValueError: body is not JSON
                last_error = self._redact(f"{type(e).__name__}: {e}")[:300]
                if isinstance(e, httpx.TransportError) and lease.failed():
                    avoid = lease.index
            finally:
                self._leave()
                lease.release()
            if attempt < self.cfg.max_attempts:
                self._count("retries")
                if avoid is not None:
                    continue
                if delay is None:
                    cap = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** (attempt - 1))
                    delay = random.uniform(0, cap)
                await asyncio.sleep(min(delay, self.cfg.backoff_max_s))
        self._count("errors")
        error = f"gave up after {self.cfg.max_attempts} attempts: {last_error}"
        return _Outcome(attempts=self.cfg.max_attempts, error=error)

    # -- batched generation ---------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        """Generate every needed sample, max_concurrency requests at a time."""
        asyncio.run(self._generate_all(prompts, sampling, needed, sink))

    async def _generate_all(self, prompts, sampling, needed, sink) -> None:
        # Requests in their backoff keep their place, as with one endpoint: replicas x cap at a time.
        sem = asyncio.Semaphore(self.cfg.max_concurrency * len(self.pool.replicas))
        limiter = RateLimiter(self.cfg.requests_per_minute, self.cfg.tokens_per_minute)
        session = self.pool.session(self._client)

        async def one(prompt: Prompt, sample_id: int) -> None:
            async with sem:
                gen = await self._request(session, limiter, prompt, sample_id, sampling)
            sink([gen])

        try:
            await asyncio.gather(*(one(p, s) for p in prompts for s in needed.get(p.task_id, [])))
        finally:
            await session.aclose()

    def _body(self, prompt: Prompt, sampling: SamplingConfig, seed: int) -> tuple[str, dict]:
        body = {
            "model": self.cfg.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
            **self.cfg.extra_body,
        }
        stops = list(prompt.stop) + list(sampling.stop or [])
        if stops:
            body["stop"] = stops[:4]  # the OpenAI API takes at most 4; the extractor applies the rest
        if self.cfg.api == "chat":
            if prompt.messages is None:
                raise UserInputError("model.api is chat but prompt.mode is completion; set model.api: completions")
            return "chat/completions", {**body, "messages": prompt.messages}
        text = prompt.text if prompt.text is not None else prompt.messages[-1]["content"]
        return "completions", {**body, "prompt": text}

    @staticmethod
    def _parse(data: object, api: str) -> tuple[str, str | None]:
        try:
            choice = data["choices"][0]  # type: ignore[index]
            text = choice["message"]["content"] if api == "chat" else choice["text"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            return text, choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Malformed(f"malformed response: {type(e).__name__}: {e}") from None

    async def _request(
        self, session: Session, limiter: RateLimiter, prompt: Prompt, sample_id: int, sampling: SamplingConfig
    ) -> Generation:
        seed = request_seed(sampling.seed, prompt.task_id, sample_id)
        path, body = self._body(prompt, sampling, seed)
        out = await self._exchange(session, limiter, path, body, lambda data: self._parse(data, self.cfg.api))
        if out.error is not None:
            return Generation(prompt.task_id, sample_id, None, seed=seed, attempts=out.attempts, error=out.error)
        text, finish = out.value
        pt, ct = out.tokens()
        return Generation(prompt.task_id, sample_id, text, finish, pt, ct, out.latency_s, seed, attempts=out.attempts)

    # -- one chat turn --------------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[dict],
        sampling: SamplingConfig,
        tools: Sequence[dict] | None = None,
        seed: int | None = None,
    ) -> ChatTurn:
        """One assistant turn from POST chat/completions (whatever model.api says); thread-safe."""
        body = {
            "model": self.cfg.model,
            "messages": list(messages),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed if seed is None else seed,
            **self.cfg.extra_body,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:4]
        if tools:
            body["tools"] = list(tools)
            body.setdefault("tool_choice", "auto")  # extra_body may ask for "required" or a named function
        future = asyncio.run_coroutine_threadsafe(self._chat_exchange(body), self._loop())
        try:
            out = future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C in the calling thread: do not leave the request running
            raise
        if out.error is not None:
            if out.status is not None and is_context_overflow(out.body):
                raise ContextOverflow(out.error, out.attempts)
            raise GenerationFailed(out.error, out.attempts)
        content, calls, finish, msg = out.value
        pt, ct = out.tokens()
        return ChatTurn(content, calls, finish, pt, ct, out.latency_s, out.attempts, msg)

    def _loop(self) -> asyncio.AbstractEventLoop:
        with self._chat_lock:
            if self._chat_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="openai-chat", daemon=True)
                thread.start()
                self._chat_loop, self._chat_thread = loop, thread
            return self._chat_loop

    async def _chat_exchange(self, body: dict) -> _Outcome:
        # Runs on the chat loop's thread only, so the lazy set-up below cannot race.
        if self._chat_state is None:
            limiter = RateLimiter(self.cfg.requests_per_minute, self.cfg.tokens_per_minute)
            sem = asyncio.Semaphore(self.cfg.max_concurrency * len(self.pool.replicas))
            self._chat_state = (sem, limiter, self.pool.session(self._client))
        sem, limiter, session = self._chat_state
        async with sem:
            return await self._exchange(session, limiter, "chat/completions", body, parse_turn)
