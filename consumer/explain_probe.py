"""Read-only views of one key inside a running detector Engine (for ``cfguard explain``).

Nothing here writes to the engine: it reads the key table, the window stores and the detectors'
per-key state the way the detectors themselves read them, so explaining a key cannot change what
the engine decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.baseline import BaselineDetector
from detectors.config import BaselineSpec, RatioSpec, RuleSpec
from detectors.engine import Engine
from detectors.sketch import estimate
from detectors.store import SENTINEL, WindowStore


def store_label(store: WindowStore) -> str:
    """``1m``, ``5m status=403,404``, ``5m path=...``: which requests a store counts, over what."""
    parts = [_window(store.window_s)]
    if store.channel.path is not None:
        parts.append(f"path={store.channel.path}")
    if store.channel.status is not None:
        parts.append("status=" + ",".join(str(s) for s in store.channel.status))
    return " ".join(parts)


def _window(s: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def slot_of(engine: Engine, key_type: str, key: str) -> int | None:
    table = engine.tables.get(key_type)
    return None if table is None else table.slot_of(key)


def window_values(store: WindowStore, slot: int, which: str = "cur") -> dict[str, float]:
    """The key's metrics in its current (``cur``) or previous (``prev``) window of this store."""
    sums = store.cur if which == "cur" else store.prev
    out = {m: float(sums[m][slot]) for m in store.sums}
    for m in store.distincts:
        if which == "cur":
            out[m] = float(round(estimate(store.regs[m][slot : slot + 1])[0]))
        else:
            out[m] = float(round(store.prev_est[m][slot]))
    return out


def current_window(store: WindowStore, slot: int) -> int | None:
    w = int(store.cur_id[slot])
    return None if w == SENTINEL else w


def detector_store(engine: Engine, index: int) -> WindowStore:
    det = engine.detectors[index]
    need = det.needs()[0]
    return engine.stores[(det.spec.key, need.channel, need.window_s)]


def running_score(engine: Engine, index: int, slot: int, t: float) -> dict[str, Any] | None:
    """The detector's running value and score for the key's current window at event time ``t``,
    computed as the detector computes it (None for detectors scored only at window close: ML)."""
    det = engine.detectors[index]
    sp = det.spec
    store = detector_store(engine, index)
    cur = window_values(store, slot, "cur")
    prev = window_values(store, slot, "prev")
    wid = current_window(store, slot)
    if wid is None:
        return None
    weight = max(0.0, min(1.0, 1.0 - (t - wid * store.window_s) / store.window_s))

    def val(m: str, sliding: bool) -> float:
        return cur[m] + prev[m] * weight if sliding else cur[m]

    if isinstance(sp, RuleSpec):
        value = val(sp.metric, sp.sliding)
        requests = val("requests", sp.sliding)
        return {
            "value": value,
            "threshold": sp.threshold,
            "score": value / sp.threshold,
            "eligible": requests >= sp.min_requests,
        }
    if isinstance(sp, RatioSpec):
        num, den = val(sp.numerator, sp.sliding), val(sp.denominator, sp.sliding)
        ratio = num / den if den > 0 else 0.0
        return {
            "value": ratio,
            "threshold": sp.threshold,
            "score": ratio / sp.threshold,
            "eligible": den >= sp.min_requests and num >= sp.min_numerator,
            "numerator": num,
            "denominator": den,
        }
    if isinstance(sp, BaselineSpec) and isinstance(det, BaselineDetector):
        thr = float(det.thresholds(np.array([slot]))[0])
        value = cur[sp.metric]
        return {
            "value": value,
            "threshold": None if math.isinf(thr) else thr,
            "score": None if math.isinf(thr) else value / thr,
            "eligible": not math.isinf(thr),
            "history_windows": int(det.count[slot]),
        }
    return None
