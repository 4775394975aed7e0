"""Which records of a batch count, in event time: the watermark, allowed lateness, future outliers.

The watermark is the newest event time seen. A record older than the watermark at its arrival
minus ``allowed_lateness_s`` is too late (dropped, ``late_dropped``); older but within the lateness
it still counts (``late_accepted``); a record without a finite time is ``bad_time``. A few records
far ahead of the rest (corrupt timestamps) are dropped (``future_dropped``) rather than allowed to
drag the watermark forward and make every later record too late.
"""

from __future__ import annotations

import math

import numpy as np


def admit(
    t: np.ndarray, watermark: float, lateness_s: float, max_future_s: float, counters: dict[str, int]
) -> tuple[np.ndarray, float]:
    """Mask of the records of times ``t`` (in arrival order) that count, and the new watermark.

    ``counters`` (``records``, ``late_accepted``, ``late_dropped``, ``bad_time``,
    ``future_dropped``) are incremented in place."""
    n = t.shape[0]
    finite = np.isfinite(t)
    c = counters
    if finite.any():
        future = future_outliers(t, finite, watermark, max_future_s)
        if future is not None:
            c["future_dropped"] += int(future.sum())
            finite &= ~future
    tf = np.where(finite, t, -np.inf)
    acc = np.maximum.accumulate(tf)
    before = np.empty(n)
    before[0] = watermark
    np.maximum(acc[:-1], watermark, out=before[1:])
    late = finite & (t < before)
    too_late = late & (t < before - lateness_s)
    ok = finite & ~too_late
    c["records"] += n
    c["late_accepted"] += int((late & ~too_late).sum())
    c["late_dropped"] += int(too_late.sum())
    c["bad_time"] += int((~np.isfinite(t)).sum())
    return ok, max(watermark, float(acc[-1]))


def future_outliers(
    t: np.ndarray, finite: np.ndarray, watermark: float, max_future_s: float
) -> np.ndarray | None:
    """Mask of the records to drop as far in the future, or None to keep all.

    In the sorted times (after the watermark), the first gap longer than ``max_future_s`` splits
    the batch: if at most 1% of it (at least one record) lies beyond, those records are outliers;
    if more do, the stream really jumped (a quiet period, a replay of another day) and all are kept.
    """
    tf = t[finite]
    low = float(tf.min()) if not math.isfinite(watermark) else min(watermark, float(tf.min()))
    if float(tf.max()) - low <= max_future_s:
        return None  # the usual case: no gap can be that long
    st = np.sort(tf)
    chain = st if not math.isfinite(watermark) else np.concatenate(([watermark], st))
    gaps = np.flatnonzero(np.diff(chain) > max_future_s)
    if gaps.size == 0:
        return None
    cut = float(chain[gaps[0] + 1])
    beyond = finite & (t >= cut)
    if int(beyond.sum()) > max(1, t.size // 100):
        return None
    return beyond
