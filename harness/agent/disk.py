"""When to measure an agent container's writable layer while a command runs.

Docker on overlay2 enforces no size limit on most filesystems (only XFS with project quotas), so the
harness measures the layer (the engine walks it) and stops the container's processes past the limit.
A burst of small files writes ~400 MB/s (80 MB in 0.2 s), so how soon it is seen is the limit's
precision. The policy:
- the first measurement comes early (0.05 s into the command), and the interval doubles up to 0.2 s,
  or 10 x what one measurement costs (~2 ms for a small layer, ~240 ms at 50,000 files), at most 5 s;
- when the growth seen since the last measurement would reach the limit within two such intervals,
  the next comes at half the predicted time;
- never sooner than one measurement takes (at least 0.02 s, at most 5 s): the engine walks one at a
  time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_S, REGULAR_S, MAX_S, MIN_S = 0.05, 0.2, 5.0, 0.02


class DiskWatch:
    """The measurements of one command's run: `wait()` says when the next is due, `measure()` takes it.

    It starts from the layer's last known size and when that was measured (`since`, default now): the
    first growth rate is over that time.
    """

    def __init__(
        self,
        limit: int,
        measure: Callable[[], int],
        size: int = 0,
        since: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self._measure, self._clock = limit, measure, clock
        self.size, self.cost, self.rate = size, 0.0, 0.0
        self._t = clock() if since is None else since
        self._ramp = FIRST_S

    def wait(self) -> float:
        """Seconds from now until the next measurement is due."""
        wait = min(MAX_S, max(REGULAR_S, 10 * self.cost), self._ramp)
        if self.rate > 0:
            wait = min(wait, (self.limit - self.size) / self.rate / 2)
        return min(MAX_S, max(wait, self.cost, MIN_S))

    def measure(self) -> int:
        """Measure the layer now: its size in bytes (also kept, with the growth rate since the last one)."""
        t0 = self._clock()
        size = self._measure()
        now = self._clock()
        self.cost = now - t0
        if now > self._t:
            self.rate = max(0.0, (size - self.size) / (now - self._t))
        self.size, self._t = size, now
        self._ramp = min(MAX_S, 2 * self._ramp)
        return size

    def over(self) -> bool:
        """Whether the last measurement found the layer over the limit."""
        return self.size > self.limit
