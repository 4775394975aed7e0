"""Fast, exact parsing of CloudFront real-time log lines into a columnar ``RecordBatch``.

One Kinesis record carries one line: tab-separated fields in CloudFront's fixed catalog order,
``-`` for a missing value, a trailing ``\\n``. The configured field list decides the columns.

Why it is built this way (figures in ``bench/results/parse.md``): per-record Python work is what
costs, so a batch is processed in chunks of ~1000 lines as *one* buffer: the lines joined by a tab,
then one C ``split(b"\\t")``, and the wanted columns are slices of that flat list. Line structure is
verified without a per-line Python loop: every line ends with its one ``\\n`` (one numpy count over
the buffer) and every N-th element of the split ends with it. Columns are then converted one at a
time: repetitive fields (status, method, result type, user agent, cookie...) through a small
per-column table of converted values kept across batches (each distinct value is validated and
converted once, and equal texts share one ``str``); other numbers with ``float`` in C after one
``translate`` check of the whole column; ``dddddddddd.ddd`` timestamps vectorised.

Anything the fast path does not accept goes through :func:`LineParser.parse_line`, the reference
semantics for one line, which decides whether the line is a record or malformed (and why); the fast
path only ever accepts what ``parse_line`` accepts, with the same values (tests check both agree).

Reason codes: ``too_long`` (more than ``max_line_bytes``), ``empty``, ``field_count``,
``invalid_utf8`` (in a field that is read), ``bad_timestamp`` (missing, not a number, or outside
2000..2100), ``bad_number``, ``not_bytes`` (an input that is neither bytes nor str).
Fields nobody asked for are neither converted nor validated beyond being counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat

import numpy as np

from consumer import fields as catalog
from consumer.columns import (
    Column,
    Table,
    decode_value,
    numbers_column,
    parse_number,
    texts_column,
    timestamp_ok,
)
from consumer.fields import Kind
from detectors.batch import RecordBatch

CHUNK = 1024  # lines per fast-path pass: keeps the joined buffer and the flat list in cache

_NL = b"\n"
_TAB = b"\t"
_DASH = b"-"


@dataclass(slots=True)
class ParseResult:
    """Parsed records of one input batch, and the lines that were not records (with a reason)."""

    batch: RecordBatch
    malformed: list[tuple[str, bytes]] = field(default_factory=list)


class LineParser:
    """Columns of a fixed TSV layout: the per-line reference path and the chunked fast path.

    ``n_fields`` is the number of fields per line, ``columns`` the wanted ones. Shared by the
    real-time parser and the standard (W3C) parser.
    """

    def __init__(self, n_fields: int, columns: Sequence[Column], *, max_line_bytes: int = 65536) -> None:
        if n_fields < 1:
            raise ValueError("a layout needs at least one field")
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.n_fields = n_fields
        self.columns = tuple(columns)
        self.max_line_bytes = max_line_bytes
        self._scratch = np.empty(1 << 16, dtype=bool)
        # Per column, converted values of repetitive fields, kept across chunks (bounded).
        self._tables: dict[str, Table] = {c.name: Table() for c in self.columns}
        for c in self.columns:
            if not 0 <= c.index < n_fields:
                raise ValueError(f"column {c.name} at index {c.index} outside a {n_fields}-field layout")

    # ----------------------------------------------------------------- reference: one line
    def parse_line(self, line: bytes) -> tuple[str, None] | tuple[None, tuple[object, ...]]:
        """``(reason, None)`` for a malformed line, ``(None, values)`` (one per column) otherwise."""
        if len(line) > self.max_line_bytes:
            return "too_long", None
        if line.endswith(b"\r\n"):
            line = line[:-2]
        elif line.endswith(_NL):
            line = line[:-1]
        if not line.strip():
            return "empty", None
        parts = line.split(_TAB)
        if len(parts) != self.n_fields:
            return "field_count", None
        values: list[object] = []
        for c in self.columns:  # the first defect in field order names the reason
            raw = parts[c.index]
            if c.numeric:
                if raw == _DASH:
                    if c.required_time:
                        return "bad_timestamp", None
                    values.append(math.nan)
                    continue
                num = parse_number(raw, c.kind)
                if c.required_time and (num is None or not timestamp_ok(num)):
                    return "bad_timestamp", None
                if num is None:
                    return "bad_number", None
                values.append(num)
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return "invalid_utf8", None
                if text == "-":
                    values.append(None)
                else:
                    values.append(decode_value(text) if c.decode else text)
        return None, tuple(values)

    # ----------------------------------------------------------------- whole batches
    def parse_columns(
        self, lines: Sequence[bytes]
    ) -> tuple[dict[str, np.ndarray | list[str | None]], list[int], list[tuple[str, bytes]]]:
        """Columns of the valid lines, their input positions, and the malformed lines with reasons."""
        out: dict[str, list] = {c.name: [] for c in self.columns}
        kept: list[int] = []
        malformed: list[tuple[str, bytes]] = []
        for start in range(0, len(lines), CHUNK):
            chunk = lines[start : start + CHUNK]
            cols, positions, bad = self._chunk(chunk)
            for name, col in cols.items():
                out[name].append(col)
            if len(positions) == len(chunk):  # all kept, in order
                kept.extend(range(start, start + len(chunk)))
            else:
                kept.extend(p + start for p in positions)
            malformed.extend(bad)
        result: dict[str, np.ndarray | list[str | None]] = {}
        for c in self.columns:
            parts = out[c.name]
            if c.numeric:
                result[c.name] = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
            else:
                joined: list[str | None] = []
                for p in parts:
                    joined.extend(p)
                result[c.name] = joined
        return result, kept, malformed

    def _chunk(
        self, lines: Sequence[bytes]
    ) -> tuple[dict[str, np.ndarray | list[str | None]], list[int], list[tuple[str, bytes]]]:
        n = len(lines)
        fast = self._fast(lines)
        others: list[int] = []
        if fast is not None:
            good_idx = list(range(n))
        else:
            # Structure check failed somewhere in the chunk: find the lines that can take the fast path.
            eligible = self._eligible(lines)
            good_idx = [i for i, ok in enumerate(eligible) if ok]
            others = [i for i, ok in enumerate(eligible) if not ok]
            fast = self._fast([lines[i] for i in good_idx]) if good_idx else None
            if fast is None:  # nothing eligible (or, defensively, the check still fails)
                return self._merge(lines, None, [], list(range(n)))
        cols, bad_rows = fast
        if bad_rows:
            # Rows a column check flagged: the reference path decides (and names the reason).
            keep = [True] * len(good_idx)
            for r in bad_rows:
                keep[r] = False
                others.append(good_idx[r])
            cols = _select(cols, keep)
            good_idx = list(compress(good_idx, keep))
        if not others:
            return cols, good_idx, []
        return self._merge(lines, cols, good_idx, sorted(others))

    def _eligible(self, lines: Sequence[bytes]) -> list[bool]:
        tabs = self.n_fields - 1
        limit = self.max_line_bytes
        return [
            len(line) <= limit
            and line.endswith(_NL)
            and line.count(_NL) == 1
            and line.count(_TAB) == tabs
            and len(line) > 1
            for line in lines
        ]

    def _merge(
        self,
        lines: Sequence[bytes],
        cols: dict[str, np.ndarray | list[str | None]] | None,
        fast_positions: list[int],
        slow_positions: list[int],
    ) -> tuple[dict[str, np.ndarray | list[str | None]], list[int], list[tuple[str, bytes]]]:
        """Run the reference path on ``slow_positions`` and merge its records in input order."""
        malformed: list[tuple[str, bytes]] = []
        slow_rows: list[tuple[int, tuple[object, ...]]] = []
        for i in slow_positions:
            reason, values = self.parse_line(lines[i])
            if reason is not None:
                malformed.append((reason, bytes(lines[i])))
            else:
                assert values is not None
                slow_rows.append((i, values))
        if not slow_rows:
            if cols is None:
                cols = self._empty_columns()
            return cols, fast_positions, malformed
        positions = sorted(fast_positions + [i for i, _ in slow_rows])
        slot = {p: k for k, p in enumerate(positions)}
        merged: dict[str, np.ndarray | list[str | None]] = {}
        for j, c in enumerate(self.columns):
            if c.numeric:
                arr = np.empty(len(positions), dtype=np.float64)
                if cols is not None and fast_positions:
                    arr[[slot[p] for p in fast_positions]] = cols[c.name]
                for i, values in slow_rows:
                    arr[slot[i]] = values[j]
                merged[c.name] = arr
            else:
                lst: list[str | None] = [None] * len(positions)
                if cols is not None:
                    for p, v in zip(fast_positions, cols[c.name], strict=True):
                        lst[slot[p]] = v
                for i, values in slow_rows:
                    lst[slot[i]] = values[j]  # type: ignore[assignment]
                merged[c.name] = lst
        return merged, positions, malformed

    def _empty_columns(self) -> dict[str, np.ndarray | list[str | None]]:
        return {c.name: (np.empty(0, dtype=np.float64) if c.numeric else []) for c in self.columns}

    # ----------------------------------------------------------------- the fast path
    def _fast(
        self, lines: Sequence[bytes]
    ) -> tuple[dict[str, np.ndarray | list[str | None]], set[int]] | None:
        """Columns for a chunk whose structure is valid, plus rows whose values need the slow path.

        ``None`` when the structure check fails (some line has the wrong field count, no or an
        inner newline, or is too long).
        """
        n = len(lines)
        if n == 0:
            return self._empty_columns(), set()
        lens = np.fromiter(map(len, lines), np.int64, n)
        if lens.max() > self.max_line_bytes or lens.min() == 0:
            return None
        # One buffer: the lines joined by a tab, so that one split gives N elements per line.
        buf = _TAB.join(lines)
        arr = np.frombuffer(buf, dtype=np.uint8)
        ends = int(np.count_nonzero(arr[np.cumsum(lens) - 1 + np.arange(n)] == 10))
        if ends == 0:  # lines handed over without their newline
            buf = b"\n\t".join(lines) + _NL
            arr = np.frombuffer(buf, dtype=np.uint8)
        elif ends != n:
            return None
        # Exactly one newline per line: each line's own terminator. (A reused scratch buffer for the
        # comparison: a fresh 1 MB array per chunk costs more in page faults than the compare.)
        if self._scratch.shape[0] < arr.shape[0]:
            self._scratch = np.empty(max(arr.shape[0], 2 * self._scratch.shape[0]), dtype=bool)
        eq = self._scratch[: arr.shape[0]]
        np.equal(arr, 10, out=eq)
        if np.count_nonzero(eq) != n:
            return None
        nf = self.n_fields
        flat = buf.split(_TAB)
        if len(flat) != n * nf:
            return None
        # Every N-th element must end with a newline. The n newlines are the n line ends, so the
        # k-th such element ends at line k's end: each line has exactly N-1 tabs.
        lasts = flat[nf - 1 :: nf]
        if sum(map(bytes.endswith, lasts, repeat(_NL))) != n:
            return None
        cols: dict[str, np.ndarray | list[str | None]] = {}
        bad: set[int] = set()
        for c in self.columns:
            if c.index == nf - 1:
                if ends:  # the line's own "\n" or "\r\n"
                    raw = [x[:-2] if x.endswith(b"\r\n") else x[:-1] for x in lasts]
                else:  # the "\n" added above; a bare "\r" of the line stays, as in parse_line
                    raw = [x[:-1] for x in lasts]
            else:
                raw = flat[c.index :: nf]
            if c.numeric:
                cols[c.name] = numbers_column(raw, c, bad, self._tables[c.name])
            else:
                cols[c.name] = texts_column(raw, c, bad, self._tables[c.name])
        return cols, bad


def _select(
    cols: dict[str, np.ndarray | list[str | None]], keep: list[bool]
) -> dict[str, np.ndarray | list[str | None]]:
    mask = np.asarray(keep, dtype=bool)
    out: dict[str, np.ndarray | list[str | None]] = {}
    for name, col in cols.items():
        out[name] = col[mask] if isinstance(col, np.ndarray) else list(compress(col, keep))
    return out


def to_bytes(lines: Iterable[object]) -> tuple[list[bytes], list[tuple[str, bytes]], list[int]]:
    """Inputs as bytes; str is UTF-8 encoded. Returns (lines, rejected, positions of the lines)."""
    items = lines if isinstance(lines, list) else list(lines)
    if set(map(type, items)) <= {bytes}:
        return items, [], list(range(len(items)))  # type: ignore[return-value]
    out: list[bytes] = []
    rejected: list[tuple[str, bytes]] = []
    positions: list[int] = []
    for i, x in enumerate(items):
        if isinstance(x, bytes):
            out.append(x)
        elif isinstance(x, str):
            try:
                out.append(x.encode("utf-8"))
            except UnicodeEncodeError:
                rejected.append(("invalid_utf8", x.encode("utf-8", "backslashreplace")))
                continue
        elif isinstance(x, bytearray | memoryview):
            out.append(bytes(x))
        else:
            rejected.append(("not_bytes", repr(x)[:200].encode("utf-8", "backslashreplace")))
            continue
        positions.append(i)
    return out, rejected, positions


class RealtimeParser:
    """Parse batches of real-time log lines for a configured field list.

    ``fields``: the real-time log config's field list (any order: CloudFront writes catalog order).
    ``wanted``: the fields anyone reads (``timestamp`` is always added); only these are converted.
    ``decode``: URL-encoded fields to percent-decode (others are left as logged).
    """

    def __init__(
        self,
        fields: Iterable[str],
        wanted: Iterable[str],
        *,
        decode: Iterable[str] = (),
        max_line_bytes: int = 65536,
    ) -> None:
        self.fields = catalog.ordered(tuple(fields))
        wanted_set = set(wanted) | {"timestamp"}
        missing = sorted(wanted_set - set(self.fields), key=lambda n: catalog.POSITION.get(n, 10**6))
        if missing:
            raise ValueError(f"field(s) wanted but not in the configured field list: {', '.join(missing)}")
        decode_set = set(decode)
        bad_decode = sorted(
            n for n in decode_set if n in catalog.BY_NAME and catalog.BY_NAME[n].kind != Kind.TEXT
        )
        unknown = sorted(n for n in decode_set if n not in catalog.BY_NAME)
        if unknown:
            raise ValueError(f"unknown field(s) to decode: {', '.join(unknown)}")
        if bad_decode:
            raise ValueError(f"numeric field(s) cannot be URL-decoded: {', '.join(bad_decode)}")
        self.wanted = catalog.ordered(tuple(wanted_set))
        self.decode = frozenset(decode_set & wanted_set)
        index = {name: i for i, name in enumerate(self.fields)}
        columns = [
            Column(
                name,
                index[name],
                catalog.BY_NAME[name].kind,
                decode=name in self.decode,
                required_time=name == "timestamp",
            )
            for name in self.wanted
        ]
        self._lines = LineParser(len(self.fields), columns, max_line_bytes=max_line_bytes)
        self.max_line_bytes = max_line_bytes

    def parse(self, lines: Sequence[bytes | str]) -> ParseResult:
        data, rejected, _ = to_bytes(lines)
        cols, _, malformed = self._lines.parse_columns(data)
        batch = RecordBatch(time=np.asarray(cols.pop("timestamp"), dtype=np.float64))
        for name, col in cols.items():
            if isinstance(col, np.ndarray):
                batch.numbers[name] = col
            else:
                batch.texts[name] = col
        return ParseResult(batch, rejected + malformed)

    def parse_line(self, line: bytes | str) -> tuple[str | None, dict[str, object] | None]:
        """One line through the reference path: ``(reason, None)`` or ``(None, {field: value})``."""
        data, rejected, _ = to_bytes([line])
        if rejected:
            return rejected[0][0], None
        reason, values = self._lines.parse_line(data[0])
        if reason is not None or values is None:
            return reason, None
        return None, {c.name: v for c, v in zip(self._lines.columns, values, strict=True)}
