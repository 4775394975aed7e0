"""The global circuit breaker: a burst of blocks switches blocking to alert-only until reset.

A detector gone wrong (a bad threshold, a broken feature) would otherwise block thousands of
innocent users in a minute. Counted in event time so a replay trips exactly where the live run did;
the operator reset (``reset()`` or touching ``reset_file``) is the one wall-clock input.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable

from actions.config import BreakerConfig

log = logging.getLogger(__name__)


class CircuitBreaker:
    def __init__(self, cfg: BreakerConfig, wall: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.wall = wall
        self._recent: deque[float] = deque()  # event times of the blocks in the last per_s
        self.open_since: float | None = None  # event time it tripped
        self.opened_wall: float | None = None
        self.trips = 0
        self.resets = 0
        self._last_file_check = 0.0

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def allow(self, event_time: float) -> bool:
        """May a block at ``event_time`` go ahead? Trips when it would be one too many."""
        if self.open_since is not None:
            self._maybe_reset(event_time)
            if self.open_since is not None:
                return False
        q = self._recent
        horizon = event_time - self.cfg.per_s
        while q and q[0] <= horizon:
            q.popleft()
        if len(q) >= self.cfg.max_blocks:
            self._trip(event_time)
            return False
        return True

    def record_block(self, event_time: float) -> None:
        self._recent.append(event_time)

    def _trip(self, event_time: float) -> None:
        self.open_since = event_time
        self.opened_wall = self.wall()
        self.trips += 1
        until = (
            f"for {self.cfg.reset_after_s} s of event time or until an operator resets it"
            if self.cfg.reset_after_s
            else "until an operator resets it"
        )
        log.error(
            "CIRCUIT BREAKER OPEN: more than %d blocks within %d s; blocking switched to alert-only %s "
            "(metric breaker_open=1, breaker_trips=%d)",
            self.cfg.max_blocks,
            self.cfg.per_s,
            until,
            self.trips,
        )

    def _maybe_reset(self, event_time: float) -> None:
        assert self.open_since is not None
        if self.cfg.reset_after_s is not None and event_time >= self.open_since + self.cfg.reset_after_s:
            self.reset(f"timeout ({self.cfg.reset_after_s} s of event time)")
            return
        path = self.cfg.reset_file
        if path is not None:
            now = self.wall()
            if now - self._last_file_check >= 1.0:
                self._last_file_check = now
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    return
                if self.opened_wall is not None and mtime >= self.opened_wall:
                    self.reset(f"operator touched {path}")

    def reset(self, why: str = "operator") -> None:
        if self.open_since is None:
            return
        self.open_since = None
        self.opened_wall = None
        self._recent.clear()
        self.resets += 1
        log.warning("circuit breaker closed (%s): blocking resumes", why)

    def snapshot(self) -> dict[str, object]:
        return {"recent": list(self._recent), "open_since": self.open_since, "trips": self.trips}

    def restore(self, obj: dict[str, object]) -> None:
        self._recent = deque(obj["recent"])  # type: ignore[call-overload]
        self.open_since = obj["open_since"]  # type: ignore[assignment]
        self.opened_wall = self.wall() if self.open_since is not None else None
        self.trips = int(obj["trips"])  # type: ignore[call-overload]
