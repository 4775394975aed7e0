"""``--speed``: replay at N times the recorded pace instead of as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Sleeps so that recorded time ``t`` is reached ``(t - first) / speed`` seconds after the start.

    Time only moves forward: an out-of-order (earlier) time never makes it wait.
    """

    def __init__(
        self,
        speed: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._first: float | None = None
        self._started = 0.0

    def wait_until(self, recorded_time: float | None) -> None:
        if recorded_time is None:
            return
        if self._first is None:
            self._first, self._started = recorded_time, self.clock()
            return
        due = self._started + (recorded_time - self._first) / self.speed
        delay = due - self.clock()
        if delay > 0:
            self.sleep(delay)


def line_time(line: bytes) -> float | None:
    """Event time of a real-time log line (its first field), or None if it has none."""
    head = line[:32].split(b"\t", 1)[0]
    try:
        return float(head)
    except ValueError:
        return None
