"""Compiled (numba) kernels of the line parser: one pass over a batch of lines held as one buffer.

Why compiled: per-record Python work is what costs (``bench/results/parse.md``). The kernel walks
the bytes of every line once, checks its structure, finds the start/end of the *wanted* fields only,
converts the wanted numbers to float64 and names the defect of a bad line, with exactly the rules of
:meth:`consumer.realtime.LineParser.parse_line` (the reference): same accepted syntax, same reason
(the first defect in column order), bit-identical numbers. What it cannot decide cheaply and exactly
it hands back to the reference (``SLOW``): a wanted text field with non-ASCII bytes (UTF-8 is then
validated by Python's decoder) and numbers with more than 15 significant digits or 22 decimals.

Text columns are not built here: :func:`gather` copies the wanted text fields of the good lines into
one tab-separated buffer, which Python turns into strings with one ``decode`` and one ``split``.

Numbers: the digits form an integer ``m < 10**15 < 2**53`` (exact in float64), ``10**k`` is exact
for ``k <= 22``, and IEEE division is correctly rounded, so ``m / 10**k`` is the double nearest to
the decimal text: what ``float()`` returns.

Compiled on first use and cached on disk (``cache=True``: next to this file, or in
``NUMBA_CACHE_DIR`` when the package directory is read-only).
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from consumer.columns import MAX_TIMESTAMP, MIN_TIMESTAMP
from consumer.scan_jit import kernel

# Column kinds (the kernel's view of consumer.fields.Kind).
TEXT = 0
INT = 1
FLOAT = 2

# Line status codes.
OK = 0
SLOW = 1  # the reference path decides
TOO_LONG = 2
EMPTY = 3
FIELD_COUNT = 4
BAD_TIMESTAMP = 5
BAD_NUMBER = 6

REASONS = {
    TOO_LONG: "too_long",
    EMPTY: "empty",
    FIELD_COUNT: "field_count",
    BAD_TIMESTAMP: "bad_timestamp",
    BAD_NUMBER: "bad_number",
}


_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
_MAGIC = np.uint64(0x0102_0408_1020_4080)
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)  # exact doubles

# Number parse outcomes.
_NUM_OK = 0
_NUM_BAD = 1
_NUM_SLOW = 2


@kernel(inline="always")
def _number(fld, allow_dot, pow10):  # type: ignore[no-untyped-def]
    """(outcome, value) of the present numeric field ``fld`` (not the ``-`` marker)."""
    if fld.shape[0] == 0:
        return _NUM_BAD, 0.0
    m = 0
    sig = 0  # significant digits (from the first non-zero one)
    frac = 0  # digits after the dot
    digits = 0
    dot = False
    for p in range(fld.shape[0]):
        c = fld[p]
        if c == 46 and allow_dot:
            if dot:
                return _NUM_BAD, 0.0
            dot = True
            continue
        d = c - 48
        if c < 48 or d > 9:
            return _NUM_BAD, 0.0
        digits += 1
        if dot:
            frac += 1
        if sig > 0 or d != 0:
            sig += 1
            if sig <= 15:
                m = m * 10 + d
    if digits == 0:
        return _NUM_BAD, 0.0
    if sig > 15 or frac > 22:
        return _NUM_SLOW, 0.0
    if frac == 0:
        return _NUM_OK, float(m)
    return _NUM_OK, float(m) / pow10[frac]


@kernel()
def scan(
    buf,
    masks,
    offs,
    n_fields,
    slot,
    last_wanted,
    kinds,
    is_time,
    num_slot,
    max_line,
    starts,
    ends,
    nums,
    status,
    good,
):  # type: ignore[no-untyped-def]
    """Scan lines ``buf[offs[i]:offs[i+1]]``; returns the number of good lines.

    - ``masks``: bit ``q`` of ``masks[w]`` is set when ``buf[64 * w + q]`` is a tab (see
      :func:`tab_masks`), plus one zero word.

    - ``slot[f]``: the column of field ``f`` (-1 if not wanted); ``last_wanted``: the highest wanted
      field; ``kinds[c]``/``is_time[c]``/``num_slot[c]``: per column (in column order, which is
      field order), its kind, whether it is the required timestamp, its row in ``nums`` (-1: text).
    - Outputs, compact over the good lines (row ``k`` = the k-th good line): ``starts[c, k]``,
      ``ends[c, k]`` (the field's span in ``buf``), ``nums[num_slot[c], k]``, ``good[k]`` (its
      input position). ``status[i]`` for every line (``OK``, ``SLOW`` or a reason code).
    """
    n = offs.shape[0] - 1
    n_cols = kinds.shape[0]
    pow10 = _POW10
    k = 0
    for i in range(n):
        s = offs[i]
        e = offs[i + 1]
        if e - s > max_line:
            status[i] = TOO_LONG
            continue
        if e - s >= 2 and buf[e - 1] == 10 and buf[e - 2] == 13:
            e -= 2
        elif e - s >= 1 and buf[e - 1] == 10:
            e -= 1
        # Index loops start at 0 over views: numba then needs no negative-index wraparound and
        # LLVM vectorises (0.1 instead of 0.4 ns per byte).
        line = buf[s:e]
        size = line.shape[0]
        blank = True
        for p in range(size):
            c = line[p]
            if c != 32 and (c < 9 or c > 13):
                blank = False
                break
        if blank:
            status[i] = EMPTY
            continue
        # Fields up to the last wanted one: record their spans, walking the tab bitmask (a
        # byte-by-byte branch on each tab costs a misprediction per field: ~2x slower).
        f = 0
        fs = s
        end = s + size
        wi = s >> 6
        m = masks[wi] & (_ONES << np.uint64(s & 63))
        walked = s  # after the last tab walked
        while f <= last_wanted:
            while m == 0:
                wi += 1
                if wi * 64 >= end:
                    break
                m = masks[wi]
            if m == 0:
                break
            t = wi * 64 + trailing_zeros(m)
            if t >= end:
                break
            m &= m - np.uint64(1)
            c = slot[f]
            if c >= 0:
                starts[c, k] = fs
                ends[c, k] = t
            f += 1
            fs = t + 1
            walked = fs
        if f <= last_wanted:  # no tab left in the line: field f runs to its end
            c = slot[f]
            if c >= 0:
                starts[c, k] = fs
                ends[c, k] = end
            tabs = f
        else:  # only count the remaining tabs
            rest = 0
            tail = buf[walked:end]
            for q in range(tail.shape[0]):
                rest += tail[q] == 9
            tabs = f + rest
        if tabs != n_fields - 1:
            status[i] = FIELD_COUNT
            continue
        # The wanted columns in field order: the first defect names the reason.
        st = OK
        for c in range(n_cols):
            fld = buf[starts[c, k] : ends[c, k]]
            kind = kinds[c]
            if kind == TEXT:
                high = 0
                for q in range(fld.shape[0]):
                    high |= fld[q]
                if high >= 128:
                    st = SLOW  # UTF-8 validity: Python's decoder decides
                    break
                continue
            if fld.shape[0] == 1 and fld[0] == 45:  # '-': missing
                if is_time[c]:
                    st = BAD_TIMESTAMP
                    break
                nums[num_slot[c], k] = np.nan
                continue
            outcome, v = _number(fld, kind == FLOAT, pow10)
            if outcome == _NUM_SLOW:
                st = SLOW
                break
            if outcome == _NUM_BAD:
                st = BAD_TIMESTAMP if is_time[c] else BAD_NUMBER
                break
            if is_time[c] and not (v >= MIN_TIMESTAMP and v < MAX_TIMESTAMP):
                st = BAD_TIMESTAMP
                break
            nums[num_slot[c], k] = v
        status[i] = st
        if st == OK:
            good[k] = i
            k += 1
    return k


@kernel()
def tab_masks(eq_words, masks):  # type: ignore[no-untyped-def]
    """Pack ``eq_words`` (a bool array, 1 where a byte is a tab, viewed as uint64) into 64-bit masks."""
    for b in range(masks.shape[0]):
        m = np.uint64(0)
        for j in range(8):
            # Each byte of the word is 0 or 1: the multiply gathers the 8 low bits in the top byte.
            m |= ((eq_words[b * 8 + j] * _MAGIC) >> np.uint64(56)) << np.uint64(8 * j)
        masks[b] = m


@kernel()
def gather(buf, starts, ends, cols, n):  # type: ignore[no-untyped-def]
    """The fields ``cols`` of the first ``n`` good lines, column after column, tab-separated, in one
    buffer; ``dash[j, k]``: the field is the missing marker ``-``; ``dashes[j]``: how many."""
    total = 0
    for j in range(cols.shape[0]):
        c = cols[j]
        for k in range(n):
            total += ends[c, k] - starts[c, k] + 1
    out = np.empty(max(total - 1, 0), dtype=np.uint8)
    dash = np.zeros((cols.shape[0], n), dtype=np.bool_)
    dashes = np.zeros(cols.shape[0], dtype=np.int64)
    w = 0
    for j in range(cols.shape[0]):
        c = cols[j]
        for k in range(n):
            fld = buf[starts[c, k] : ends[c, k]]
            size = fld.shape[0]
            if size == 1 and fld[0] == 45:
                dash[j, k] = True
                dashes[j] += 1
            if j > 0 or k > 0:
                out[w] = 9
                w += 1
            dst = out[w : w + size]
            for q in range(size):
                dst[q] = fld[q]
            w += size
    return out, dash, dashes
