"""The detector engine: per-key windowed state for every key type, and the detectors over it.

``process(batch)`` runs in event time: a record older than the newest seen minus the allowed lateness
is counted (``late_dropped``) and ignored; every other record updates its key's windows, the rule and
baseline detectors score the running values, and windows whose end passed the watermark minus the
lateness are delivered to the detectors that subscribed to the "window closed" hook. Keys idle for
``idle_timeout_s`` of event time are forgotten; beyond ``max_keys`` per key type the least recently
seen keys are evicted (counted).
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
from operator import itemgetter
from typing import Any

import numpy as np

from detectors import kernels, registry
from detectors.base import WindowDetector
from detectors.batch import RecordBatch
from detectors.config import StateConfig
from detectors.finding import Finding
from detectors.kernels import first_seen, max_at, window_ids
from detectors.keytable import KeyTable, key_hashes
from detectors.metrics import CATALOG, BatchValues
from detectors.partial_buffer import PartialBuffer
from detectors.partial_wire import DataBundle, Decoded, Progress
from detectors.partials import KeyPartials, PartialLayout, PartialValues
from detectors.store import Channel, ClosedWindows, WindowStore

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
_PATH_CACHE_LIMIT = 200_000
StoreKey = tuple[str, Channel, int]
_NONE_HASH = int(key_hashes([None])[0])


class _ChannelFilter:
    """Per-batch mask of the requests a channel counts (path regex results cached per URI)."""

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
            for u in uniq.keys() - cache.keys():
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
        n = len(batch)
        if n == 0:
            return []
        # A batch may not bring more new keys than half the key table can hold.
        chunk = max(1, self.state.max_keys // 2)
        if n <= chunk:
            return self._process(batch)
        out: list[Finding] = []
        for a in range(0, n, chunk):
            out.extend(self._process(_slice(batch, a, min(n, a + chunk))))
        return out

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

    def process_partials(
        self,
        parts: Sequence[tuple[str, KeyPartials] | DataBundle | Decoded | Progress],
        *,
        drain: bool = False,
    ) -> list[Finding]:
        """Merge partial inputs: ``(key type, rows)`` built in this process from raw lines, data
        bundles and progress records of re-keying processors (``detectors.partial_wire``). Complete
        buckets are applied in time order, each whole (``drain``: apply what is pending, complete or
        not, e.g. at the end of a replay)."""
        buf = self.partials
        if buf is None:
            raise ValueError("engine not in partial mode (enable_partials was not called)")
        for item in parts:
            if isinstance(item, Progress):
                buf.progress(item)
                continue
            if isinstance(item, Decoded):
                buf.add_decoded(item)
                continue
            if isinstance(item, DataBundle):
                unknown = [kt for kt in item.parts if kt not in self.tables]
                if unknown:
                    raise ValueError(f"partials for key type {unknown[0]!r}, which no detector uses")
                buf.add_bundle(item)
                continue
            kt, kp = item
            if kt not in self.tables:
                raise ValueError(f"partials for key type {kt!r}, which no detector uses")
            buf.add(kt, kp)
        findings: list[Finding] = []
        for _, rows in buf.drain() if drain else buf.due():
            findings.extend(self._apply_rows(rows))
        return findings

    def _apply_rows(self, rows: dict[str, KeyPartials]) -> list[Finding]:
        """Released rows of every key type as one row batch ordered by (bucket, key type, key), so
        the watermark advances monotonically across key types."""
        assert self.partials is not None
        layout = self.partials.layout
        kts = [kt for kt in rows if len(rows[kt])]
        if not kts:
            return []
        kp_all = [rows[kt] for kt in kts]
        label = np.concatenate([np.full(len(kp), i) for i, kp in enumerate(kp_all)])
        bucket = np.concatenate([kp.bucket for kp in kp_all])
        order = np.lexsort((label, bucket))  # stable: keys stay sorted within (bucket, key type)
        n = order.size
        t = np.concatenate([kp.last_ms for kp in kp_all])[order] / 1000.0
        batch = RecordBatch(time=t)
        starts = np.cumsum([0] + [len(kp) for kp in kp_all])
        for other in self.tables:
            col: list[str | None] = [None] * n
            if other in kts:
                i = kts.index(other)
                flat: list[str | None] = [None] * n
                flat[starts[i] : starts[i + 1]] = rows[other].keys
                col = [flat[j] for j in order.tolist()]
            batch.keys[other] = col
        sums: dict[Channel, dict[str, np.ndarray]] = {}
        regs: dict[Channel, dict[str, np.ndarray]] = {}
        for i, kt in enumerate(kts):
            kp = kp_all[i]
            sl = slice(int(starts[i]), int(starts[i + 1]))
            for c, cl in enumerate(layout.channels(kt)):
                s_ch = sums.setdefault(cl.channel, {})
                r_ch = regs.setdefault(cl.channel, {})
                for m, a in kp.sums[c].items():
                    s_ch.setdefault(m, np.zeros(n))[sl] = a
                for m, a in kp.regs[c].items():
                    r_ch.setdefault(m, np.zeros((n, a.shape[1]), dtype=np.uint8))[sl] = a
        values = {
            ch: PartialValues(
                {m: a[order] for m, a in sums[ch].items()}, {m: a[order] for m, a in regs[ch].items()}
            )
            for ch in sums
        }
        chunk = max(1, self.state.max_keys // 2)
        if n <= chunk:
            return self._process(batch, values)
        out: list[Finding] = []
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            part_values = {
                ch: PartialValues(
                    {m: x[a:b] for m, x in v._sums.items()}, {m: x[a:b] for m, x in v._regs.items()}
                )
                for ch, v in values.items()
            }
            out.extend(self._process(_slice(batch, a, b), part_values))
        return out

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
        self._restore_compatible(state)

    def _restore_compatible(self, state: dict[str, Any]) -> None:
        kept: list[str] = []
        reset: list[str] = []
        for kt in self.tables:
            old = state["tables"].get(kt)
            if old is not None and old.next_slot <= self.state.max_keys:
                old.max_keys = self.state.max_keys
                self.tables[kt] = old
                kept.append(f"keys of {kt!r}")
            elif old is not None:
                reset.append(f"keys of {kt!r} (more slots used than the new max_keys)")
        for sk, store in self.stores.items():
            old = state["stores"].get(sk)
            kt_kept = state["tables"].get(sk[0]) is self.tables[sk[0]]
            if (
                kt_kept
                and old is not None
                and (old.sums, old.distincts, old.subscribed)
                == (store.sums, store.distincts, store.subscribed)
            ):
                self.stores[sk] = old
            else:
                if kt_kept:
                    what = f"{sk[2]} s window of {sk[0]!r} {sk[1].describe() or ''}".rstrip()
                    reset.append(f"{what} ({'new' if old is None else 'changed'})")
                store.grow(self.tables[sk[0]].capacity)
        old_dets = {d.spec.name: d for d in state["detectors"]}
        for i, det in enumerate(self.detectors):
            old = old_dets.get(det.spec.name)
            table = self.tables[det.spec.key]
            if state["tables"].get(det.spec.key) is table:
                if old is not None and old.spec == det.spec:
                    self.detectors[i] = old
                    continue
                if old is not None and type(old) is type(det) and det.adopt(old):
                    continue
                reset.append(f"detector {det.spec.name!r} ({'new' if old is None else 'changed'})")
            det.grow(table.capacity)
        log.warning(
            "engine snapshot from another configuration: kept %s; started empty: %s",
            ", ".join(kept) or "nothing",
            ", ".join(reset) or "nothing",
        )

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

    def _process(
        self, batch: RecordBatch, values: dict[Channel, PartialValues] | None = None
    ) -> list[Finding]:
        n = len(batch)
        t = np.asarray(batch.time, dtype=np.float64)
        L = self.state.allowed_lateness_s
        finite = np.isfinite(t)
        c = self.counters
        # A few records far ahead of everything else (corrupt timestamps) must not drag the
        # watermark along, or every later record would be "too late". In the sorted times (after the
        # watermark), the first gap longer than max_future_s splits the batch: if at most 1% of it
        # (at least one record) lies beyond, those records are dropped and counted; if more do, the
        # stream really jumped (a quiet period, a replay of another day) and all are kept.
        if finite.any():
            future = self._future_outliers(t, finite)
            if future is not None:
                c["future_dropped"] += int(future.sum())
                finite &= ~future
        tf = np.where(finite, t, -np.inf)
        acc = np.maximum.accumulate(tf)
        before = np.empty(n)
        before[0] = self.watermark
        np.maximum(acc[:-1], self.watermark, out=before[1:])
        late = finite & (t < before)
        too_late = late & (t < before - L)
        ok = finite & ~too_late
        c["records"] += n
        c["late_accepted"] += int((late & ~too_late).sum())
        c["late_dropped"] += int(too_late.sum())
        c["bad_time"] += int((~np.isfinite(t)).sum())
        self.watermark = max(self.watermark, float(acc[-1]))

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
            slot_rec = self._slots(kt, table, keys, t, ok, findings)
            # One stable sort by slot for all stores of the key type: a store takes its channel's
            # records from it (still sorted by slot, then arrival) and only sorts again by window
            # when a slot's records are not in window order.
            # Slot, time and window id of those records are gathered once per key type (window ids
            # once per window length) and subset per channel.
            by_slot = _stable_order(slot_rec)
            s_k, t_k = slot_rec[by_slot], t[by_slot]
            w_k: dict[int, np.ndarray] = {}
            picks: dict[Channel, np.ndarray | None] = {}
            for sk, store in self.stores.items():
                if sk[0] != kt or (values is not None and sk[1] not in values):
                    continue
                ch, W = sk[1], sk[2]
                if ch not in masks:
                    masks[ch] = self.filters[ch].mask(batch, bv)
                if ch not in picks:
                    ch_mask = masks[ch]
                    picks[ch] = None if ch_mask is None else np.flatnonzero(ch_mask[by_slot])
                pick = picks[ch]
                w = w_k.get(W)
                if w is None:
                    w, exact = window_ids(t_k, W)
                    if not exact:
                        w = np.floor_divide(t_k, W).astype(np.int64)
                    w_k[W] = w
                if pick is None:
                    sel, pre = by_slot, (s_k, t_k, w)
                else:
                    sel, pre = by_slot[pick], (s_k[pick], t_k[pick], w[pick])
                vals = bv if values is None else values[ch]
                view, closed = store.update(slot_rec, t, vals, sel, table.keys, by_slot=True, pre=pre)  # type: ignore[arg-type]
                for cw in closed:
                    findings.extend(self._dispatch(sk, cw, table))
                if view is not None:
                    for i in self.evaluators.get(sk, ()):
                        findings.extend(self.detectors[i].evaluate(view))
        self._close_windows(findings)
        if self.watermark - self.last_sweep >= self.sweep_every_s:
            self._sweep_idle(findings)
        c["findings"] += len(findings)
        findings.sort(key=lambda f: f.event_time)
        return findings

    def _future_outliers(self, t: np.ndarray, finite: np.ndarray) -> np.ndarray | None:
        tf = t[finite]
        low = float(tf.min()) if not math.isfinite(self.watermark) else min(self.watermark, float(tf.min()))
        if float(tf.max()) - low <= self.state.max_future_s:
            return None  # the usual case: no gap can be that long
        st = np.sort(tf)
        chain = st if not math.isfinite(self.watermark) else np.concatenate(([self.watermark], st))
        gaps = np.flatnonzero(np.diff(chain) > self.state.max_future_s)
        if gaps.size == 0:
            return None
        cut = float(chain[gaps[0] + 1])
        beyond = finite & (t >= cut)
        if int(beyond.sum()) > max(1, t.size // 100):
            return None
        return beyond

    def _dispatch(self, sk: StoreKey, cw: ClosedWindows, table: KeyTable) -> list[Finding]:
        out: list[Finding] = []
        for i in self.subscribers.get(sk, ()):
            out.extend(self.detectors[i].on_close(cw, table.keys))
        return out

    def _slots(
        self,
        kt: str,
        table: KeyTable,
        keys: list[str | None],
        t: np.ndarray,
        ok: np.ndarray,
        findings: list[Finding],
    ) -> np.ndarray:
        """Slot of each record's key (allocating new keys), -1 where no key or dropped.

        Every record's hash is probed in the key index by one compiled loop; only the records whose
        key is not in the table yet go through a ``unique`` (new keys get slots in order of arrival).
        """
        n = len(keys)
        if n != t.shape[0]:
            raise ValueError(f"batch.keys[{kt!r}] has {n} entries for {t.shape[0]} records")
        h = key_hashes(keys)
        # None keys hash to _NONE_HASH; only records with that hash need the identity test.
        none = np.zeros(n, dtype=bool)
        cand = np.flatnonzero(h == _NONE_HASH)
        if cand.size == 1:
            none[cand] = keys[int(cand[0])] is None
        elif cand.size:
            picked = itemgetter(*cand.tolist())(keys)
            none[cand] = True if picked.count(None) == cand.size else [k is None for k in picked]
        wanted = ok & ~none
        slot_rec = table.find(h)
        miss = np.flatnonzero((slot_rec < 0) & ~none)  # records without a key never make one
        if miss.size:
            # distinct unknown hashes in order of arrival (new keys get slots in that order)
            hm = h[miss]
            first, inv, has_ok = first_seen(hm, wanted[miss])
            uh = hm[first]
            new_idx = np.flatnonzero(has_ok)
        if miss.size and new_idx.size:
            shortfall = new_idx.size - table.room()
            if shortfall > 0:
                if table.evicted_lru == 0:
                    log.warning(
                        "key type %r reached state.max_keys (%d): evicting least recently seen keys",
                        kt,
                        table.max_keys,
                    )
                victims = table.pick_lru(shortfall, slot_rec[slot_rec >= 0])
                self._release(kt, table, victims, findings)
                table.evicted_lru += int(victims.size)
            first_rec = miss[first[new_idx]]
            fr = first_rec.tolist()
            picked = itemgetter(*fr)(keys) if len(fr) > 1 else [keys[fr[0]]]
            slots = table.allocate(picked, uh[new_idx])  # type: ignore[arg-type]
            self._grow(kt, table.capacity)
            for sk, store in self.stores.items():
                if sk[0] == kt:
                    store.reset(slots)
            for i in self.by_key_type[kt]:
                self.detectors[i].reset(slots)
            us = np.full(uh.size, -1, dtype=np.int64)
            us[new_idx] = slots
            slot_rec[miss] = us[inv]
        slot_rec[~wanted] = -1
        max_at(table.last_seen, slot_rec, t)
        return slot_rec

    def _grow(self, kt: str, capacity: int) -> None:
        for sk, store in self.stores.items():
            if sk[0] == kt:
                store.grow(capacity)
        for i in self.by_key_type[kt]:
            self.detectors[i].grow(capacity)

    def _release(self, kt: str, table: KeyTable, slots: np.ndarray, findings: list[Finding]) -> None:
        """Forget keys: their open windows go to the closed-window subscribers first."""
        if slots.size == 0:
            return
        for sk, store in self.stores.items():
            if sk[0] == kt:
                for cw in store.close_released(slots, self.watermark):
                    findings.extend(self._dispatch(sk, cw, table))
                store.reset(slots)
        for i in self.by_key_type[kt]:
            self.detectors[i].reset(slots)
        table.release(slots)

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
                findings.extend(self._dispatch(sk, cw, table))

    def _sweep_idle(self, findings: list[Finding]) -> None:
        self.last_sweep = self.watermark
        cutoff = self.watermark - self.state.idle_timeout_s
        for kt, table in self.tables.items():
            idle = table.idle(cutoff)
            if idle.size:
                self._release(kt, table, idle, findings)
                table.evicted_idle += int(idle.size)


def _stable_order(slot_rec: np.ndarray) -> np.ndarray:
    """Indices of the records with a slot (>= 0), stably sorted by slot. Slot and record index packed
    in one int64 are all distinct, so numpy's (SIMD) unstable sort gives the stable order ~10x faster
    than a stable argsort."""
    keyed = np.flatnonzero(slot_rec >= 0)
    if keyed.size == 0:
        return keyed
    k = int(slot_rec.size).bit_length()
    s = slot_rec[keyed]
    if int(s.max()) >= 1 << (62 - k):
        return keyed[np.argsort(s, kind="stable")]
    packed = (s << k) | keyed
    packed.sort()
    return packed & ((1 << k) - 1)


def _slice(batch: RecordBatch, a: int, b: int) -> RecordBatch:
    return RecordBatch(
        time=batch.time[a:b],
        numbers={k: v[a:b] for k, v in batch.numbers.items()},
        texts={k: v[a:b] for k, v in batch.texts.items()},
        keys={k: v[a:b] for k, v in batch.keys.items()},
    )
