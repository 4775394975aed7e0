"""Compiled (numba) pre-filter for header keys: which rows of a batch can hold a header at all.

A ``header`` key reads one header out of ``cs-headers`` (~500 characters per record). Most records
do not carry the header, and finding that out per record in Python (``raw.lower()`` then ``in``) was
the costliest step of key extraction. This kernel answers it for a whole column at once: the
column's texts (ASCII, joined) are searched case-insensitively for the header name, and only the
rows that contain it go through :func:`consumer.accessors.header`, the definition.
"""

from __future__ import annotations

import numpy as np

from consumer.scan_jit import kernel


@kernel()
def rows_containing(buf, starts, ends, want):  # type: ignore[no-untyped-def]
    """``out[i]``: the ASCII-lower-cased text ``buf[starts[i]:ends[i]]`` contains ``want`` (lower case,
    at least 2 bytes)."""
    n = starts.shape[0]
    m = want.shape[0]
    # ``c | 32`` is the lower case of a letter, and equal for '-' and '\r': a superset of the rows
    # whose lower-cased text has the first two characters, found without a branch (vectorised).
    x0 = want[0] | 32
    x1 = want[1] | 32
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        row = buf[starts[i] : ends[i]]
        size = row.shape[0]
        if size < m:
            continue
        cand = 0
        for p in range(size - 1):
            cand += ((row[p] | 32) == x0) & ((row[p + 1] | 32) == x1)
        if cand == 0:
            continue
        # The exact search, only in the rows that may contain the name.
        for p in range(size - m + 1):
            j = 0
            while j < m:
                c = row[p + j]
                if 65 <= c <= 90:
                    c += 32
                if c != want[j]:
                    break
                j += 1
            if j == m:
                out[i] = True
                break
    return out
