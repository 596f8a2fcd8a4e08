"""The per-turn chat call of the openai backend against a fault-injecting OpenAI-compatible server
on 127.0.0.1: replies and tool calls parsed, the retry policy shared with the batched path, failures
raised (never an empty or invented turn), context overflow not retried, the concurrency cap held
across threads."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from harness.config import OpenAIModel, SamplingConfig, TransformersModel
from harness.errors import UserInputError
from harness.models.base import ChatTurn, ContextOverflow, GenerationFailed, ToolCall
from harness.models.hf_transformers import TransformersBackend
from harness.models.openai_api import OpenAIBackend
from tests.fakes.openai_server import FakeOpenAI, scripted, tool_call_message

pytestmark = pytest.mark.unit

SAMPLING = SamplingConfig(temperature=0.0, max_tokens=64, seed=7)
BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run a shell command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    },
}
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "List files."}]


def _backend(srv: FakeOpenAI, **kw) -> OpenAIBackend:
    settings = {
        "max_attempts": 4,
        "request_timeout_s": 1.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.1,
        "max_concurrency": 4,
        **kw,
    }
    cfg = OpenAIModel(backend="openai", name="fake", model="fake-model", base_url=srv.base_url, **settings)
    return OpenAIBackend(cfg)


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


@pytest.fixture
def backend(server):
    b = _backend(server)
    yield b
    b.close()


def test_plain_reply(server, backend):
    turn = backend.chat(MESSAGES, SAMPLING, seed=11)
    assert turn == ChatTurn(
        content="answer for seed 11",
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=5,
        latency_s=turn.latency_s,
        attempts=1,
        raw={"role": "assistant", "content": "answer for seed 11"},
    )
    assert turn.latency_s is not None and turn.latency_s > 0
    assert turn.message() == {"role": "assistant", "content": "answer for seed 11"}
    [body] = server.bodies
    assert body["messages"] == MESSAGES and body["model"] == "fake-model" and body["max_tokens"] == 64
    assert "tools" not in body and "tool_choice" not in body
    assert backend.stats["requests"] == 1 and backend.stats["completion_tokens"] == 5


def test_seed_defaults_to_the_sampling_seed(server, backend):
    assert backend.chat(MESSAGES, SAMPLING).content == "answer for seed 7"


def test_tool_call_reply_is_parsed(server, backend):
    reply = tool_call_message([("bash", '{"command": "ls -la"}'), ("bash", '{"command": "cat setup.py"}')])
    server.answer = lambda body: reply
    turn = backend.chat(MESSAGES, SAMPLING, tools=[BASH_TOOL], seed=3)
    assert turn.content is None and turn.finish_reason == "tool_calls"
    assert turn.tool_calls == (
        ToolCall("call_0", "bash", '{"command": "ls -la"}'),
        ToolCall("call_1", "bash", '{"command": "cat setup.py"}'),
    )
    assert turn.raw == reply
    assert turn.message() == reply  # what goes back into the history is what the model sent
    [body] = server.bodies
    assert body["tools"] == [BASH_TOOL] and body["tool_choice"] == "auto"


def test_a_scripted_conversation_carries_the_history(server, backend):
    """Two agent turns: a tool call, then (after the tool's output) a final answer."""
    server.answer = scripted([tool_call_message([("bash", '{"command": "ls"}')]), "Done: two files."])
    history = list(MESSAGES)
    first = backend.chat(history, SAMPLING, tools=[BASH_TOOL], seed=1)
    history += [first.message(), {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "a.py\nb.py"}]
    second = backend.chat(history, SAMPLING, tools=[BASH_TOOL], seed=2)
    assert second.content == "Done: two files." and second.tool_calls == ()
    assert server.bodies[1]["messages"] == history
    sent = server.bodies[1]["messages"][2]
    assert sent["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"command": "ls"}'}


@pytest.mark.parametrize(
    "faults",
    [["429", "500", "drop"], ["truncated", "garbage"], ["slow"]],
    ids=["429-500-drop", "truncated-garbage", "timeout"],
)
def test_retries_then_success_counts_attempts(faults):
    with FakeOpenAI(slow_s=1.5) as srv:
        srv.faults[21] = faults
        backend = _backend(srv)
        try:
            turn = backend.chat(MESSAGES, SAMPLING, seed=21)
        finally:
            backend.close()
    assert turn.content == "answer for seed 21"
    assert turn.attempts == len(faults) + 1 == srv.attempts[21]
    assert srv.log[21] == [*faults, "ok"]
    assert backend.stats["retries"] == len(faults) and backend.stats["errors"] == 0


def test_always_failing_raises_generation_failed(server, backend):
    server.faults[5] = ["always500"]
    with pytest.raises(GenerationFailed) as info:
        backend.chat(MESSAGES, SAMPLING, seed=5)
    assert type(info.value) is GenerationFailed  # not a context overflow
    assert info.value.attempts == 4 == server.attempts[5]
    assert "gave up after 4 attempts: HTTP 500" in info.value.reason
    assert server.successes[5] == 0 and backend.stats["errors"] == 1


@pytest.mark.parametrize("fault", ["context", "context_openai"], ids=["vllm", "openai"])
def test_context_overflow_is_not_retried(server, backend, fault):
    server.faults[9] = [fault] * 4
    with pytest.raises(ContextOverflow) as info:
        backend.chat(MESSAGES, SAMPLING, seed=9)
    assert info.value.attempts == 1 and server.attempts[9] == 1
    assert info.value.reason.startswith("HTTP 400: ") and "context" in info.value.reason
    assert backend.stats["errors"] == 1 and backend.stats["retries"] == 0


def test_other_400_is_a_plain_failure_after_one_attempt(server, backend):
    server.faults[8] = ["400"]
    with pytest.raises(GenerationFailed) as info:
        backend.chat(MESSAGES, SAMPLING, seed=8)
    assert not isinstance(info.value, ContextOverflow)
    assert info.value.attempts == 1 and server.attempts[8] == 1


def test_an_empty_reply_is_a_turn_not_a_failure(server):
    """No content and no tool calls is what the model said (the agent's parser gives its feedback);
    a body that is not a completion at all is still malformed and retried."""
    server.answer = lambda body: {"role": "assistant", "content": None}
    backend = _backend(server, max_attempts=2)
    try:
        turn = backend.chat(MESSAGES, SAMPLING, seed=4)
        assert (turn.content, turn.tool_calls, turn.finish_reason) == (None, (), "stop")
        server.faults[5] = ["garbage", "garbage"]
        with pytest.raises(GenerationFailed, match="malformed response"):
            backend.chat(MESSAGES, SAMPLING, seed=5)
    finally:
        backend.close()
    assert server.attempts[4] == 1 and server.attempts[5] == 2


def test_threads_share_the_concurrency_cap():
    """Twelve conversations on twelve threads; at most max_concurrency requests ever reach the server."""
    with FakeOpenAI(latency_s=0.15) as srv:
        backend = _backend(srv, max_concurrency=3)
        turns: dict[int, ChatTurn] = {}

        def converse(i: int) -> None:
            turns[i] = backend.chat([{"role": "user", "content": f"conversation {i}"}], SAMPLING, seed=100 + i)

        threads = [threading.Thread(target=converse, args=(i,)) for i in range(12)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        finally:
            backend.close()
    assert {i: t.content for i, t in turns.items()} == {i: f"answer for seed {100 + i}" for i in range(12)}
    assert srv.max_in_flight == 3  # reached (the threads did overlap) and never exceeded
    assert backend.stats["max_in_flight"] == 3 and backend.stats["requests"] == 12


def test_close_cancels_a_turn_in_flight():
    """close() during a turn: the caller gets CancelledError at once instead of waiting forever."""
    with FakeOpenAI(latency_s=3.0) as srv:
        backend = _backend(srv, request_timeout_s=10.0)
        raised: list[BaseException] = []

        def converse() -> None:
            try:
                backend.chat(MESSAGES, SAMPLING, seed=1)
            except BaseException as e:
                raised.append(e)

        t = threading.Thread(target=converse)
        t.start()
        deadline = time.monotonic() + 5
        while srv.in_flight == 0 and time.monotonic() < deadline:  # until the request reaches the server
            time.sleep(0.01)
        assert srv.in_flight == 1
        started = time.monotonic()
        backend.close()
        t.join(timeout=5)
    assert not t.is_alive() and time.monotonic() - started < 2.0
    assert [type(e) for e in raised] == [concurrent.futures.CancelledError]


def test_chat_works_again_after_close(server, backend):
    assert backend.chat(MESSAGES, SAMPLING, seed=1).content == "answer for seed 1"
    backend.close()
    assert backend.chat(MESSAGES, SAMPLING, seed=2).content == "answer for seed 2"


def test_transformers_backend_refuses_chat():
    backend = TransformersBackend(TransformersModel(backend="transformers", name="t", model="/nonexistent"))
    with pytest.raises(UserInputError, match="does not support chat"):
        backend.chat(MESSAGES, SAMPLING)


def test_tool_call_arguments_are_kept_verbatim(server, backend):
    """Arguments that are not valid JSON are passed on as produced (the agent decides what to do)."""
    server.answer = lambda body: tool_call_message([("bash", '{"command": "ls')])
    turn = backend.chat(MESSAGES, SAMPLING, tools=[BASH_TOOL], seed=6)
    assert turn.tool_calls[0].arguments == '{"command": "ls'
