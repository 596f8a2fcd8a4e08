"""Progress display: a rich bar on a terminal, periodic plain log lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Counts finished items; `advance(status)` after each one."""

    def __init__(self, total: int, label: str, quiet: bool = False, log_every_s: float = 10.0) -> None:
        self.total = total
        self.label = label
        self.quiet = quiet
        self.done = 0
        self.start = time.monotonic()
        self._last_log = self.start
        self._log_every = log_every_s
        self._bar: Any = None
        self._task: Any = None
        if not quiet and sys.stderr.isatty() and total > 0:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.1f}/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task(label, total=total, rate=0.0)
            self._bar.start()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        rate = self.done / max(now - self.start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, advance=n, rate=rate)
        elif not self.quiet and (now - self._last_log >= self._log_every or self.done == self.total):
            self._last_log = now
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
            print(
                f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, ETA {eta:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
