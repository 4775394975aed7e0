"""Compiled loops (numba) for the engine's per-record work that numpy can only express in several
passes: probing the key index, the per-slot last-seen maximum, grouping by (slot, window).

Each kernel is a plain loop over arrays, cached on disk (``cache=True``): the first process on a
machine compiles them (about a second in all), later ones load them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EMPTY, _TOMB = 0, 1  # as in detectors.keytable


@njit(cache=True, nogil=True)
def probe(th: np.ndarray, ts: np.ndarray, h: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Slot of each hash in the open-addressing index (linear probing), -1 where absent."""
    mask = th.size - 1
    out = np.empty(h.size, dtype=np.int64)
    for i in range(h.size):
        x = h[i]
        p = x & mask
        while True:
            y = th[p]
            if y == x:
                out[i] = ts[p]
                break
            if y == _EMPTY:
                out[i] = -1
                break
            p = (p + 1) & mask
    return out


@njit(cache=True, nogil=True)
def positions(th: np.ndarray, h: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Index position of each hash, -1 where absent."""
    mask = th.size - 1
    out = np.empty(h.size, dtype=np.int64)
    for i in range(h.size):
        x = h[i]
        p = x & mask
        while True:
            y = th[p]
            if y == x:
                out[i] = p
                break
            if y == _EMPTY:
                out[i] = -1
                break
            p = (p + 1) & mask
    return out


@njit(cache=True, nogil=True)
def max_at(target: np.ndarray, idx: np.ndarray, values: np.ndarray) -> None:  # pragma: no cover
    """``target[idx[i]] = max(target[idx[i]], values[i])`` for every ``idx[i] >= 0``."""
    for i in range(idx.size):
        j = idx[i]
        if j >= 0 and values[i] > target[j]:
            target[j] = values[i]


@njit(cache=True, nogil=True)
def window_breaks(s: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, bool]:  # pragma: no cover
    """For records sorted by slot: the group starts (new slot or new window) and whether the windows
    are non-decreasing within every slot (else the caller must sort by window within slots)."""
    n = s.size
    starts = np.empty(n, dtype=np.int64)
    k = 0
    ordered = True
    if n:
        starts[0] = 0
        k = 1
    for i in range(1, n):
        if s[i] != s[i - 1]:
            starts[k] = i
            k += 1
        elif w[i] != w[i - 1]:
            if w[i] < w[i - 1]:
                ordered = False
            starts[k] = i
            k += 1
    return starts[:k], ordered


@njit(cache=True, nogil=True)
def first_seen(
    h: np.ndarray, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Distinct hashes in order of first occurrence: (first index of each, index of each record's
    hash among them, whether any record of the hash is ``wanted``), with a scratch hash set."""
    n = h.size
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    cell = np.full(size, -1, dtype=np.int64)  # -> distinct number
    first = np.empty(n, dtype=np.int64)
    inv = np.empty(n, dtype=np.int64)
    has = np.zeros(n, dtype=np.bool_)
    k = 0
    for i in range(n):
        x = h[i]
        p = (x ^ (x >> 29)) & mask
        while True:
            d = cell[p]
            if d < 0:
                cell[p] = k
                first[k] = i
                inv[i] = k
                if wanted[i]:
                    has[k] = True
                k += 1
                break
            if h[first[d]] == x:
                inv[i] = d
                if wanted[i]:
                    has[d] = True
                break
            p = (p + 1) & mask
    return first[:k], inv, has[:k]


@njit(cache=True, nogil=True)
def insert(th: np.ndarray, ts: np.ndarray, h: np.ndarray, slots: np.ndarray) -> int:  # pragma: no cover
    """Put new hashes (not in the index) into the first free or tombstone cell of their probe
    sequence; returns how many tombstones were reused."""
    mask = th.size - 1
    reused = 0
    for i in range(h.size):
        x = h[i]
        p = x & mask
        while True:
            y = th[p]
            if y == _EMPTY or y == _TOMB:
                if y == _TOMB:
                    reused += 1
                th[p] = x
                ts[p] = slots[i]
                break
            p = (p + 1) & mask
    return reused


_warm = False


def warm() -> None:
    """Load (or compile) every kernel for the argument types the engine passes, so the first batch
    of a process does not pay for it (about 0.3-2 s, depending on the machine's load): a live
    consumer would otherwise fall that much behind on its first records."""
    global _warm
    if _warm:
        return
    i64 = np.zeros(2, dtype=np.int64)
    th = np.zeros(16, dtype=np.int64)
    ts = np.full(16, -1, dtype=np.int32)
    probe(th, ts, i64)
    positions(th, i64)
    max_at(np.zeros(2), np.full(2, -1, dtype=np.int64), np.zeros(2))
    window_breaks(i64, i64)
    first_seen(i64, np.zeros(2, dtype=np.bool_))
    hll_sums(np.zeros((2, 32), dtype=np.uint8), np.ones(64))
    insert(th.copy(), ts.copy(), np.array([5, 6], dtype=np.int64), np.zeros(2, dtype=np.int32))
    _warm = True


@njit(cache=True, nogil=True)
def hll_sums(regs: np.ndarray, pow2neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row of a uint8 register table: the sum of 2^-register and the number of zero registers.
    The sum is exact in any order (ranks are at most 28: 32 powers of two between 2^0 and 2^-28
    need 34 bits of a double's 53), so it equals numpy's pairwise sum bit for bit."""
    n, m = regs.shape
    z = np.empty(n, dtype=np.float64)
    zeros = np.empty(n, dtype=np.int64)
    for i in range(n):
        acc = 0.0
        c = 0
        for j in range(m):
            r = regs[i, j]
            acc += pow2neg[r]
            if r == 0:
                c += 1
        z[i] = acc
        zeros[i] = c
    return z, zeros
