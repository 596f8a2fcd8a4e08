"""Several endpoints serving one model (replicas, e.g. one `vllm serve` per node), used as one.

A request goes to the healthy replica with the fewest requests in flight (ties round-robin), and each
replica holds at most `cap` requests at once (so replicas x cap in all). A replica that stops answering
(transport errors: connection refused, reset or dropped, timeouts) is taken out after
FAILURES_TO_TAKE_OUT consecutive ones, and the request that failed is retried at once on another healthy
replica. Any HTTP answer (4xx, 5xx, 429) or an unparsable body is the replica answering: the caller's
retry policy handles those. A taken-out replica gets one request again (its probe) after a cool-down,
COOLDOWN_S doubling up to COOLDOWN_MAX_S while its probes fail, and rejoins when one is answered.
With every replica out, requests still go out, to the replica with the fewest consecutive failures,
paced by the caller's backoff as with a single endpoint.

The pool (health, slots, counters) is shared by every event loop a backend runs (generate's and chat's,
in different threads) and guarded by a threading lock; each loop has its own Session holding one
httpx.AsyncClient per replica (a client belongs to the loop that made it) and its waiting requests.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import EnvironmentNotReady
from harness.redact import redact_url

FAILURES_TO_TAKE_OUT = 2
COOLDOWN_S = 10.0
COOLDOWN_MAX_S = 160.0

Kind = Literal["healthy", "probe", "fallback"]

_UNEXPANDED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_WARNED: set[str] = set()  # pre-flight runs twice per command (check, then solve): warn once


def base_urls(value: str | Sequence[str] | None) -> list[str]:
    """The replicas' URLs: one URL or a list of them (as model.base_url gives them)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def check_url_list(urls: list[str], expand: Callable[[str], str | None]) -> list[str]:
    """model.base_url as a list: each ${VAR}-expanded, each http(s), none twice (ValueError otherwise)."""
    if not urls:
        raise ValueError("an empty list; give one URL or a list of at least one")
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(urls):
        url = expand(raw) or raw
        # Left unexpanded only when grading a run directory (the endpoint is not used): no scheme to check.
        if not _UNEXPANDED.search(url) and not url.startswith(("http://", "https://")):
            raise ValueError(f"item {i}: expected an http(s) URL, got {redact_url(url)!r}")
        key = url.rstrip("/")
        if key in seen:
            raise ValueError(f"items {seen[key]} and {i} are the same URL {redact_url(url)!r}; list each replica once")
        seen[key] = i
        out.append(url)
    return out


def provenance(base_url: str | list[str] | None, pool: ReplicaPool | None) -> dict:
    """`base_url` as recorded (redacted; a list stays a list) and, for a list, `replicas`: what each did."""
    if not isinstance(base_url, list):
        return {"base_url": redact_url(base_url)}
    return {"base_url": [redact_url(u) for u in base_url], **({"replicas": pool.records()} if pool else {})}


def unreachable(urls: Sequence[str], timeout_s: float) -> dict[str, str]:
    """The URLs (of `urls`) that refuse connections or do not resolve, with the reason: one GET
    .../models each, all at once. Any HTTP answer or a timeout passes: the requests will tell."""
    import httpx

    def check(url: str) -> str | None:
        try:
            httpx.get(url.rstrip("/") + "/models", timeout=timeout_s)
        except httpx.ConnectError as e:
            return str(e)
        except httpx.HTTPError:
            pass
        return None

    with ThreadPoolExecutor(max_workers=min(len(urls), 16) or 1) as ex:
        reasons = list(ex.map(check, urls))
    return {u: r for u, r in zip(urls, reasons, strict=True) if r is not None}


def check_replicas(pool: ReplicaPool, timeout_s: float, redact: Callable[[str], str]) -> None:
    """Pre-flight: EnvironmentNotReady (naming them) if no replica accepts connections; the replicas
    refusing them, of several, are reported on stderr and start taken out."""
    down = unreachable(pool.urls, timeout_s)
    if len(down) == len(pool.urls):
        why = "; ".join(f"{redact_url(u)} ({redact(e)})" for u, e in down.items())
        raise EnvironmentNotReady(
            f"model.base_url: cannot connect to {why}; start the endpoint or correct the URL, then run again"
        )
    for url, e in down.items():
        message = (
            f"warning: model.base_url: cannot connect to {redact_url(url)} ({redact(e)}); this replica starts "
            f"taken out (tried again after {pool.cooldown_s:g} s), the others take its share"
        )
        if message not in _WARNED:
            _WARNED.add(message)
            print(message, file=sys.stderr)
        pool.take_out_at_start(url)


@dataclass
class Replica:
    """One endpoint's state and what it did (counters for provenance)."""

    url: str
    cooldown_s: float
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    transport_failures: int = 0
    consecutive: int = 0  # transport failures since it last answered
    taken_out: int = 0
    rejoined: int = 0
    out: bool = False
    out_at_start: bool = False
    retry_at: float = 0.0  # when out: when its probe may go
    probing: bool = False

    def record(self) -> dict:
        return {
            "url": redact_url(self.url),
            "requests": self.requests,
            "transport_failures": self.transport_failures,
            "taken_out": self.taken_out,
            "rejoined": self.rejoined,
            "out_at_start": self.out_at_start,
            "max_in_flight": self.max_in_flight,
            "state": "out" if self.out else "healthy",
        }


@dataclass
class Lease:
    """One attempt's hold on one replica: report how it went (answered / failed), then release it."""

    pool: ReplicaPool
    index: int
    kind: Kind
    client: Any

    def answered(self) -> None:
        self.pool._answered(self)

    def failed(self) -> bool:
        """A transport failure; True when another replica is healthy (retry there at once, no backoff)."""
        return self.pool._failed(self)

    def release(self) -> None:
        self.pool._release(self)


class ReplicaPool:
    """The replicas of one model; thread-safe. Tunables are read when the pool is made (tests set them)."""

    def __init__(self, urls: Sequence[str], cap: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self.threshold = FAILURES_TO_TAKE_OUT
        self.cooldown_s, self.cooldown_max_s = COOLDOWN_S, COOLDOWN_MAX_S
        self.replicas = [Replica(u, self.cooldown_s) for u in urls]
        self.clock = clock
        self._lock = threading.Lock()
        self._rr = 0
        self._sessions: set[Session] = set()

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def records(self) -> list[dict]:
        """What each replica did, and its state now."""
        with self._lock:
            return [r.record() for r in self.replicas]

    def take_out_at_start(self, url: str) -> None:
        """Pre-flight found it refusing connections: out from the start, probed after the cool-down."""
        with self._lock:
            r = next(r for r in self.replicas if r.url == url)
            if not r.out:
                r.out = r.out_at_start = True
                r.taken_out += 1
                r.retry_at = self.clock() + r.cooldown_s

    def session(self, make_client: Callable[[str], Any]) -> Session:
        """This event loop's view of the pool (call from inside the loop; aclose() it at the end)."""
        s = Session(self, [make_client(r.url) for r in self.replicas])
        with self._lock:
            self._sessions.add(s)
        return s

    # -- under self._lock ---------------------------------------------------------------------------
    def _pick(self, avoid: int | None) -> tuple[int, Kind] | None:
        """The replica for the next attempt, or None (wait: every usable replica is at its cap)."""
        now, reps = self.clock(), self.replicas
        for i, r in enumerate(reps):  # a cool-down that is over comes first: one request probes it
            if r.out and not r.probing and now >= r.retry_at and r.in_flight < self.cap and i != avoid:
                r.probing = True
                return i, "probe"
        healthy = [i for i, r in enumerate(reps) if not r.out]
        kind: Kind = "healthy" if healthy else "fallback"
        candidates = healthy or list(range(len(reps)))
        candidates = [i for i in candidates if i != avoid] or candidates
        free = [i for i in candidates if reps[i].in_flight < self.cap]
        if not free:
            return None
        n = len(reps)
        # All out: the one failing least lately (a dead replica's count keeps growing, a flaky one's does not).
        first = (lambda i: reps[i].consecutive) if kind == "fallback" else (lambda i: 0)
        pick = min(free, key=lambda i: (first(i), reps[i].in_flight, (i - self._rr) % n))
        self._rr = (pick + 1) % n
        return pick, kind

    def _next_probe_in(self, avoid: int | None) -> float | None:
        """Seconds until a taken-out replica's probe can go (None: none can; a release will wake us)."""
        due = [
            r.retry_at
            for i, r in enumerate(self.replicas)
            if r.out and not r.probing and r.in_flight < self.cap and i != avoid
        ]
        return max(0.0, min(due) - self.clock()) if due else None

    # -- outcomes -----------------------------------------------------------------------------------
    def _acquire(self, avoid: int | None) -> tuple[int, Kind] | None:
        with self._lock:
            picked = self._pick(avoid)
            if picked is not None:
                r = self.replicas[picked[0]]
                r.in_flight += 1
                r.requests += 1
                r.max_in_flight = max(r.max_in_flight, r.in_flight)
            return picked

    def _answered(self, lease: Lease) -> None:
        with self._lock:
            r = self.replicas[lease.index]
            if r.out and lease.kind == "healthy":
                return  # sent before it was taken out: only a probe (or a fallback) brings it back
            r.consecutive = 0
            if not r.out:
                return
            r.out = False
            r.rejoined += 1
            r.cooldown_s = self.cooldown_s
        self._wake()

    def _failed(self, lease: Lease) -> bool:
        with self._lock:
            r = self.replicas[lease.index]
            r.transport_failures += 1
            r.consecutive += 1
            now = self.clock()
            if not r.out and r.consecutive >= self.threshold:
                r.out = True
                r.taken_out += 1
                r.retry_at = now + r.cooldown_s
            elif r.out and lease.kind == "probe":
                r.cooldown_s = min(self.cooldown_max_s, r.cooldown_s * 2)
                r.retry_at = now + r.cooldown_s
            return any(not x.out for i, x in enumerate(self.replicas) if i != lease.index)

    def _release(self, lease: Lease) -> None:
        with self._lock:
            r = self.replicas[lease.index]
            r.in_flight -= 1
            if lease.kind == "probe":
                r.probing = False
        self._wake()

    def _wake(self) -> None:
        """Tell every loop's waiting requests that a slot or a replica's state changed."""
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            if s.loop is current:
                s._notify()
            else:
                try:
                    s.loop.call_soon_threadsafe(s._notify)
                except RuntimeError:  # that loop is closed
                    pass


class Session:
    """One event loop's clients (one per replica) and its waiting requests."""

    def __init__(self, pool: ReplicaPool, clients: list[Any]) -> None:
        self.pool = pool
        self.clients = clients
        self.loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        # A fresh event per change: the waiters of the old one all wake and pick again.
        old, self._changed = self._changed, asyncio.Event()
        old.set()

    async def acquire(self, avoid: int | None = None) -> Lease:
        """A slot on the replica for the next attempt (not `avoid`, the one that just failed, if
        another can take it); waits while every usable replica is at its cap."""
        while True:
            changed = self._changed
            picked = self.pool._acquire(avoid)
            if picked is not None:
                return Lease(self.pool, picked[0], picked[1], self.clients[picked[0]])
            # Also wake when a probe falls due: no release may come before (all slots held by slow requests).
            with self.pool._lock:
                wait = self.pool._next_probe_in(avoid)
            try:
                await asyncio.wait_for(changed.wait(), None if wait is None else wait + 0.001)
            except asyncio.TimeoutError:
                pass

    async def aclose(self) -> None:
        with self.pool._lock:
            self.pool._sessions.discard(self)
        for c in self.clients:
            await c.aclose()
