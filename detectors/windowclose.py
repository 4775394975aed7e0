"""Adapter for per-key detectors that judge a key once per closed window (the online-ML detector).

The engine's "window closed" hook delivers closed windows in vectorised form; this adapter turns each
closed window of a key with at least ``min_requests`` requests into the
``evaluate(key_type, key, features, event_time, window_s) -> Finding | None`` call of the contract,
with ``event_time`` the window's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from detectors.base import Need, WindowDetector
from detectors.finding import Finding
from detectors.metrics import CATALOG, check_metric
from detectors.store import Channel, ClosedWindows


class PerKeyEvaluator(Protocol):
    def evaluate(
        self, key_type: str, key: str, features: dict[str, float], event_time: float, window_s: int
    ) -> Finding | None: ...


class WindowCloseAdapter(WindowDetector):
    evaluates = False

    def __init__(
        self, spec: Any, evaluator: PerKeyEvaluator, features: Sequence[str], window_s: int, min_requests: int
    ) -> None:
        # A feature is a metric or a ratio ``a/b`` of two (the evaluator divides): pass the parts.
        base = sorted({part for f in features for part in f.split("/")})
        for m in base:
            check_metric(m)
        self.spec = spec
        self.evaluator = evaluator
        self.features = tuple(base)
        self.window_s = window_s
        self.min_requests = min_requests
        self.evaluated = 0

    def needs(self) -> list[Need]:
        metrics = set(self.features) | {"requests"}
        sums = frozenset(m for m in metrics if CATALOG[m].kind == "sum")
        return [Need(Channel(), self.window_s, sums, frozenset(metrics - sums), subscribe=True)]

    def on_close(self, closed: ClosedWindows, keys: list[str | None]) -> list[Finding]:
        enough = np.flatnonzero(closed.metrics["requests"] >= self.min_requests)
        if enough.size == 0:
            return []
        cols = {f: closed.metrics[f][enough].tolist() for f in self.features}
        ends = closed.end_times[enough].tolist()
        slots = closed.slots[enough].tolist()
        out = []
        for j, slot in enumerate(slots):
            features = {f: cols[f][j] for f in self.features}
            key = keys[slot]
            assert key is not None
            f = self.evaluator.evaluate(closed.key_type, key, features, ends[j], self.window_s)
            self.evaluated += 1
            if f is not None:
                out.append(f)
        return out
