"""Baseline detector: each key against its own history.

At every close (event time) of a key's window, the window's value of the metric updates the key's
EWMA mean and variance (West's incremental form). While a window is open, its running value scores
against ``max(mean + k * std, min_value)`` once the key has ``min_history`` closed windows. A closed
window that scored >= 1 is not learned, so an abuser cannot teach the baseline its new level.
Windows in which the key made no request are not seen (the baseline is "when active").
State: 4 + 4 + 2 bytes per key (float32 mean and variance, uint16 history count).
"""

from __future__ import annotations

import numpy as np

from detectors.base import Need, Reemitter, WindowDetector, number
from detectors.config import BaselineSpec
from detectors.finding import Finding
from detectors.metrics import CATALOG
from detectors.store import Channel, ClosedWindows, StoreView
from detectors.windows import window_label

_MAX_COUNT = np.iinfo(np.uint16).max


class BaselineDetector(WindowDetector):
    spec: BaselineSpec

    def __init__(self, spec: BaselineSpec) -> None:
        self.spec = spec
        self.channel = Channel(spec.path, spec.status)
        self.window_s = spec.window_s
        self.emitter = Reemitter(spec.reemit_factor)
        self.mean = np.zeros(0, dtype=np.float32)
        self.var = np.zeros(0, dtype=np.float32)
        self.count = np.zeros(0, dtype=np.uint16)
        self.learned = 0
        self.skipped_flagged = 0

    def needs(self) -> list[Need]:
        m = self.spec.metric
        sums = frozenset({"requests"} | ({m} if CATALOG[m].kind == "sum" else set()))
        distincts = frozenset({m} - sums)
        return [Need(self.channel, self.window_s, sums, distincts, subscribe=True)]

    def grow(self, capacity: int) -> None:
        if capacity > self.mean.size:
            for name in ("mean", "var", "count"):
                a = getattr(self, name)
                b = np.zeros(capacity, dtype=a.dtype)
                b[: a.size] = a
                setattr(self, name, b)

    def reset(self, slots: np.ndarray) -> None:
        self.mean[slots] = 0
        self.var[slots] = 0
        self.count[slots] = 0
        self.emitter.reset(slots)

    def adopt(self, old: WindowDetector) -> bool:
        """k, min_value, min_history, alpha and mode may change; the learned mean and variance hold
        while the metric, window and filters are the same."""
        o = old.spec
        same = (o.key, o.window, o.metric, o.path, o.status)
        if same != (self.spec.key, self.spec.window, self.spec.metric, self.spec.path, self.spec.status):
            return False
        assert isinstance(old, BaselineDetector)
        self.mean, self.var, self.count = old.mean, old.var, old.count
        self.learned, self.skipped_flagged = old.learned, old.skipped_flagged
        self.emitter.last = old.emitter.last
        return True

    def thresholds(self, slots: np.ndarray) -> np.ndarray:
        """Per-slot threshold; +inf where the history is too short to score."""
        sp = self.spec
        thr = np.maximum(self.mean[slots] + sp.k * np.sqrt(self.var[slots]), sp.min_value).astype(np.float64)
        thr[self.count[slots] < sp.min_history] = np.inf
        return thr

    def evaluate(self, view: StoreView) -> list[Finding]:
        sp = self.spec
        value = view.running(sp.metric)
        thr = self.thresholds(view.slot)
        with np.errstate(invalid="ignore"):
            score = value / thr
            ok = score >= 1.0
        out = []
        for i, s in self.emitter.select(view, ok, score):
            slot = int(view.slot[i])
            start, end = view.window_bounds(i)
            ev = {
                "metric": sp.metric,
                "value": number(value[i]),
                "baseline_mean": number(self.mean[slot]),
                "baseline_std": number(np.sqrt(self.var[slot])),
                "k": sp.k,
                "history_windows": int(self.count[slot]),
                "requests": number(view.running("requests")[i]),
                "window_start": start,
                "window_end": end,
                **self.channel.describe(),
            }
            out.append(
                Finding(
                    key=view.key_of(i),
                    key_type=view.key_type,
                    detector=sp.name,
                    score=float(s),
                    threshold=float(thr[i]),
                    window=window_label(self.window_s),
                    window_s=self.window_s,
                    event_time=float(view.t[i]),
                    mode=sp.mode,
                    evidence=ev,
                )
            )
        return out

    def on_close(self, closed: ClosedWindows, keys: list[str | None]) -> list[Finding]:
        slots = closed.slots
        x = closed.metrics[self.spec.metric]
        if slots.size == 0:
            return []
        # A key may close several windows at once (a batch spanning windows): learn them in order,
        # one round per occurrence (rows come sorted by slot, then window).
        idx = np.arange(slots.size)
        starts = np.r_[True, slots[1:] != slots[:-1]]
        rank = idx - np.maximum.accumulate(np.where(starts, idx, 0))
        for r in range(int(rank.max()) + 1):
            sel = rank == r
            self._learn(slots[sel], x[sel])
        return []

    def _learn(self, slots: np.ndarray, x: np.ndarray) -> None:
        flagged = x >= self.thresholds(slots)
        learn = ~flagged
        self.skipped_flagged += int(flagged.sum())
        s = slots[learn]
        x = x[learn]
        if s.size == 0:
            return
        a = self.spec.alpha
        n = self.count[s]
        mean = self.mean[s].astype(np.float64)
        var = self.var[s].astype(np.float64)
        first = n == 0
        diff = x - mean
        incr = a * diff
        self.mean[s] = np.where(first, x, mean + incr)
        self.var[s] = np.where(first, 0.0, (1 - a) * (var + diff * incr))
        self.count[s] = np.minimum(n.astype(np.int64) + 1, _MAX_COUNT)
        self.learned += int(s.size)
