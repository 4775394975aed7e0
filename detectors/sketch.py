"""Compact distinct-count sketches: a 32-register HyperLogLog per key and window, in a numpy table.

32 one-byte registers per sketch (32 bytes per key, per window, per distinct metric) give a relative
standard error of 1.04/sqrt(32) ~= 18% at large cardinalities; below ~80 distinct values the linear
counting correction applies and the error is a few percent (about 1 at 10 distinct values). Thresholds
on distinct counts should sit well above 100 so the error is of the threshold's order at worst. A
library sketch (datasketch) costs hundreds of bytes per object plus a Python object per key, which is
far over the per-key budget, hence this table.

Hashing is stable across processes (crc32 of the UTF-8 text, then a 32-bit avalanche mix) so a
snapshot restored in another process keeps counting the same values as the same values.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from detectors.kernels import hll_sums

REGISTERS = 32
_INDEX_BITS = 5
_REST_BITS = 32 - _INDEX_BITS
_REST_MASK = (1 << _REST_BITS) - 1
_ALPHA = 0.697  # HLL bias constant for m = 32
_POW2_NEG = np.ldexp(1.0, -np.arange(64, dtype=np.int32))


def _fmix32(h: np.ndarray) -> np.ndarray:
    """murmur3's finaliser: spreads crc32's linear structure over all bits."""
    h = h.astype(np.uint32, copy=True)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def hash_texts(texts: Sequence[str | None]) -> np.ndarray:
    """Stable 32-bit hash per text (``None`` hashes like ``"-"``, the log's missing marker).

    Each distinct string of the batch is hashed once.
    """
    uniq = dict.fromkeys(texts)
    for i, u in enumerate(uniq):
        uniq[u] = i  # type: ignore[assignment]
    inv = np.fromiter(map(uniq.__getitem__, texts), dtype=np.intp, count=len(texts))
    return hash_unique(list(uniq))[inv]


def hash_unique(uniq: Sequence[str | None]) -> np.ndarray:
    """``hash_texts`` of distinct texts (each hashed once by the caller's choice)."""
    spelled = uniq if None not in uniq else ["-" if s is None else s for s in uniq]
    try:
        raw = np.fromiter(map(zlib.crc32, map(str.encode, spelled)), dtype=np.uint32, count=len(uniq))
    except UnicodeEncodeError:  # lone surrogates from a percent-decoded field
        crcs = (zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in spelled)
        raw = np.fromiter(crcs, dtype=np.uint32, count=len(uniq))
    return _fmix32(raw)


def register_and_rank(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Register index (top 5 bits) and rank (leading zeros of the other 27 bits, plus one)."""
    idx = (h >> np.uint32(_REST_BITS)).astype(np.intp)
    rest = (h & np.uint32(_REST_MASK)).astype(np.float64)
    bit_length = np.frexp(rest)[1]  # 0 for rest == 0
    rank = (_REST_BITS + 1 - bit_length).astype(np.uint8)
    return idx, rank


def estimate(regs: np.ndarray) -> np.ndarray:
    """Cardinality estimate of each row of an ``(n, 32)`` uint8 register table."""
    if regs.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    z, zeros = hll_sums(np.ascontiguousarray(regs, dtype=np.uint8), _POW2_NEG)
    est = _ALPHA * REGISTERS * REGISTERS / z
    small = (est <= 2.5 * REGISTERS) & (zeros > 0)
    if small.any():
        est[small] = REGISTERS * np.log(REGISTERS / zeros[small])
    return est
