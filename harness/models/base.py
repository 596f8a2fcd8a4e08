"""Model backend protocol and helpers shared by the backends.

Two ways to talk to a model: `generate` (many prompts at once, persisted as they finish) for
single-turn benchmarks, and `chat` (one assistant turn for one conversation, optionally with
OpenAI-format tool calls) for agents. A turn that cannot be had is an exception, never an
empty or invented reply.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.config import SamplingConfig
from harness.records import Generation, Prompt

Sink = Callable[[list[Generation]], None]

# Phrases of the 400 errors OpenAI and vLLM return when the prompt does not fit the context window
# ("This model's maximum context length is ...", code "context_length_exceeded", and vLLM's
# "... is longer than the maximum model length of ...").
CONTEXT_OVERFLOW_PHRASES = ("context_length_exceeded", "maximum context length", "maximum model length")


def request_seed(base: int, task_id: str, sample_id: int = 0) -> int:
    """A stable per-request seed: sampled runs are reproducible, and resume regenerates the same text."""
    return (base * 1_000_003 + zlib.crc32(task_id.encode()) + sample_id) % (2**31 - 1)


def is_context_overflow(message: str) -> bool:
    """Whether an error message says the prompt exceeds the model's context window."""
    text = message.lower()
    return any(p in text for p in CONTEXT_OVERFLOW_PHRASES)


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: str  # the JSON text as the model produced it (it may not even parse)


@dataclass(frozen=True)
class ChatTurn:
    """One assistant turn, with what it cost."""

    content: str | None  # assistant text (None when the model only called tools)
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    attempts: int = 1
    raw: dict | None = None  # the assistant message as received (for trajectories)

    def message(self) -> dict:
        """The OpenAI-format assistant message to append to the conversation."""
        msg: dict = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return msg


class GenerationFailed(Exception):
    """A turn that still failed after the backend's retries (or could not be retried)."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(f"{reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.reason = reason
        self.attempts = attempts


class ContextOverflow(GenerationFailed):
    """The conversation no longer fits the model's context window; retrying cannot help."""


class ModelBackend(Protocol):
    """generate() calls sink with batches of finished generations (each batch is persisted durably)."""

    def preflight(self) -> None:
        """Fail in seconds, with one clear message, if this backend cannot run here."""

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingConfig, needed: dict[str, list[int]], sink: Sink
    ) -> None:
        """Generate the sample ids in needed[task_id] for every prompt."""

    def chat(
        self,
        messages: Sequence[dict],
        sampling: SamplingConfig,
        tools: Sequence[dict] | None = None,
        seed: int | None = None,
    ) -> ChatTurn:
        """One assistant turn for one conversation (sampling.n is ignored: always one choice).

        Thread-safe: several threads may each drive their own conversation at once. seed=None uses
        sampling.seed. Raises ContextOverflow when the prompt does not fit, GenerationFailed when
        the turn still fails after the backend's retries.
        """

    def provenance(self) -> dict: ...

    def close(self) -> None:
        """Release the engine / server (GPU memory is free afterwards)."""


def make_backend(cfg, run_dir: Path) -> ModelBackend:
    """The configured backend, imported only when used (vllm and torch are heavy)."""
    from harness.registry import BACKENDS

    return BACKENDS.load(cfg.backend)(cfg, run_dir)


class RateLimiter:
    """Requests/min and tokens/min budgets (token cost estimated up front, corrected after)."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.interval = 60.0 / rpm if rpm else 0.0
        self.tpm = tpm
        self.tokens = tpm or 0.0
        self.next_start = 0.0
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, est_tokens: int) -> None:
        """Wait until one more request of about `est_tokens` tokens fits both budgets."""
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
        """Correct the token budget once a request's real usage is known."""
        if self.tpm and actual is not None:
            self.tokens += estimated - actual
