"""The detector engine: per-key windowed state for every key type, and the detectors over it.

``process(batch)`` runs in event time: a record older than the newest seen minus the allowed lateness
is counted (``late_dropped``) and ignored; every other record updates its key's windows, the rule and
baseline detectors score the running values, and windows whose end passed the watermark minus the
lateness are delivered to the detectors that subscribed to the "window closed" hook. Keys idle for
``idle_timeout_s`` of event time are forgotten; beyond ``max_keys`` per key type the least recently
seen keys are evicted (counted).

Where the parts live: this module is the facade (configuration, chunking, window closing, idle
sweeps, snapshot/restore, stats); ``event_time`` decides which records count and moves the
watermark; ``batch_update`` applies a batch to the key tables and window stores of a key type (the
hot path, over the compiled ``kernels``); ``partial_apply`` is the partial mode's input side
(partial rows filed, released rows turned into row batches); ``restore_compat`` keeps what still
fits when a snapshot comes from another configuration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from detectors import kernels, partial_apply, registry
from detectors.base import WindowDetector
from detectors.batch import RecordBatch
from detectors.batch_update import (
    StoreKey,
    assign_slots,
    dispatch_closed,
    release_slots,
    slice_batch,
    update_stores,
)
from detectors.config import StateConfig
from detectors.event_time import admit
from detectors.finding import Finding
from detectors.keytable import KeyTable
from detectors.metrics import CATALOG, BatchValues
from detectors.partial_apply import PartialInput
from detectors.partial_buffer import PartialBuffer
from detectors.partials import KeyPartials, PartialLayout, PartialValues
from detectors.restore_compat import restore_compatible
from detectors.store import Channel, WindowStore

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
_PATH_CACHE_LIMIT = 200_000
_slice = slice_batch  # imported under this name by tests


class _ChannelFilter:
    """Per-batch mask of the requests a channel counts (path regex results cached per URI).

    Defined here because snapshots pickle it under this module and name."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.rx = re.compile(channel.path) if channel.path is not None else None
        self.status = np.array(channel.status, dtype=np.float64) if channel.status is not None else None
        self._cache: dict[str | None, bool] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"channel": self.channel}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["channel"])  # type: ignore[misc]

    def mask(self, batch: RecordBatch, bv: BatchValues | None = None) -> np.ndarray | None:
        """``bv``: the batch's shared values, whose distinct URIs (and each record's index among
        them) the path test reuses, so it runs once per distinct URI and not per record."""
        m: np.ndarray | None = None
        if self.rx is not None:
            if batch.texts.get("cs-uri-stem") is None:
                raise ValueError("batch has no text field 'cs-uri-stem' (a detector filters on path)")
            uniq, inv = (bv or BatchValues(batch)).codes("cs-uri-stem")
            cache = self._cache
            if len(cache) > _PATH_CACHE_LIMIT:
                cache.clear()
            search = self.rx.search
            # (set.difference probes the dict per distinct URI; ``keys() - keys()`` walked the whole cache)
            for u in set(uniq).difference(cache):
                cache[u] = u is not None and search(u) is not None
            um = np.fromiter(map(cache.__getitem__, uniq), dtype=bool, count=len(uniq))
            m = um[inv]
        if self.status is not None:
            st = batch.numbers.get("sc-status")
            if st is None:
                raise ValueError("batch has no numeric field 'sc-status' (a detector filters on status)")
            sm = np.isin(st, self.status)
            m = sm if m is None else m & sm
        return m


class Engine:
    def __init__(
        self, detectors: Sequence[WindowDetector], state: StateConfig, key_types: Sequence[str]
    ) -> None:
        self.state = state
        self.key_types = tuple(key_types)
        self.detectors = list(detectors)
        self.tables: dict[str, KeyTable] = {}
        self.stores: dict[StoreKey, WindowStore] = {}
        self.evaluators: dict[StoreKey, list[int]] = {}
        self.subscribers: dict[StoreKey, list[int]] = {}
        self.by_key_type: dict[str, list[int]] = {}
        plan: dict[StoreKey, tuple[set[str], set[str], bool]] = {}
        for i, det in enumerate(self.detectors):
            kt = det.spec.key
            if kt not in self.key_types:
                raise ValueError(
                    f"detector {det.spec.name!r} uses key type {kt!r}, which is not configured "
                    f"(configured: {', '.join(self.key_types) or 'none'})"
                )
            self.by_key_type.setdefault(kt, []).append(i)
            for need in det.needs():
                sk = (kt, need.channel, need.window_s)
                sums, distincts, sub = plan.setdefault(sk, (set(), set(), False))
                sums |= need.sums
                distincts |= need.distincts
                plan[sk] = (sums, distincts, sub or need.subscribe)
                if need.subscribe:
                    self.subscribers.setdefault(sk, []).append(i)
            first = det.needs()[0]
            if det.evaluates:
                self.evaluators.setdefault((kt, first.channel, first.window_s), []).append(i)
        longest = max(plan, key=lambda sk: sk[2], default=None)
        if longest is not None and state.idle_timeout_s < longest[2] + state.allowed_lateness_s:
            name = next(
                d.spec.name for d in self.detectors if any(n.window_s == longest[2] for n in d.needs())
            )
            raise ValueError(
                f"state.idle_timeout_s ({state.idle_timeout_s}) is shorter than the longest detector window "
                f"({longest[2]} s, detector {name!r}) plus state.allowed_lateness_s "
                f"({state.allowed_lateness_s}): keys would be forgotten before their window ends"
            )
        for kt in self.by_key_type:
            self.tables[kt] = KeyTable(state.max_keys)
        for sk, (sums, distincts, sub) in plan.items():
            self.stores[sk] = WindowStore(
                sk[0], sk[1], sk[2], sums, distincts, sub, self.tables[sk[0]].capacity
            )
        for det in self.detectors:
            det.grow(self.tables[det.spec.key].capacity)
        self.filters = {ch: _ChannelFilter(ch) for ch in {sk[1] for sk in self.stores}}
        kernels.warm()
        self.watermark = -math.inf
        self.last_sweep = -math.inf
        self.sweep_every_s = max(1.0, min(state.idle_timeout_s / 8, 3600.0))
        self.counters = {
            "records": 0,
            "late_accepted": 0,
            "late_dropped": 0,
            "future_dropped": 0,
            "bad_time": 0,
            "findings": 0,
        }
        self._fingerprint = self._make_fingerprint()
        self.partials: PartialBuffer | None = None  # set by enable_partials()

    @classmethod
    def from_config(cls, specs: Sequence[Any], state: StateConfig, key_types: Sequence[str]) -> Engine:
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"detector name(s) used twice: {', '.join(dup)}")
        return cls([registry.build(s) for s in specs], state, key_types)

    def _make_fingerprint(self) -> str:
        doc = {
            "specs": [d.spec.model_dump(mode="json") for d in self.detectors],
            "state": self.state.model_dump(mode="json"),
            "key_types": self.key_types,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    # -- contract ---------------------------------------------------------------------------------

    def required_fields(self) -> set[str]:
        out = {"timestamp"}
        for (_, ch, _), store in self.stores.items():
            for m in (*store.sums, *store.distincts):
                out.update(CATALOG[m].fields)
            if ch.path is not None:
                out.add("cs-uri-stem")
            if ch.status is not None:
                out.add("sc-status")
        return out

    def process(self, batch: RecordBatch) -> list[Finding]:
        return self._in_chunks(batch) if len(batch) else []

    # -- partial aggregates (re-keyed input, or raw input evaluated at bucket resolution) ------------

    def enable_partials(
        self,
        bucket_s: int,
        hold_s: float,
        source_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> PartialLayout:
        """Judge keys at bucket resolution from partial aggregates (``detectors.partials``); returns
        the layout partials for this engine must have. Raw ``process`` is unchanged. ``clock``
        (wall) only decides when a silent source stops holding the others back."""
        if self.state.allowed_lateness_s < bucket_s:
            raise ValueError(
                f"state.allowed_lateness_s ({self.state.allowed_lateness_s}) must be at least the partial "
                f"bucket ({bucket_s} s): rows of one bucket carry different last times"
            )
        layout = PartialLayout.from_engine(self, bucket_s)
        self.partials = PartialBuffer(layout, hold_s, self.state.max_future_s, source_timeout_s, clock)
        return layout

    def partial_masks(self, batch: RecordBatch) -> dict[Channel, np.ndarray | None]:
        """Which records each channel counts (for ``partials.build``)."""
        return {ch: f.mask(batch) for ch, f in self.filters.items()}

    def process_partials(self, parts: Sequence[PartialInput], *, drain: bool = False) -> list[Finding]:
        """Merge partial inputs: ``(key type, rows)`` built in this process from raw lines, data
        bundles and progress records of re-keying processors (``detectors.partial_wire``). Complete
        buckets are applied in time order, each whole (``drain``: apply what is pending, complete or
        not, e.g. at the end of a replay)."""
        buf = self.partials
        if buf is None:
            raise ValueError("engine not in partial mode (enable_partials was not called)")
        partial_apply.accept(buf, parts, self.tables)
        findings: list[Finding] = []
        for _, rows in buf.drain() if drain else buf.due():
            findings.extend(self._apply_rows(rows))
        return findings

    def _apply_rows(self, rows: dict[str, KeyPartials]) -> list[Finding]:
        assert self.partials is not None
        built = partial_apply.row_batch(rows, self.partials.layout, self.tables)
        return [] if built is None else self._in_chunks(*built)

    def snapshot(self) -> bytes:
        """All state (key tables, windows, detectors, watermark, counters), pickled: restore() in an
        engine built from the same config continues exactly where this one stands."""
        state = {
            "version": SNAPSHOT_VERSION,
            "fingerprint": self._fingerprint,
            "detectors": self.detectors,
            "tables": self.tables,
            "stores": self.stores,
            "filters": self.filters,
            "watermark": self.watermark,
            "last_sweep": self.last_sweep,
            "counters": self.counters,
            "partials": self.partials,
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, obj: object) -> None:
        """Continue from a snapshot. Same configuration: exactly where it stood. Changed configuration
        (thresholds tuned, detectors added or removed): what is still compatible is kept (a key
        type's keys, a store with the same key type, filter, window and metrics, a detector's state
        when its name and state layout match) and the rest starts empty; each reset is logged."""
        if not isinstance(obj, bytes | bytearray):
            raise ValueError(
                f"engine snapshot must be bytes from Engine.snapshot(), got {type(obj).__name__}"
            )
        state = pickle.loads(obj)
        if not isinstance(state, dict) or state.get("version") != SNAPSHOT_VERSION:
            raise ValueError("engine snapshot has an unknown format or version")
        self.watermark = state["watermark"]
        self.last_sweep = state["last_sweep"]
        self.counters = state["counters"]
        old_partials = state.get("partials")
        if self.partials is not None and old_partials is not None:
            if old_partials.layout == self.partials.layout:
                old_partials.clock = self.partials.clock
                old_partials.hold_ms = self.partials.hold_ms
                old_partials.source_timeout_s = self.partials.source_timeout_s
                old_partials.restarted()
                self.partials = old_partials
            else:
                log.warning("engine snapshot: pending partials of another layout dropped")
        if state["fingerprint"] == self._fingerprint:
            self.detectors = state["detectors"]
            self.tables = state["tables"]
            self.stores = state["stores"]
            self.filters = state["filters"]
            return
        restore_compatible(self, state)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = dict(self.counters)
        out["watermark"] = self.watermark if math.isfinite(self.watermark) else 0.0
        for kt in self.key_types:
            t = self.tables.get(kt)
            out[f"tracked_keys.{kt}"] = len(t) if t else 0
            out[f"evicted_lru.{kt}"] = t.evicted_lru if t else 0
            out[f"evicted_idle.{kt}"] = t.evicted_idle if t else 0
        out["window_late_dropped"] = sum(s.late_dropped for s in self.stores.values())
        out["windows_closed"] = sum(s.windows_closed for s in self.stores.values())
        out["state_bytes"] = self.state_bytes()
        if self.partials is not None:
            out.update(self.partials.counters)
            out.update(self.partials.source_stats())
            out["partial_pending_rows"] = self.partials.pending_rows()
        return out

    def state_bytes(self) -> int:
        """Bytes of the per-key state: stores, key tables (index, slot list), detectors' per-slot arrays.
        Not counted: the key strings and the sparse re-emission dicts of flagged keys."""
        total = sum(s.nbytes() for s in self.stores.values())
        total += sum(t.nbytes() for t in self.tables.values())
        for d in self.detectors:
            for a in vars(d).values():
                if isinstance(a, np.ndarray):
                    total += a.nbytes
        return total

    # -- internals --------------------------------------------------------------------------------

    def _in_chunks(
        self, batch: RecordBatch, values: dict[Channel, PartialValues] | None = None
    ) -> list[Finding]:
        # A batch may not bring more new keys than half the key table can hold.
        n = len(batch)
        chunk = max(1, self.state.max_keys // 2)
        if n <= chunk:
            return self._process(batch, values)
        out: list[Finding] = []
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            part = None if values is None else partial_apply.slice_values(values, a, b)
            out.extend(self._process(slice_batch(batch, a, b), part))
        return out

    def _process(
        self, batch: RecordBatch, values: dict[Channel, PartialValues] | None = None
    ) -> list[Finding]:
        n = len(batch)
        t = np.asarray(batch.time, dtype=np.float64)
        st = self.state
        ok, self.watermark = admit(t, self.watermark, st.allowed_lateness_s, st.max_future_s, self.counters)

        bv = BatchValues(batch)
        masks: dict[Channel, np.ndarray | None] = {}
        if values is not None:  # partial rows: a channel counts the rows it has requests in
            masks = {ch: v.value("requests") > 0 for ch, v in values.items()}
        findings: list[Finding] = []
        for kt, table in self.tables.items():
            keys = batch.keys.get(kt)
            if keys is None:
                raise ValueError(f"batch has no keys for key type {kt!r} (KeyExtractor fills batch.keys)")
            if isinstance(keys, list) and len(keys) == n and keys.count(None) == n:
                continue  # no record has this key type's key (e.g. no API key header): nothing to do
            slot_rec = assign_slots(self, kt, table, keys, t, ok, findings)
            update_stores(self, kt, table, slot_rec, t, batch, bv, masks, values, findings)
        self._close_windows(findings)
        if self.watermark - self.last_sweep >= self.sweep_every_s:
            self._sweep_idle(findings)
        self.counters["findings"] += len(findings)
        findings.sort(key=lambda f: f.event_time)
        return findings

    def _close_windows(self, findings: list[Finding]) -> None:
        if not math.isfinite(self.watermark):
            return
        horizon = self.watermark - self.state.allowed_lateness_s
        for sk, store in self.stores.items():
            if not store.subscribed:
                continue
            closed_upto = math.floor(horizon / store.window_s) - 1
            table = self.tables[sk[0]]
            for cw in store.close_until(closed_upto, table.next_slot):
                findings.extend(dispatch_closed(self, sk, cw, table))

    def _sweep_idle(self, findings: list[Finding]) -> None:
        self.last_sweep = self.watermark
        cutoff = self.watermark - self.state.idle_timeout_s
        for kt, table in self.tables.items():
            idle = table.idle(cutoff)
            if idle.size:
                release_slots(self, kt, table, idle, findings)
                table.evicted_idle += int(idle.size)
