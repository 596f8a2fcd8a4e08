"""Several base URLs (replicas of one model): the pool's choices on a fake clock, then the openai and
vllm-server backends over two fault-injecting servers on 127.0.0.1 (spread under a per-replica cap,
a replica stopped mid-run, refusing at start, rejoining after its cool-down, chat turns from threads),
and the config's checks of the list. The runs through `harness run` are in
tests/integration/test_openai_replicas.py."""

from __future__ import annotations

import threading
import time

import pytest
import yaml

from harness.config import OpenAIModel, SamplingConfig, VLLMServerModel, load_config, resolved_dict
from harness.errors import EnvironmentNotReady, UserInputError
from harness.models import replicas, vllm_server
from harness.models.openai_api import OpenAIBackend
from harness.models.replicas import Lease, ReplicaPool
from harness.records import Prompt
from tests.fakes.openai_server import FakeOpenAI

pytestmark = pytest.mark.unit


# -- the pool alone, on a fake clock ----------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _take(pool: ReplicaPool, avoid: int | None = None) -> Lease | None:
    picked = pool._acquire(avoid)
    return None if picked is None else Lease(pool, picked[0], picked[1], None)


def test_pool_spreads_by_fewest_in_flight_round_robin_and_holds_the_cap():
    pool = ReplicaPool(["http://a/v1", "http://b/v1", "http://c/v1"], cap=2, clock=Clock())
    first = [_take(pool) for _ in range(6)]
    assert [lease.index for lease in first] == [0, 1, 2, 0, 1, 2]
    assert _take(pool) is None  # every replica at its cap: the request waits
    first[4].release()  # b has a free slot now
    assert _take(pool).index == 1
    for lease in (first[0], first[3]):
        lease.release()
    assert [_take(pool).index for _ in range(2)] == [0, 0]
    assert [r.max_in_flight for r in pool.replicas] == [2, 2, 2]


def test_pool_takes_out_after_consecutive_failures_probes_after_cooldown_and_rejoins(monkeypatch):
    monkeypatch.setattr(replicas, "COOLDOWN_S", 10.0)
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], cap=8, clock=clock)  # leases on b are not released
    a = pool.replicas[0]
    lease = _take(pool)
    assert lease.index == 0 and lease.failed() is True  # b is healthy: retry there at once
    lease.release()
    assert not a.out
    ok = _take(pool, avoid=0)
    assert ok.index == 1  # the retry goes to the other one
    ok.answered()
    ok.release()
    again = _take(pool)
    assert again.index == 0
    again.answered()  # an answer (any HTTP status) resets the count
    again.release()
    for _ in range(2):
        lease = _take(pool, avoid=1)
        assert lease.index == 0
        lease.failed()
        lease.release()
    assert a.out and a.taken_out == 1 and a.transport_failures == 3
    assert {_take(pool).index for _ in range(3)} == {1}  # while out, b takes everything
    clock.now += 9.9
    assert _take(pool).index == 1
    clock.now += 0.2  # the cool-down is over: one request probes a
    probe = _take(pool)
    assert (probe.index, probe.kind) == (0, "probe")
    assert _take(pool).index == 1  # only one probe at a time
    assert probe.failed() is True
    probe.release()
    assert a.out and a.cooldown_s == 20.0 and a.retry_at == clock.now + 20.0  # doubled
    clock.now += 20.0
    probe = _take(pool)
    assert probe.kind == "probe"
    probe.answered()
    probe.release()
    assert not a.out and a.rejoined == 1 and a.cooldown_s == 10.0
    assert pool.records()[0]["state"] == "healthy"


def test_pool_with_every_replica_out_still_sends_to_the_least_failing():
    clock = Clock()
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], cap=4, clock=clock)
    for i, failures in ((0, 5), (1, 2)):
        for _ in range(failures):
            lease = Lease(pool, i, "healthy", None)
            pool.replicas[i].in_flight += 1
            assert lease.failed() is (i == 0)  # b was still healthy when a failed
            lease.release()
    assert all(r.out for r in pool.replicas)
    lease = _take(pool)
    assert (lease.index, lease.kind) == (1, "fallback")  # b failed less: the caller backs off and tries it
    lease.answered()
    lease.release()
    assert not pool.replicas[1].out and pool.replicas[1].rejoined == 1


# -- the backends over two servers ------------------------------------------------------------------
SAMPLING = SamplingConfig(temperature=0.0, max_tokens=64, n=2, seed=7)


def _backend(urls: list[str], **kw) -> OpenAIBackend:
    settings = {
        "max_attempts": 6,
        "request_timeout_s": 2.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "max_concurrency": 3,
        **kw,
    }
    return OpenAIBackend(OpenAIModel(backend="openai", name="fake", model="fake-model", base_url=urls, **settings))


def _prompts(n: int, prefix: str = "T") -> list[Prompt]:
    return [Prompt(f"{prefix}/{i}", messages=[{"role": "user", "content": f"question {i}"}]) for i in range(n)]


def _generate(backend: OpenAIBackend, prompts: list[Prompt]) -> list:
    gens: list = []
    backend.generate(prompts, SAMPLING, {p.task_id: [0, 1] for p in prompts}, gens.extend)
    return gens


def test_generate_spreads_over_both_under_the_cap_of_each():
    with FakeOpenAI(latency_s=0.04) as a, FakeOpenAI(latency_s=0.04) as b:
        backend = _backend([a.base_url, b.base_url])
        gens = _generate(backend, _prompts(20))
    assert len(gens) == 40 and all(g.error is None for g in gens)
    served = [sum(a.successes.values()), sum(b.successes.values())]
    assert sum(served) == 40 and min(served) >= 10, served
    # None went past its cap; both were used at once (under load the client may not reach 3 on each).
    assert 2 <= a.max_in_flight <= 3 and 2 <= b.max_in_flight <= 3, (a.max_in_flight, b.max_in_flight)
    assert 4 <= backend.stats["max_in_flight"] <= 6
    prov = backend.provenance()
    assert prov["base_url"] == [a.base_url, b.base_url]
    assert [r["requests"] for r in prov["replicas"]] == served
    assert [r["state"] for r in prov["replicas"]] == ["healthy", "healthy"]


def test_a_replica_behind_a_proxy_answering_502_is_taken_out():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.gateway_down = True
        backend = _backend([a.base_url, b.base_url], backoff_initial_s=5.0, backoff_max_s=5.0)
        t0 = time.monotonic()
        gens = _generate(backend, _prompts(10))
        took = time.monotonic() - t0
    assert len(gens) == 20 and all(g.error is None for g in gens)
    assert sum(b.successes.values()) == 20 and 1 <= len(a.bodies) <= 4  # tried, then out (a probe at most later)
    assert took < 4  # no backoff waited: each 502 moved its request to the healthy replica at once
    [ra, rb] = backend.provenance()["replicas"]
    assert ra["taken_out"] >= 1 and ra["state"] == "out" and rb["state"] == "healthy"


def test_a_replica_refusing_at_start_is_warned_and_taken_out(capsys):
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.stop()
        backend = _backend([a.base_url, b.base_url])
        backend.preflight()
        err = capsys.readouterr().err
        assert f"cannot connect to {a.base_url}" in err and "starts taken out" in err
        assert b.base_url not in err
        gens = _generate(backend, _prompts(5))
    assert len(gens) == 10 and all(g.error is None and g.attempts == 1 for g in gens)
    assert sum(b.successes.values()) == 10
    rec = backend.provenance()["replicas"]
    assert rec[0] | {"url": None} == {
        "url": None,
        "requests": 0,  # the cool-down (10 s) never ran out: a was not tried
        "transport_failures": 0,
        "taken_out": 1,
        "rejoined": 0,
        "out_at_start": True,
        "max_in_flight": 0,
        "state": "out",
    }
    assert rec[1]["requests"] == 10 and not rec[1]["out_at_start"]


def test_every_replica_refusing_is_environment_not_ready_naming_them():
    with FakeOpenAI() as a, FakeOpenAI() as b:
        a.stop()
        b.stop()
        secret_a = a.base_url.replace("http://", "http://user:s3cr3t-pw@")
        backend = _backend([secret_a, b.base_url])
        with pytest.raises(EnvironmentNotReady) as e:
            backend.preflight()
    msg = str(e.value)
    assert msg.startswith("model.base_url: cannot connect to ")
    assert a.base_url.replace("http://", "http://***@") in msg and b.base_url in msg and "s3cr3t" not in msg


def test_a_taken_out_replica_rejoins_after_its_cooldown(monkeypatch):
    monkeypatch.setattr(replicas, "COOLDOWN_S", 0.15)
    with FakeOpenAI(latency_s=0.01) as a, FakeOpenAI(latency_s=0.01) as b:
        a.stop_after = 4
        backend = _backend([a.base_url, b.base_url], max_concurrency=2)
        first = _generate(backend, _prompts(10))
        assert len(first) == 20 and all(g.error is None for g in first)
        rec = backend.pool.records()[0]
        assert rec["taken_out"] == 1 and rec["state"] == "out" and rec["transport_failures"] >= 2
        assert sum(a.successes.values()) == 4 and sum(b.successes.values()) == 16
        a.start_again()
        while backend.pool.replicas[0].retry_at > backend.pool.clock():
            threading.Event().wait(0.02)
        second = _generate(backend, _prompts(10, "U"))
    assert len(second) == 20 and all(g.error is None for g in second)
    rec = backend.pool.records()[0]
    assert rec["rejoined"] == 1 and rec["state"] == "healthy" and rec["taken_out"] == 1
    assert sum(a.successes.values()) >= 4 + 5  # back in the rotation, not only its probe


def test_chat_turns_from_threads_survive_a_replica_stopping():
    """Agent-style: 8 threads, 5 turns each (the history grows); one replica goes away mid-way. The turns
    cut off are retried on the other at once: with a 20 s backoff, any wait would show."""
    with FakeOpenAI(latency_s=0.01) as a, FakeOpenAI(latency_s=0.01) as b:
        a.stop_after = 10
        backend = _backend([a.base_url, b.base_url], max_concurrency=2, backoff_initial_s=20, backoff_max_s=20)
        started = time.monotonic()
        replies: dict[int, list[str]] = {}

        def converse(i: int) -> None:
            history = [{"role": "user", "content": f"task {i}"}]
            replies[i] = []
            for turn in range(5):
                reply = backend.chat(history, SAMPLING, seed=1000 * i + turn)
                replies[i].append(reply.content)
                history += [reply.message(), {"role": "user", "content": "go on"}]

        threads = [threading.Thread(target=converse, args=(i,)) for i in range(8)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        finally:
            backend.close()
    assert time.monotonic() - started < 15  # a retry that waited its backoff (20 s) would be past this
    assert replies == {i: [f"answer for seed {1000 * i + t}" for t in range(5)] for i in range(8)}
    assert sum(a.successes.values()) == 10  # it served its share, then nothing
    both = a.successes + b.successes
    assert len(both) == 40 and set(both.values()) == {1}  # every turn answered exactly once
    rec = backend.provenance()["replicas"]
    assert rec[0]["taken_out"] == 1 and rec[0]["state"] == "out" and rec[1]["state"] == "healthy"
    assert rec[0]["transport_failures"] >= 2 and backend.stats["retries"] == rec[0]["transport_failures"]


def test_vllm_server_attaches_to_a_list(monkeypatch, capsys):
    monkeypatch.setattr(vllm_server, "model_fingerprint", lambda model, revision: {})
    monkeypatch.setattr(vllm_server, "software_versions", dict)
    with FakeOpenAI() as a, FakeOpenAI() as b:
        b.stop()
        cfg = VLLMServerModel(
            backend="vllm-server", name="fake", model="fake-model", base_url=[a.base_url, b.base_url], max_concurrency=2
        )
        backend = vllm_server.VLLMServerBackend(cfg)
        try:
            gens = _generate(backend, _prompts(4))
            prov = backend.provenance()
        finally:
            backend.close()
    assert len(gens) == 8 and all(g.error is None for g in gens) and sum(a.successes.values()) == 8
    assert f"cannot connect to {b.base_url}" in capsys.readouterr().err
    assert prov["base_url"] == [a.base_url, b.base_url] and not prov["started_server"]
    assert [(r["requests"], r["state"]) for r in prov["replicas"]] == [(8, "healthy"), (0, "out")]


# -- config --------------------------------------------------------------------------------------------
def _load(tmp_path, base_url, backend: str = "openai"):
    path = tmp_path / "c.yaml"
    model = {"backend": backend, "name": "m", "model": "m", "base_url": base_url}
    path.write_text(yaml.safe_dump({"model": model, "benchmark": {"name": "humaneval"}}))
    return load_config(path)


def test_config_takes_a_list_expanding_each(tmp_path, monkeypatch):
    monkeypatch.setenv("REPLICA_B", "http://user:pw-from-env@127.0.0.1:2/v1")
    cfg = _load(tmp_path, ["http://127.0.0.1:1/v1", "${REPLICA_B}"])
    assert cfg.model.base_url == ["http://127.0.0.1:1/v1", "http://user:pw-from-env@127.0.0.1:2/v1"]
    assert resolved_dict(cfg)["model"]["base_url"] == ["http://127.0.0.1:1/v1", "${REPLICA_B}"]
    assert _load(tmp_path, "http://127.0.0.1:1/v1").model.base_url == "http://127.0.0.1:1/v1"  # one, as before


@pytest.mark.parametrize("backend", ["openai", "vllm-server"])
@pytest.mark.parametrize(
    "urls,message",
    [
        (["http://127.0.0.1:1/v1", "127.0.0.1:2/v1"], "item 1: expected an http(s) URL, got '127.0.0.1:2/v1'"),
        (["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1/"], "items 0 and 1 are the same URL"),
        ([], "an empty list"),
    ],
)
def test_config_refuses_a_bad_list_naming_the_key(tmp_path, backend, urls, message):
    with pytest.raises(UserInputError) as e:
        _load(tmp_path, urls, backend)
    assert "c.yaml: model.base_url: " in str(e.value) and message in str(e.value)
