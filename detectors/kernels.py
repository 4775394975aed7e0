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


@njit(cache=True, nogil=True)
def sum_update(
    v: np.ndarray,
    rec: np.ndarray,
    gstart: np.ndarray,
    gend: np.ndarray,
    gw: np.ndarray,
    c: np.ndarray,
    us: np.ndarray,
    ustart: np.ndarray,
    uend: np.ndarray,
    unc: np.ndarray,
    same: np.ndarray,
    one: np.ndarray,
    cur: np.ndarray,
    prev: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """One sum metric of one store, for records sorted by (slot, window) in groups, keys (slots) in
    runs of groups. Returns per record the running value of its window (stored value plus the
    records so far), per group the stored value of its window before the batch (``base``), the
    group's total and the value of the window before it (stored plus the previous group's total
    when adjacent); then
    rolls each key's current/previous window state forward in ``cur``/``prev``. The arithmetic is
    numpy's (a sequential cumulative sum, the same additions in the same order), bit for bit."""
    n = rec.size
    G = gstart.size
    vals = np.empty(n, dtype=np.float64)
    cs = np.empty(n, dtype=np.float64)
    base = np.empty(G, dtype=np.float64)
    gtot = np.empty(G, dtype=np.float64)
    pb = np.empty(G, dtype=np.float64)
    run = np.empty(n, dtype=np.float64)
    acc = 0.0
    for u in range(us.size):
        slot = us[u]
        oc = cur[slot]
        op = prev[slot]
        for g in range(ustart[u], uend[u]):
            a = gstart[g]
            b = gend[g]
            for i in range(a, b):
                x = v[rec[i]]
                vals[i] = x
                acc = acc + x
                cs[i] = acc
            w = gw[g]
            cg = c[g]
            if w == cg:
                base[g] = np.float64(oc)
            elif w == cg - 1:
                base[g] = np.float64(prev[slot])
            else:
                base[g] = 0.0
            gtot[g] = cs[b - 1] - cs[a] + vals[a]
            bg = base[g]
            off = cs[a] - vals[a]
            for i in range(a, b):
                run[i] = bg + cs[i] - off
            if w - 1 == cg:
                p = np.float64(oc)
            elif w - 1 == cg - 1:
                p = np.float64(op)
            else:
                p = 0.0
            if g > ustart[u] and w == gw[g - 1] + 1:
                p = p + gtot[g - 1]
            elif g > 0:
                p = p + 0.0
            pb[g] = p
        if same[u]:
            ncv = np.float64(oc)
            npv = np.float64(op)
        elif one[u]:
            ncv = 0.0
            npv = np.float64(oc)
        else:
            ncv = 0.0
            npv = 0.0
        nc = unc[u]
        for g in range(ustart[u], uend[u]):
            if gw[g] == nc:
                ncv = ncv + gtot[g]
            elif gw[g] == nc - 1:
                npv = npv + gtot[g]
        cur[slot] = ncv
        prev[slot] = npv
    return run, base, gtot, pb


@njit(cache=True, nogil=True)
def group_plan(s, w, gstart, cur_id, emitted, prev_requests, closing, sentinel):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The per-group and per-key bookkeeping of a store update in one pass (see
    ``WindowStore.update``): records sorted by (slot, window) with groups starting at ``gstart``.

    Returns (has_old, gend, gs, gw, c, grp, ustart, uend, us, uc, unc, g_u, is_cur, is_prev,
    new_cur, new_prev, same, one, ga, bp, bc); when a group's window is older than its key's previous
    window (``has_old``) the caller drops those records first and the rest is not computed."""
    n = s.size
    G = gstart.size
    gend = np.empty(G, dtype=np.int64)
    gs = np.empty(G, dtype=np.int64)
    gw = np.empty(G, dtype=np.int64)
    c = np.empty(G, dtype=np.int64)
    has_old = False
    for g in range(G):
        a = gstart[g]
        gend[g] = gstart[g + 1] if g + 1 < G else n
        gs[g] = s[a]
        gw[g] = w[a]
        c[g] = cur_id[s[a]]
        if gw[g] < c[g] - 1 and c[g] != sentinel:
            has_old = True
    grp = np.empty(n, dtype=np.int64)
    ustart = np.empty(G, dtype=np.int64)
    g_u = np.empty(G, dtype=np.int64)
    is_cur = np.empty(G, dtype=np.bool_)
    is_prev = np.empty(G, dtype=np.bool_)
    U = 0
    if has_old:
        e = np.empty(0, dtype=np.int64)
        b = np.empty(0, dtype=np.bool_)
        return has_old, gend, gs, gw, c, grp, e, e, e, e, e, e, b, b, e, e, b, b, e, e, e
    for g in range(G):
        for i in range(gstart[g], gend[g]):
            grp[i] = g
        if g == 0 or gs[g] != gs[g - 1]:
            ustart[U] = g
            U += 1
        g_u[g] = U - 1
        is_cur[g] = gw[g] == c[g]
        is_prev[g] = gw[g] == c[g] - 1
    ustart = ustart[:U]
    uend = np.empty(U, dtype=np.int64)
    us = np.empty(U, dtype=np.int64)
    uc = np.empty(U, dtype=np.int64)
    unc = np.empty(U, dtype=np.int64)
    same = np.empty(U, dtype=np.bool_)
    one = np.empty(U, dtype=np.bool_)
    has_c = np.zeros(U, dtype=np.bool_)
    has_p = np.zeros(U, dtype=np.bool_)
    new_cur = np.empty(G, dtype=np.int64)
    new_prev = np.empty(G, dtype=np.int64)
    ga = np.empty(G, dtype=np.int64)
    bp = np.empty(U, dtype=np.int64)
    bc = np.empty(U, dtype=np.int64)
    k_nc = 0
    k_np = 0
    k_ga = 0
    k_bp = 0
    k_bc = 0
    for u in range(U):
        a = ustart[u]
        z = ustart[u + 1] if u + 1 < U else G
        uend[u] = z
        us[u] = gs[a]
        uc[u] = c[a]
        unc[u] = max(uc[u], gw[z - 1])
        same[u] = uc[u] == unc[u]
        one[u] = uc[u] == unc[u] - 1
        for g in range(a, z):
            if gw[g] == unc[u]:
                new_cur[k_nc] = g
                k_nc += 1
            if gw[g] == unc[u] - 1:
                new_prev[k_np] = g
                k_np += 1
            if is_cur[g]:
                has_c[u] = True
            if is_prev[g]:
                has_p[u] = True
    if closing:
        for g in range(G):
            if gw[g] < unc[g_u[g]] - 1 and gw[g] > emitted[gs[g]]:
                ga[k_ga] = g
                k_ga += 1
        for u in range(U):
            if uc[u] == sentinel:
                continue
            em = emitted[us[u]]
            if unc[u] >= uc[u] + 1 and not has_p[u] and uc[u] - 1 > em and prev_requests[us[u]] > 0:
                bp[k_bp] = u
                k_bp += 1
            if unc[u] >= uc[u] + 2 and not has_c[u] and uc[u] > em:
                bc[k_bc] = u
                k_bc += 1
    return (
        has_old, gend, gs, gw, c, grp, ustart, uend, us, uc, unc, g_u, is_cur, is_prev,
        new_cur[:k_nc], new_prev[:k_np], same, one, ga[:k_ga], bp[:k_bp], bc[:k_bc],
    )  # fmt: skip



@njit(cache=True, nogil=True)
def window_ids(t: np.ndarray, width: int) -> tuple[np.ndarray, bool]:  # pragma: no cover - compiled
    """``floor(t / width)`` as int64, exactly numpy's ``floor_divide`` (the exact floor of the real
    quotient): the rounded quotient is corrected until ``q * width <= t < (q + 1) * width``, with
    products exact below 2^52. False (and a partial result) if some time is not below 2^52 in
    magnitude (or NaN): the caller uses numpy then."""
    out = np.empty(t.size, dtype=np.int64)
    w = np.float64(width)
    for i in range(t.size):
        x = t[i]
        if not abs(x) < 4503599627370496.0:
            return out, False
        q = np.floor(x / w)
        if q * w > x:
            q -= 1.0
        elif (q + 1.0) * w <= x:
            q += 1.0
        out[i] = np.int64(q)
    return out, True


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
    window_ids(np.zeros(2), 60)
    # one key (slot 0) with one group of two records, in a store of each state dtype
    one = np.zeros(1, dtype=np.int64)
    gstart = window_breaks(i64, i64)[0]
    group_plan(i64, i64, gstart, np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int32),
               np.zeros(1, dtype=np.uint32), True, -(2**30))  # fmt: skip
    for dt in (np.uint32, np.float64, np.float32):
        yes, no = np.ones(1, dtype=np.bool_), np.zeros(1, dtype=np.bool_)
        sum_update(np.ones(2), np.arange(2), gstart, np.array([2]), one, one, one, one, one + 1, one,
                   yes, no, np.zeros(1, dtype=dt), np.zeros(1, dtype=dt))  # fmt: skip
    insert(th.copy(), ts.copy(), np.array([5, 6], dtype=np.int64), np.zeros(2, dtype=np.int32))
    _warm = True
