"""Exponential backoff with full jitter: spreads retries of many workers after a throttle."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.rand = rand

    def delay(self, attempt: int) -> float:
        """Sleep before retry ``attempt`` (1 = first): uniform in [0, min(max, base * 2**(n-1))]."""
        ceiling = min(self.max_s, self.base_s * (2 ** min(attempt - 1, 30)))
        return ceiling * self.rand()
