"""Hosted OpenAI-compatible endpoints (chat or completions), also used to talk to `vllm serve`.

httpx's async client is used directly rather than the openai package so that every failure mode
is visible and handled the same way: 429 / 5xx / timeouts / dropped connections / malformed bodies
are retried with exponential backoff and full jitter (honouring Retry-After), at most
`max_attempts` times; what still fails is recorded as a generation error, never as an answer.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path

from harness.config import OpenAIModel, SamplingConfig
from harness.errors import UserInputError
from harness.models.base import Sink, request_seed
from harness.records import Generation, Prompt

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class _Malformed(Exception):
    pass


class _RateLimiter:
    """Requests/min and tokens/min budgets (token cost estimated up front, corrected after)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.tpm = tpm
        self.tokens = tpm or 0.0
        self.next_start = 0.0
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, est_tokens: int) -> None:
        async with self.lock:
            now = time.monotonic()
            if self.interval:
                wait = self.next_start - now
                if wait > 0:
                    await asyncio.sleep(wait)
                self.next_start = max(now, self.next_start) + self.interval
            if self.tpm:
                while True:
                    now = time.monotonic()
                    self.tokens = min(self.tpm, self.tokens + (now - self.stamp) * self.tpm / 60.0)
                    self.stamp = now
                    if self.tokens >= min(est_tokens, self.tpm):
                        self.tokens -= est_tokens
                        break
                    await asyncio.sleep((est_tokens - self.tokens) * 60.0 / self.tpm)

    def settle(self, estimated: int, actual: int | None) -> None:
        if self.tpm and actual is not None:
            self.tokens += estimated - actual


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


class OpenAIBackend:
    """Any OpenAI-compatible endpoint. At most max_concurrency requests are in flight."""

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

    # -- lifecycle ------------------------------------------------------------------------------
    def api_key(self) -> str | None:
        return os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None

    def preflight(self) -> None:
        if self.cfg.api_key_env and not os.environ.get(self.cfg.api_key_env):
            raise UserInputError(
                f"model.api_key_env: the variable {self.cfg.api_key_env} is not set; export it with the endpoint's key"
            )
        if not self.cfg.base_url.startswith(("http://", "https://")):
            raise UserInputError(f"model.base_url: expected an http(s) URL, got {self.cfg.base_url!r}")

    def provenance(self) -> dict:
        return {
            "backend": "openai",
            "base_url": self.cfg.base_url,
            "model_id": self.cfg.model,
            "api": self.cfg.api,
            "max_concurrency": self.cfg.max_concurrency,
            "client": self.stats,
        }

    def close(self) -> None:
        return None

    # -- generation -----------------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        asyncio.run(self._generate_all(prompts, sampling, needed, sink))

    async def _generate_all(self, prompts, sampling, needed, sink) -> None:
        import httpx

        sem = asyncio.Semaphore(self.cfg.max_concurrency)
        limiter = _RateLimiter(self.cfg.requests_per_minute, self.cfg.tokens_per_minute)
        headers = {"Content-Type": "application/json"}
        key = self.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(
            max_connections=self.cfg.max_concurrency, max_keepalive_connections=self.cfg.max_concurrency
        )
        async with httpx.AsyncClient(
            base_url=self.cfg.base_url.rstrip("/") + "/",
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(self.cfg.request_timeout_s),
        ) as client:

            async def one(prompt: Prompt, sample_id: int) -> None:
                async with sem:
                    gen = await self._request(client, limiter, prompt, sample_id, sampling)
                sink([gen])

            await asyncio.gather(*(one(p, s) for p in prompts for s in needed.get(p.task_id, [])))

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
    def _parse(data: object, api: str) -> tuple[str, str | None, dict]:
        try:
            choice = data["choices"][0]  # type: ignore[index]
            text = choice["message"]["content"] if api == "chat" else choice["text"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
            return text, choice.get("finish_reason"), data.get("usage") or {}  # type: ignore[union-attr]
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise _Malformed(f"malformed response: {type(e).__name__}: {e}") from None

    async def _request(
        self, client, limiter: _RateLimiter, prompt: Prompt, sample_id: int, sampling: SamplingConfig
    ) -> Generation:
        import httpx

        seed = request_seed(sampling.seed, prompt.task_id, sample_id)
        path, body = self._body(prompt, sampling, seed)
        est = sampling.max_tokens + len(str(body.get("messages") or body.get("prompt"))) // 3
        last_error = ""
        for attempt in range(1, self.cfg.max_attempts + 1):
            delay: float | None = None
            await limiter.acquire(est)
            self._in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self._in_flight)
            self.stats["requests"] += 1
            t0 = time.monotonic()
            try:
                resp = await client.post(path, json=body)
                if resp.status_code in RETRY_STATUS:
                    last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                    delay = _retry_after(resp.headers)
                elif resp.status_code >= 400:
                    # 400/401/403/404: retrying cannot help; say so plainly.
                    self.stats["errors"] += 1
                    limiter.settle(est, 0)
                    return Generation(
                        prompt.task_id,
                        sample_id,
                        None,
                        seed=seed,
                        attempts=attempt,
                        error=f"HTTP {resp.status_code}: {resp.text[:300]}",
                    )
                else:
                    text, finish, usage = self._parse(resp.json(), self.cfg.api)
                    latency = time.monotonic() - t0
                    pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
                    self.stats["prompt_tokens"] += pt or 0
                    self.stats["completion_tokens"] += ct or 0
                    limiter.settle(est, (pt or 0) + (ct or 0) if usage else None)
                    return Generation(
                        prompt.task_id,
                        sample_id,
                        text,
                        finish,
                        pt,
                        ct,
                        round(latency, 4),
                        seed,
                        attempts=attempt,
                    )
            except (httpx.TransportError, _Malformed, ValueError) as e:  # ValueError: body is not JSON
                last_error = f"{type(e).__name__}: {e}"[:300]
            finally:
                self._in_flight -= 1
            if attempt < self.cfg.max_attempts:
                self.stats["retries"] += 1
                if delay is None:
                    cap = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** (attempt - 1))
                    delay = random.uniform(0, cap)
                await asyncio.sleep(min(delay, self.cfg.backoff_max_s))
        self.stats["errors"] += 1
        return Generation(
            prompt.task_id,
            sample_id,
            None,
            seed=seed,
            attempts=self.cfg.max_attempts,
            error=f"gave up after {self.cfg.max_attempts} attempts: {last_error}",
        )
