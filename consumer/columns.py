"""The wanted columns of a parsed batch: what a column is, and how its raw values become typed values.

Split from ``consumer.realtime`` (the line structure and the fast/reference paths) and shared with
``consumer.standard``. Conversion is per column: repetitive fields go through a small table of
converted values kept across batches (each distinct value validated and converted once, equal texts
sharing one ``str``); other numbers through ``float`` after one ``translate`` check of the column;
fixed-width epoch timestamps vectorised. Figures: ``bench/results/parse.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress
from urllib.parse import unquote

import numpy as np

from consumer.fields import Kind

# Event times outside this range are rejected: a garbage timestamp would move event-time windows.
MIN_TIMESTAMP = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_TIMESTAMP = 4_102_444_800.0  # 2100-01-01T00:00:00Z

_DIGITS = b"0123456789"
_TAB = b"\t"
_DASH = b"-"


@dataclass(frozen=True, slots=True)
class Column:
    """One wanted field: where it is in a line and how to convert it."""

    name: str
    index: int
    kind: Kind
    decode: bool = False
    required_time: bool = False  # the timestamp: must be present and plausible

    @property
    def numeric(self) -> bool:
        return self.kind is not Kind.TEXT


@lru_cache(maxsize=65536)
def _url_decode(text: str) -> str:
    return unquote(text)


def decode_value(value: str) -> str:
    return _url_decode(value) if "%" in value else value


def parse_number(raw: bytes, kind: Kind) -> float | None:
    """Reference conversion of one present numeric field; ``None`` when it is not a valid number."""
    allowed = _DIGITS if kind is Kind.INT else _DIGITS + b"."
    if not raw or raw.translate(None, allowed):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def timestamp_ok(value: float) -> bool:
    return MIN_TIMESTAMP <= value < MAX_TIMESTAMP


_SAMPLE = 64


class Table:
    """Converted values of one repetitive column, and whether the last chunk brought new ones."""

    __slots__ = ("missed", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, object] = {}
        self.missed = False


def _repetitive(raw: list[bytes], table: Table) -> bool:
    """Few distinct values (status, method, result type, UA...): convert each distinct value once."""
    if table.values:
        return True
    sample = raw[:_SAMPLE]
    return len(set(sample)) * 2 <= len(sample)


_TABLE_LIMIT = 4096


def _through_table(
    raw: list[bytes],
    table: Table,
    convert: Callable[[bytes], tuple[bool, object]],
    bad: set[int],
) -> list[object] | None:
    """``raw`` mapped through a conversion table, converting unseen values once; ``None`` when the
    column turns out not to be repetitive (the table is then dropped)."""
    values = table.values
    if not table.missed:  # the usual case: every value seen before, one pass
        try:
            return list(map(values.__getitem__, raw))
        except KeyError:
            pass
    new = set(raw).difference(values)
    table.missed = bool(new)  # a column with a steady trickle of new values skips the attempt
    if len(new) * 2 > len(raw) and len(raw) >= _SAMPLE:
        values.clear()
        table.missed = False
        return None
    if len(values) + len(new) > _TABLE_LIMIT:
        values.clear()
        new = set(raw)
    invalid: dict[bytes, object] = {}
    for x in new:
        ok, v = convert(x)
        if ok:
            values[x] = v
        else:
            invalid[x] = v
    if not invalid:
        return list(map(values.__getitem__, raw))
    out: list[object] = []
    for i, x in enumerate(raw):
        if x in invalid:
            bad.add(i)
            out.append(invalid[x])
        else:
            out.append(values[x])
    return out


def numbers_column(raw: list[bytes], c: Column, bad: set[int], table: Table) -> np.ndarray:
    """float64 column (NaN for ``-``); rows that fail validation are added to ``bad``."""
    n = len(raw)
    arr: np.ndarray | None = None
    if c.required_time and (fixed := _fixed_width_timestamps(raw)) is not None:
        return fixed  # in range by construction of the check
    dashes = raw.count(_DASH)
    if dashes == n:  # e.g. sc-range-start: almost always missing
        arr = np.full(n, np.nan)
    elif dashes * 4 > n * 3 and not c.required_time:
        # Mostly missing: convert only the present values.
        present = list(compress(range(n), map(_DASH.__ne__, raw)))
        sub_bad: set[int] = set()
        arr = np.full(n, np.nan)
        arr[present] = _numbers_distinct([raw[i] for i in present], c, sub_bad)
        bad.update(present[i] for i in sub_bad)
    elif _repetitive(raw, table):
        kind = c.kind

        def convert(x: bytes) -> tuple[bool, object]:
            if x == _DASH:
                return True, math.nan
            v = parse_number(x, kind)
            return (False, math.nan) if v is None else (True, v)

        values = _through_table(raw, table, convert, bad)
        if values is not None:
            arr = np.fromiter(values, np.float64, n)
    if arr is None:
        arr = _numbers_distinct(raw, c, bad)
    if c.required_time:
        with np.errstate(invalid="ignore"):
            ok = (arr >= MIN_TIMESTAMP) & (arr < MAX_TIMESTAMP)
        if not ok.all():
            bad.update(np.flatnonzero(~ok).tolist())
    return arr


_TS_DIGITS = np.array([*range(10), 11, 12, 13])
_TS_POWERS = 10 ** np.arange(12, -1, -1, dtype=np.int64)


def _fixed_width_timestamps(raw: list[bytes]) -> np.ndarray | None:
    """Vectorised path for the usual ``dddddddddd.ddd`` timestamps; None when any is not of that form.

    Exact: the 13 digits make an integer below 2**53 and the division by 1000 is correctly rounded,
    which is what ``float()`` of the text gives.
    """
    n = len(raw)
    joined = b"".join(raw)
    if len(joined) != 14 * n:
        return None
    chars = np.frombuffer(joined, dtype=np.uint8).reshape(n, 14)
    if not (chars[:, 10] == 46).all():
        return None
    digits = chars[:, _TS_DIGITS] - np.uint8(48)  # wraps above 9 for anything that is not a digit
    if (digits > 9).any():
        return None
    values = (digits.astype(np.int64) @ _TS_POWERS) / 1000.0
    if not ((values >= MIN_TIMESTAMP) & (values < MAX_TIMESTAMP)).all():
        return None
    return values


def _numbers_distinct(raw: list[bytes], c: Column, bad: set[int]) -> np.ndarray:
    n = len(raw)
    dashes = raw.count(_DASH)
    if dashes == n:
        return np.full(n, np.nan)
    allowed = (_DIGITS + _DASH) if c.kind is Kind.INT else (_DIGITS + b".-")
    joined = _TAB.join(raw)
    # Only digits (and '.' for FLOAT), and no '-' but the bare missing marker: then float() is exact.
    if not joined.translate(None, allowed + _TAB) and joined.count(_DASH) == dashes:
        try:
            if dashes:
                return np.fromiter(map(float, [b"nan" if x == _DASH else x for x in raw]), np.float64, n)
            return np.fromiter(map(float, raw), np.float64, n)
        except ValueError:  # '', '.', '1.2.3'
            pass
    arr = np.empty(n, dtype=np.float64)
    for i, x in enumerate(raw):
        if x == _DASH:
            arr[i] = np.nan
            continue
        v = parse_number(x, c.kind)
        if v is None:
            bad.add(i)
            arr[i] = np.nan
        else:
            arr[i] = v
    return arr


def texts_column(raw: list[bytes], c: Column, bad: set[int], table: Table) -> list[str | None]:
    if _repetitive(raw, table):
        url = c.decode

        def convert(x: bytes) -> tuple[bool, object]:
            try:
                v = x.decode()
            except UnicodeDecodeError:
                return False, None
            if v == "-":
                return True, None
            return True, (decode_value(v) if url else v)

        values = _through_table(raw, table, convert, bad)
        if values is not None:
            return values  # type: ignore[return-value]
    try:
        out: list[str | None] = list(map(bytes.decode, raw))
    except UnicodeDecodeError:
        out = []
        for i, x in enumerate(raw):
            try:
                out.append(x.decode())
            except UnicodeDecodeError:
                bad.add(i)
                out.append(None)
    if "-" in out:
        out = [None if v == "-" else v for v in out]
    if c.decode:
        out = [None if v is None else (_url_decode(v) if "%" in v else v) for v in out]
    return out
