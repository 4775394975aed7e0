"""Runs: the re-keying stage's unit of exactly-once publication.

A run is a maximal sequence of consecutive raw records (in stream order) whose event times fall in
the same bucket; a record whose time cannot be read joins the run it follows. Where runs start
depends only on the records, never on how the KCL batched them, so a processor restarted from a
checkpoint at a run's end cuts the very same runs again: the detect stage recognises a re-published
run by the position of its last record and drops it (``detectors.partial_buffer``).

The run still open at the end of a batch (more records of its bucket may follow) is held back and
published with the next batch; the checkpoint stops before it (``RekeyPipeline.durable_position``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def line_times(lines: Sequence[bytes | str], index: int) -> np.ndarray:
    """The event time (field ``index`` of the tab-separated line) of every line; NaN if unreadable.
    Only decides where runs are cut: the records themselves go through the real parser."""
    out = np.full(len(lines), math.nan)
    for i, line in enumerate(lines):
        try:
            if isinstance(line, str):
                line = line.encode("utf-8", "surrogateescape")
            if index == 0:
                end = line.find(b"\t")
                field = line if end < 0 else line[:end]
            else:
                field = line.split(b"\t", index + 1)[index]
            out[i] = float(field)
        except (ValueError, IndexError):
            continue
    return out


def cut(times: np.ndarray, bucket_s: int) -> np.ndarray:
    """Run index (0, 1, ...) of every record: a new run starts where the bucket changes."""
    n = times.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    ok = np.isfinite(times)
    bucket = np.where(ok, np.floor_divide(np.where(ok, times, 0.0), bucket_s), math.nan)
    # forward-fill unreadable times with the bucket before them
    idx = np.maximum.accumulate(np.where(ok, np.arange(n), -1))
    filled = np.where(idx >= 0, bucket[np.maximum(idx, 0)], math.nan)
    start = np.zeros(n, dtype=bool)
    if n > 1:
        a, b = filled[:-1], filled[1:]
        start[1:] = np.isfinite(a) & np.isfinite(b) & (a != b)
    return np.cumsum(start).astype(np.int64)
