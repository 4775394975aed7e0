"""A one-line progress display on stderr, only when stderr is a terminal (never stdout)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool = True, interval_s: float = 0.5) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.interval_s = interval_s
        self._start = time.perf_counter()
        self._last = 0.0
        self._shown = False

    def update(self, records: int, decisions: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < self.interval_s:
            return
        self._last = now
        rate = records / max(now - self._start, 1e-9)
        sys.stderr.write(f"\r  {records:>12,} records  {rate:>10,.0f} rec/s  {decisions:>6,} decisions")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
