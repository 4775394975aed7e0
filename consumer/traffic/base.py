"""What every scenario (abuse or hard negative) is: a switchable, parameterised source of requests.

Parameters are the dataclass fields, settable from the command line as ``name:field=value``.
``start_s`` and ``duration_s`` place the scenario in the generated time range (offsets from its
start); ``keys`` records which key of which key type the scenario's traffic belongs to, for labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from consumer.traffic.addresses import ip_key
from consumer.traffic.events import Actors, Requests


@dataclass(frozen=True, slots=True)
class Context:
    """What scenarios may know about the run they are part of."""

    start: float  # epoch seconds of the first generated second
    rate_per_user: float  # mean records/s of one ordinary user


@dataclass
class Scenario:
    name: ClassVar[str] = ""
    abuse: ClassVar[bool] = True
    summary: ClassVar[str] = ""

    start_s: float = 30.0
    duration_s: float | None = None
    keys: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    #: Keys that carry some of the scenario's traffic but are not expected to be caught on their own
    #: (one of 2,000 proxy addresses, a throw-away cookie): neither a miss nor a false block.
    accomplices: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False)
    _t_start: float = field(default=0.0, init=False, repr=False)

    def setup(self, rng: np.random.Generator, actors: Actors, ctx: Context) -> None:
        """Create the scenario's actors (called once, before any requests)."""
        self._t_start = ctx.start + self.start_s
        self.prepare(rng, actors, ctx)

    def prepare(self, rng: np.random.Generator, actors: Actors, ctx: Context) -> None:
        raise NotImplementedError

    def emit(self, rng: np.random.Generator, t0: float, t1: float) -> Requests:
        """Requests starting in ``[t0, t1)``, which lies inside the active window."""
        raise NotImplementedError

    @property
    def t_start(self) -> float:
        return self._t_start

    @property
    def t_end(self) -> float | None:
        return None if self.duration_s is None else self._t_start + self.duration_s

    def requests(self, rng: np.random.Generator, t0: float, t1: float) -> Requests:
        a = max(t0, self.t_start)
        end = self.t_end
        b = t1 if end is None else min(t1, end)
        if b <= a:
            return Requests.empty()
        return self.emit(rng, a, b)

    def add_key(self, key_type: str, value: str) -> None:
        if key_type == "ip":
            value = ip_key(value)
        bucket = self.keys.setdefault(key_type, [])
        if value not in bucket:
            bucket.append(value)

    def add_accomplice(self, key_type: str, value: str) -> None:
        if key_type == "ip":
            value = ip_key(value)
        self.accomplices.setdefault(key_type, set()).add(value)

    def params(self) -> dict[str, object]:
        from dataclasses import fields

        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}


def steady(rng: np.random.Generator, t0: float, t1: float, rate: float, jitter: float = 0.3) -> np.ndarray:
    """Start times at a steady ``rate`` per second (a script's loop), with a little jitter.

    Deterministic in absolute time: tick k happens at k/rate, so consecutive chunks continue the beat.
    """
    first = int(np.ceil(t0 * rate))
    last = int(np.ceil(t1 * rate))
    ticks = np.arange(first, last, dtype=np.float64) / rate
    return ticks + rng.uniform(0, jitter / rate, len(ticks))


def poisson_times(rng: np.random.Generator, t0: float, t1: float, rate: float) -> np.ndarray:
    n = int(rng.poisson(rate * (t1 - t0)))
    return np.sort(t0 + rng.random(n) * (t1 - t0))
