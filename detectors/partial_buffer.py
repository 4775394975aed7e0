"""Holds partial rows until their bucket is complete, then hands them over one bucket at a time.

The partials of one (key, bucket) arrive from several re-keying processors (sources: raw shards) at
different moments and paces. The engine must apply a bucket once, whole, or a threshold crossing
would be scored on a fraction of the bucket and the decisions would depend on the number of shards
and their timing.

**Release rule (per-source progress).** Every source reports, after its data, its watermark: the
event time up to which it has published everything it holds (``partial_wire.Progress``). Bucket b
is complete when every *live* source's watermark is ``hold_s`` past the bucket's end (``hold_s``
covers the disorder of event times inside one raw shard). The sources to wait for are those any
progress record announced as open (so a source that has not published yet holds the others back)
minus those that ended (a parent shard after a reshard: ``final``) and those silent for more than
``source_timeout_s`` of wall clock (a stopped re-keying processor must not stop detection; counted,
and its rows arriving later are applied late). Rows without a source (raw lines parsed in this
process, ``LOCAL``) advance the local source's watermark themselves. Complete buckets are released
merged and ordered by (bucket, key): the engine applies each (key, bucket) once, whole, in time
order, whatever the topology, the pace of each source or the batching was.

**Exactly-once.** Rows carry their run (``partial_wire``); per (source, partition) the buffer keeps
the position of the last applied run and drops the rows of runs at or before it
(``partial_duplicate_rows``): a re-keying processor re-publishing after a restart changes nothing.

A row arriving for a bucket already released (a source that timed out, or disorder beyond
``hold_s``) is not lost: it is released with the next buckets and applied as a late addition
(``partial_late_rows``; the decision can then differ from a single-stage run's).

Everything here (pending rows, per-source watermarks and applied positions) is pickled in the
engine's snapshot; the wall-clock silence of each source restarts on restore.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from detectors.partial_wire import DataBundle, Decoded, Position, Progress
from detectors.partials import KeyPartials, PartialLayout, concat, merge, take

LOCAL = ""  # rows built in this process from raw lines
REMOTE = "\x00remote"  # rows of a decoded delivery (their sources were noted per bundle)


@dataclass
class SourceState:
    watermark_ms: float = -math.inf
    heard: float = 0.0  # wall clock of the last record from it (or of its first announcement)
    final: bool = False
    timed_out: bool = False
    applied: dict[int, Position] = field(default_factory=dict)  # partition -> last applied run end


class PartialBuffer:
    def __init__(
        self,
        layout: PartialLayout,
        hold_s: float,
        max_future_s: float,
        source_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.layout = layout
        self.hold_ms = round(hold_s * 1000)
        self.max_future_ms = int(max_future_s * 1000)
        self.source_timeout_s = source_timeout_s
        self.clock = clock
        self.pending: dict[str, list[KeyPartials]] = {}
        self.sources: dict[str, SourceState] = {}
        self.newest_ms: float = -math.inf
        self.released_upto: int | None = None  # buckets < this were released
        self.counters = {
            "partial_rows": 0,
            "partial_late_rows": 0,
            "partial_future_dropped": 0,
            "partial_duplicate_rows": 0,
            "partial_sources_timed_out": 0,
        }

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("clock", None)  # a clock is injected, not saved
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.clock = time.time
        self.restarted()

    def restarted(self) -> None:
        """After a restore every source gets a fresh ``source_timeout_s`` to be heard from: a detect
        processor coming back after an outage must not release buckets before the sources it was
        waiting for had a chance to publish."""
        now = self.clock()
        for s in self.sources.values():
            s.heard = now
            s.timed_out = False

    # -- input ------------------------------------------------------------------------------------

    def _source(self, name: str) -> SourceState:
        s = self.sources.get(name)
        if s is None:
            s = self.sources[name] = SourceState(heard=self.clock())
        return s

    def add(self, kt: str, kp: KeyPartials, source: str = LOCAL) -> None:
        """Rows of one key type. Rows of ``LOCAL`` advance its watermark; rows of a remote source
        wait for its progress record."""
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
        newest = float(t.max())
        self.newest_ms = max(self.newest_ms, newest)
        if source == REMOTE:
            return
        src = self._source(source)
        src.heard = self.clock()
        src.timed_out = False
        if source == LOCAL:
            src.watermark_ms = max(src.watermark_ms, newest)

    def add_bundle(self, b: DataBundle) -> None:
        """A data bundle: rows of runs already applied for its (source, partition) are dropped."""
        src = self._source(b.source)
        src.heard = self.clock()
        last = src.applied.get(b.partition)
        if b.run_ends:
            fresh = np.array([last is None or e > last for e in b.run_ends], dtype=bool)
            top = max(b.run_ends)
            src.applied[b.partition] = top if last is None else max(last, top)
        else:
            fresh = np.zeros(0, dtype=bool)
        for kt, kp in b.parts.items():
            if kp.run is None or len(kp) == 0:
                continue
            keep = fresh[kp.run]
            dup = int((~keep).sum())
            if dup:
                self.counters["partial_duplicate_rows"] += dup
                kp = take(kp, np.flatnonzero(keep))
            kp.run = None
            self.add(kt, kp, b.source)

    def add_decoded(self, d: Decoded) -> None:
        """A delivery decoded at once (``partial_wire.decode_many``): the same as its bundles one
        by one, in order, with the rows of every bundle added together."""
        fresh = np.ones(len(d.run_ends), dtype=bool)
        now = self.clock()
        starts = np.searchsorted(np.asarray(d.run_bundle, dtype=np.int64), np.arange(len(d.bundles) + 1))
        for b, (source, partition) in enumerate(d.bundles):
            src = self._source(source)
            src.heard = now
            src.timed_out = False
            a, z = int(starts[b]), int(starts[b + 1])
            if a == z:
                continue
            last = src.applied.get(partition)
            ends = d.run_ends[a:z]
            if last is not None:
                fresh[a:z] = [e > last for e in ends]
            top = max(ends)
            src.applied[partition] = top if last is None or top > last else last
        for kt, kp in d.rows.items():
            if len(kp) == 0:
                continue
            assert kp.run is not None
            keep = fresh[kp.run]
            dup = int((~keep).sum())
            if dup:
                self.counters["partial_duplicate_rows"] += dup
                kp = take(kp, np.flatnonzero(keep))
            kp.run = None
            self.add(kt, kp, REMOTE)
        for p in d.progress:
            self.progress(p)

    def progress(self, p: Progress) -> None:
        now = self.clock()
        src = self._source(p.source)
        src.heard = now
        src.timed_out = False
        src.watermark_ms = max(src.watermark_ms, float(p.watermark_ms))
        src.final = src.final or p.final
        for name in p.sources:
            if name not in self.sources:
                self.sources[name] = SourceState(heard=now)

    # -- release ----------------------------------------------------------------------------------

    def limit_ms(self) -> float:
        """The event time every live source has passed (-inf: none yet)."""
        now = self.clock()
        live: list[float] = []
        for s in self.sources.values():
            if s.final:
                continue
            if now - s.heard > self.source_timeout_s:
                if not s.timed_out:
                    s.timed_out = True
                    self.counters["partial_sources_timed_out"] += 1
                continue
            live.append(s.watermark_ms)
        if live:
            return min(live)
        # Nobody live holds the others back: what any source has passed.
        return max((s.watermark_ms for s in self.sources.values()), default=-math.inf)

    def due(self) -> list[tuple[int, dict[str, KeyPartials]]]:
        """The complete buckets not yet released, as merged rows per key type ordered by
        (bucket, key), with the bucket limit they are complete up to (empty list: none)."""
        if not self.pending:
            return []
        wm = self.limit_ms()
        if not math.isfinite(wm):
            return []
        # bucket b is complete once every live watermark >= (b + 1) * bucket + hold
        return self._release(int((wm - self.hold_ms) // (self.layout.bucket_s * 1000)))

    def _release(self, limit: int) -> list[tuple[int, dict[str, KeyPartials]]]:
        ready: dict[str, KeyPartials] = {}
        for kt in list(self.pending):
            kp = concat(self.pending[kt])
            done = kp.bucket < limit
            if not done.any():
                self.pending[kt] = [kp]
                continue
            if done.all():
                ready[kt] = kp
                del self.pending[kt]
                continue
            ready[kt] = take(kp, np.flatnonzero(done))
            self.pending[kt] = [take(kp, np.flatnonzero(~done))]
        if not ready:
            return []
        self.released_upto = limit if self.released_upto is None else max(self.released_upto, limit)
        return [(limit, {kt: merge(kp) for kt, kp in ready.items()})]

    def drain(self) -> list[tuple[int, dict[str, KeyPartials]]]:
        """Everything pending, complete or not (end of a replay)."""
        if not self.pending:
            return []
        top = max(int(concat(v).bucket.max()) for v in self.pending.values())
        return self._release(top + 1)

    def pending_rows(self) -> int:
        return sum(len(k) for lst in self.pending.values() for k in lst)

    def source_stats(self) -> dict[str, int]:
        live = [s for s in self.sources.values() if not s.final and not s.timed_out]
        return {"partial_sources": len(self.sources), "partial_sources_live": len(live)}
