"""What the engine asks of a detector, and the shared re-emission logic.

A detector declares the windowed state it needs (``Need``: which key type, filter, window length and
metrics, and whether it wants the "window closed" hook); the engine builds one store per distinct
(key type, filter, window) and hands each detector, per batch, the sorted records of its store with
their running values (``evaluate``), and the closed windows it subscribed to (``on_close``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.finding import Finding
from detectors.store import Channel, ClosedWindows, StoreView


@dataclass(frozen=True)
class Need:
    channel: Channel
    window_s: int
    sums: frozenset[str]
    distincts: frozenset[str]
    subscribe: bool = False


class WindowDetector:
    """Base class: per-slot state hooks are no-ops; subclasses override what they use."""

    spec: Any
    evaluates = True  # gets ``evaluate`` calls with its store's batch view

    def needs(self) -> list[Need]:
        raise NotImplementedError

    def evaluate(self, view: StoreView) -> list[Finding]:
        return []

    def on_close(self, closed: ClosedWindows, keys: list[str | None]) -> list[Finding]:
        return []

    def grow(self, capacity: int) -> None:
        """Per-slot arrays must cover ``capacity`` slots."""

    def reset(self, slots: np.ndarray) -> None:
        """The keys in these slots are forgotten."""

    def adopt(self, old: WindowDetector) -> bool:
        """Take over the per-key state of ``old`` (same name and kind, the spec changed): True when
        the state means the same under the new spec, else False (this detector starts empty)."""
        return False


class Reemitter:
    """Once per key and window when the score first reaches 1.0, then again each time it reaches the
    next power of ``factor`` (2, 4, 8... with the default 2) in the same window; a new window starts
    over. Sparse (a dict entry per flagged key), so it costs nothing for the keys that never score.
    """

    def __init__(self, factor: float) -> None:
        self.log_factor = math.log(factor)
        self.last: dict[int, tuple[int, int]] = {}  # slot -> (window id, level) last emitted

    def select(self, view: StoreView, qualifies: np.ndarray, score: np.ndarray) -> list[tuple[int, float]]:
        """(record index in the view, score) of the records that emit."""
        idx = np.flatnonzero(qualifies)
        if idx.size == 0:
            return []
        sc = score[idx]
        lvl = np.floor(np.log(sc) / self.log_factor).astype(np.int64)
        g = view.grp[idx]
        first = np.ones(idx.size, dtype=bool)
        first[1:] = (g[1:] != g[:-1]) | (lvl[1:] != lvl[:-1])
        out: list[tuple[int, float]] = []
        for i, lv, s in zip(idx[first].tolist(), lvl[first].tolist(), sc[first].tolist(), strict=True):
            slot = int(view.slot[i])
            wid = int(view.wid[i])
            prev = self.last.get(slot)
            if prev is not None and (wid < prev[0] or (wid == prev[0] and lv <= prev[1])):
                continue
            self.last[slot] = (wid, lv)
            out.append((i, s))
        return out

    def reset(self, slots: np.ndarray) -> None:
        if self.last:
            for s in slots.tolist():
                self.last.pop(s, None)


def number(x: float) -> float | int:
    """A JSON-friendly figure: integral values as int."""
    xf = float(x)
    return int(xf) if xf.is_integer() and abs(xf) < 2**53 else round(xf, 6)
