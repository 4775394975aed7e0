"""The traffic generator: ordinary users plus scenarios, rendered in event-time order.

Deterministic: the same arguments give the same bytes. Event time advances in chunks whose
length depends only on ``rate``; each chunk and each source draws from its own seeded generator,
so a scenario switched on or off does not change what the others produce.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from consumer.traffic import labels as L
from consumer.traffic.base import Context, Scenario
from consumer.traffic.events import Actors, Requests
from consumer.traffic.population import UserGroup
from consumer.traffic.registry import ABUSE_NAMES, NEGATIVE_NAMES, parse_list
from consumer.traffic.render import Renderer

#: 2025-11-26 12:00:00 UTC: the default first second, so generated files never depend on the clock.
DEFAULT_START = 1_764_158_400.0


def default_users(rate: float) -> int:
    """Ordinary users for a given rate: on average one request every ~40 s per user."""
    return max(300, int(rate * 40))


class Generator:
    """Configured traffic; ``batches()`` for a time range, ``live()`` paced on the wall clock."""

    def __init__(
        self,
        seed: int = 0,
        start: float = DEFAULT_START,
        rate: float = 100.0,
        *,
        users: int | None = None,
        scenarios: Sequence[Scenario] | str | None = None,
        negatives: Sequence[Scenario] | str | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 records/s, got {rate}")
        self.seed, self.start, self.rate = int(seed), float(start), float(rate)
        self.users = users if users is not None else default_users(rate)
        if self.users < 1:
            raise ValueError(f"users must be >= 1, got {self.users}")
        abuse = (
            parse_list(scenarios, ABUSE_NAMES)
            if scenarios is None or isinstance(scenarios, str)
            else list(scenarios)
        )
        neg = (
            parse_list(negatives, NEGATIVE_NAMES)
            if negatives is None or isinstance(negatives, str)
            else list(negatives)
        )
        self.scenarios: list[Scenario] = abuse + neg
        self.actors = Actors()
        self.population = UserGroup(np.random.default_rng([self.seed, 1]), self.actors, self.users, self.rate)
        ctx = Context(self.start, self.rate / self.users)
        self._tags: list[int] = []
        seen: dict[str, int] = {}
        for s in self.scenarios:
            n = seen[s.name] = seen.get(s.name, -1) + 1
            tag = zlib.crc32(s.name.encode()) + n
            self._tags.append(tag)
            s.setup(np.random.default_rng([self.seed, 2, tag]), self.actors, ctx)
        self.renderer = Renderer(self.actors)
        self.renderer.prepare()  # per-actor columns: part of setup, not of the first batch
        # ~20,000 records per chunk (scenarios add ~100/s at their defaults): few chunk overheads.
        self.chunk_s = float(min(60.0, max(0.25, 20_000.0 / (self.rate + 100.0))))

    def requests(self, index: int, t0: float, t1: float) -> Requests:
        """Requests starting in ``[t0, t1)`` from every source (unsorted)."""
        parts = [self.population.requests(np.random.default_rng([self.seed, 3, index]), t0, t1)]
        for s, tag in zip(self.scenarios, self._tags, strict=True):
            parts.append(s.requests(np.random.default_rng([self.seed, 4, index, tag]), t0, t1))
        return Requests.concat(parts)

    def _render(self, index: int, req: Requests) -> list[bytes]:
        return self.renderer.render(req, np.random.default_rng([self.seed, 5, index]))

    def batches(self, duration_s: float | None, batch_size: int = 4096) -> Iterator[list[bytes]]:
        """Lines with timestamps in ``[start, start + duration_s)`` (forever if None), in time order."""
        end = None if duration_s is None else self.start + duration_s
        pending = Requests.empty()
        index = 0
        while end is None or self.start + index * self.chunk_s < end:
            t0 = self.start + index * self.chunk_s
            t1 = t0 + self.chunk_s if end is None else min(t0 + self.chunk_s, end)
            ready, pending = Requests.concat([pending, self.requests(index, t0, t1)]).sorted_split(t1)
            lines = self._render(index, ready)
            for i in range(0, len(lines), batch_size):
                yield lines[i : i + batch_size]
            index += 1

    def live(
        self,
        tick_s: float = 0.5,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        duration_s: float | None = None,
    ) -> Iterator[list[bytes]]:
        """Event time = now: every ``tick_s`` the lines whose timestamp has passed (from ``start``).

        Build the generator with ``start=time.time()`` for a live demo; scenarios start at their
        ``start_s`` offsets from then.
        """
        pending = Requests.empty()
        t0 = self.start
        index = 0
        while duration_s is None or t0 < self.start + duration_s:
            now = clock()
            if now < t0 + tick_s:
                sleep(t0 + tick_s - now)
                now = clock()
            t1 = max(now, t0 + 1e-3)
            if duration_s is not None:
                t1 = min(t1, self.start + duration_s)
            ready, pending = Requests.concat([pending, self.requests(index, t0, t1)]).sorted_split(t1)
            yield self._render(index, ready)
            t0 = t1
            index += 1

    def labels(self, duration_s: float | None = None) -> dict[str, Any]:
        return L.build(
            self.scenarios,
            {
                "seed": self.seed,
                "start": self.start,
                "duration_s": duration_s,
                "rate": self.rate,
                "users": self.users,
                "chunk_s": self.chunk_s,
            },
        )


def generate(
    seed: int = 0,
    start: float = DEFAULT_START,
    duration_s: float | None = 300.0,
    rate: float = 100.0,
    *,
    scenarios: Sequence[Scenario] | str | None = None,
    negatives: Sequence[Scenario] | str | None = None,
    users: int | None = None,
    batch_size: int = 4096,
) -> Iterator[list[bytes]]:
    """Batches of CloudFront real-time log lines (45 fields, ``\\n``-terminated) in event-time order.

    ``rate`` is the ordinary users' mean records/s (diurnal: ±35% over the day); scenarios add their
    own. ``scenarios``/``negatives``: instances, or ``"all"``/``"none"``/``"name:param=value,..."``;
    ``None`` = all of them with their default parameters.
    """
    gen = Generator(seed, start, rate, users=users, scenarios=scenarios, negatives=negatives)
    return gen.batches(duration_s, batch_size)
