"""Holds partial rows until their bucket is complete, then hands them over one bucket at a time.

The partials of one (key, bucket) arrive from several re-keying processors at different moments. The
engine must apply a bucket once, whole, or a threshold crossing would be scored on a fraction of the
bucket and the decisions would depend on the number of shards and their timing. A bucket is
complete when the newest partial time seen is ``hold_s`` past the bucket's end (the allowed skew
between re-keying processors). Complete buckets are released merged and ordered by (bucket, key): the
engine applies each (key, bucket) once, whole, in time order, whatever the topology was (which
buckets happen to be released together depends on arrival, and the engine's results do not).

A row arriving for a bucket already released (a processor lagging more than ``hold_s``) is not
lost: it is released with the next buckets and applied as a late addition (counted, and then the
decision can differ from a single-stage run's).
"""

from __future__ import annotations

import math

import numpy as np

from detectors.partials import KeyPartials, PartialLayout, concat, merge, take


class PartialBuffer:
    def __init__(self, layout: PartialLayout, hold_s: float, max_future_s: float) -> None:
        self.layout = layout
        self.hold_ms = round(hold_s * 1000)
        self.max_future_ms = int(max_future_s * 1000)
        self.pending: dict[str, list[KeyPartials]] = {}
        self.newest_ms: float = -math.inf
        self.released_upto: int | None = None  # buckets < this were released
        self.counters = {"partial_rows": 0, "partial_late_rows": 0, "partial_future_dropped": 0}

    def add(self, kt: str, kp: KeyPartials) -> None:
        n = len(kp)
        if n == 0:
            return
        self.counters["partial_rows"] += n
        t = kp.last_ms
        if math.isfinite(self.newest_ms):
            # A few rows far ahead of everything (corrupt timestamps) must not release every bucket.
            beyond = t > self.newest_ms + self.max_future_ms
            if beyond.any() and int(beyond.sum()) <= max(1, n // 100):
                self.counters["partial_future_dropped"] += int(beyond.sum())
                kp = take(kp, np.flatnonzero(~beyond))
                t = kp.last_ms
                if len(kp) == 0:
                    return
        if self.released_upto is not None:
            self.counters["partial_late_rows"] += int((kp.bucket < self.released_upto).sum())
        self.pending.setdefault(kt, []).append(kp)
        self.newest_ms = max(self.newest_ms, float(t.max()))

    def due(self) -> list[tuple[int, dict[str, KeyPartials]]]:
        """The complete buckets not yet released, as merged rows per key type ordered by
        (bucket, key), with the bucket limit they are complete up to (empty list: none)."""
        if not self.pending or not math.isfinite(self.newest_ms):
            return []
        bs_ms = self.layout.bucket_s * 1000
        # bucket b is complete once newest >= (b + 1) * bucket + hold
        limit = int((self.newest_ms - self.hold_ms) // bs_ms)  # buckets < limit are complete
        ready: dict[str, KeyPartials] = {}
        for kt in list(self.pending):
            kp = concat(self.pending[kt])
            done = kp.bucket < limit
            if not done.any():
                self.pending[kt] = [kp]
                continue
            ready[kt] = take(kp, np.flatnonzero(done))
            rest = np.flatnonzero(~done)
            if rest.size:
                self.pending[kt] = [take(kp, rest)]
            else:
                del self.pending[kt]
        if not ready:
            return []
        self.released_upto = limit if self.released_upto is None else max(self.released_upto, limit)
        return [(limit, {kt: merge(kp) for kt, kp in ready.items()})]

    def drain(self) -> list[tuple[int, dict[str, KeyPartials]]]:
        """Everything pending, complete or not (end of a replay)."""
        saved = self.hold_ms
        self.hold_ms = -(10**15)
        try:
            return self.due()
        finally:
            self.hold_ms = saved

    def pending_rows(self) -> int:
        return sum(len(k) for lst in self.pending.values() for k in lst)
