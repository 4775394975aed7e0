"""Thresholds for the accepted approximation: each of N shards sees about 1/N of each key.

Counts and sums over a window (rule thresholds, ``min_requests``, ``min_numerator``) are divided by N
(rounded up for integers); ratios are kept (numerator and denominator shrink alike). Distinct counts
do not divide cleanly (a path requested on every shard is counted on each): their thresholds are
divided too, which flags earlier, never later. Baselines learn each shard's own level and are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from detectors.config import RatioSpec, RuleSpec
from detectors.ml_spec import MLSpec


def _div(x: float, n: int) -> float:
    return math.ceil(x / n) if float(x).is_integer() else x / n


def scale_detectors(specs: Sequence[Any], n: int) -> tuple[list[Any], list[str]]:
    """Specs with thresholds for one shard of ``n``, and a description of each change."""
    out: list[Any] = []
    notes: list[str] = []
    for s in specs:
        upd: dict[str, Any] = {}
        if isinstance(s, RuleSpec):
            upd["threshold"] = _div(s.threshold, n)
            if s.min_requests:
                upd["min_requests"] = int(_div(s.min_requests, n))
        elif isinstance(s, RatioSpec):
            upd["min_requests"] = max(1, int(_div(s.min_requests, n)))
            if s.min_numerator:
                upd["min_numerator"] = _div(s.min_numerator, n)
        elif isinstance(s, MLSpec):
            upd["min_requests"] = max(1, int(_div(s.min_requests, n)))
        if upd:
            out.append(s.model_copy(update=upd))
            notes.append(f"{s.name}: " + ", ".join(f"{k} {getattr(s, k)} -> {v}" for k, v in upd.items()))
        else:
            out.append(s)
    return out, notes
