"""Fast, exact parsing of CloudFront real-time log lines into a columnar ``RecordBatch``.

One Kinesis record carries one line: tab-separated fields in CloudFront's fixed catalog order,
``-`` for a missing value, a trailing ``\\n``. The configured field list decides the columns.

Why it is built this way (figures in ``bench/results/parse.md``): per-record Python work is what
costs, so a batch is processed in chunks of ~1000 lines as *one* buffer (the lines joined, with
their offsets) by a compiled kernel (:mod:`consumer.scan`, numba): it checks each line's structure,
finds the start and end of the wanted fields only, converts the wanted numbers to float64 and names
the defect of a bad line. Text columns are then built in bulk: the wanted fields' bytes of the good
lines are gathered into one tab-separated buffer, and one ``decode`` plus one ``split`` make the
strings. ``cs-headers`` (when not URL-decoded) is not decoded at all: its column
(:class:`ScannedTexts`) keeps the chunk buffer and the spans, the header-key kernel searches those
bytes, and a value becomes a string only when read.

Anything the kernel cannot decide exactly and cheaply (a wanted text field that is not ASCII, a
number with more than 15 significant digits) goes through :func:`LineParser.parse_line`, the
reference semantics for one line; the kernel follows the same rules, with the same values (tests
check both agree, numbers bit for bit).

Reason codes: ``too_long`` (more than ``max_line_bytes``), ``empty``, ``field_count``,
``invalid_utf8`` (in a field that is read), ``bad_timestamp`` (missing, not a number, or outside
2000..2100), ``bad_number``, ``not_bytes`` (an input that is neither bytes nor str).
Fields nobody asked for are neither converted nor validated beyond being counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from consumer import fields as catalog
from consumer import scan
from consumer.columns import Column, decode_value, parse_number, timestamp_ok
from consumer.fields import Kind
from consumer.scan_texts import ScannedTexts
from detectors.batch import RecordBatch

#: Text columns handed on as the scanned bytes (``ScannedTexts``, decoded when read): the ones a key
#: kernel searches (header keys). Others are plain lists, so that a kept column pins no buffer.
KEEP_BYTES = frozenset({"cs-headers"})
CHUNK = 1024  # lines per kernel pass: the joined buffer stays in cache (8192 lines at once: ~20% slower)

_NL = b"\n"
_TAB = b"\t"
_DASH = b"-"
_TAB_STR = "\t"


@dataclass(slots=True)
class ParseResult:
    """Parsed records of one input batch, and the lines that were not records (with a reason)."""

    batch: RecordBatch
    malformed: list[tuple[str, bytes]] = field(default_factory=list)


class LineParser:
    """Columns of a fixed TSV layout: the per-line reference path and the compiled batch path.

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
        for c in self.columns:
            if not 0 <= c.index < n_fields:
                raise ValueError(f"column {c.name} at index {c.index} outside a {n_fields}-field layout")
        if len({c.index for c in self.columns}) != len(self.columns):
            raise ValueError("two columns read the same field")
        # The kernel's view of the columns (see consumer.scan.scan).
        self._slot = np.full(n_fields, -1, dtype=np.int64)
        self._kinds = np.empty(len(self.columns), dtype=np.int64)
        self._is_time = np.zeros(len(self.columns), dtype=np.bool_)
        self._num_slot = np.full(len(self.columns), -1, dtype=np.int64)
        numeric: list[int] = []
        text: list[int] = []
        lazy: list[int] = []
        for ci, c in enumerate(self.columns):
            self._slot[c.index] = ci
            self._kinds[ci] = _KERNEL_KIND[c.kind]
            self._is_time[ci] = c.required_time
            if c.numeric:
                self._num_slot[ci] = len(numeric)
                numeric.append(ci)
            elif c.name in KEEP_BYTES and not c.decode:
                lazy.append(ci)
            else:
                text.append(ci)
        self._numeric = tuple(numeric)
        self._lazy = tuple(lazy)
        self._text = np.asarray(text, dtype=np.int64)
        self._last_wanted = max((c.index for c in self.columns), default=-1)
        self._eq = np.empty(0, dtype=np.bool_)
        self._masks = np.empty(1, dtype=np.uint64)

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
        if len(lines) <= CHUNK:
            return self._chunk(lines)
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
            elif all(isinstance(p, ScannedTexts) for p in parts):
                result[c.name] = ScannedTexts([s for p in parts for s in p.segments])
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
        if n == 0:
            return self._empty_columns(), [], []
        offs = np.empty(n + 1, dtype=np.int64)
        offs[0] = 0
        np.cumsum(np.fromiter(map(len, lines), np.int64, n), out=offs[1:])
        buf = np.frombuffer(b"".join(lines), dtype=np.uint8)
        masks = self._tab_masks(buf)
        n_cols = len(self.columns)
        starts = np.empty((n_cols, n), dtype=np.int64)
        ends = np.empty((n_cols, n), dtype=np.int64)
        nums = np.empty((len(self._numeric), n), dtype=np.float64)
        status = np.empty(n, dtype=np.int8)
        good = np.empty(n, dtype=np.int64)
        k = scan.scan(
            buf, masks, offs, self.n_fields, self._slot, self._last_wanted, self._kinds, self._is_time,
            self._num_slot, self.max_line_bytes, starts, ends, nums, status, good,
        )  # fmt: skip
        cols: dict[str, np.ndarray | list[str | None]] = {}
        for ci in self._numeric:
            cols[self.columns[ci].name] = nums[self._num_slot[ci], :k]
        if self._text.shape[0]:
            self._texts(buf, starts, ends, k, cols)
        for ci in self._lazy:  # values made when read: the chunk buffer and the spans
            cols[self.columns[ci].name] = ScannedTexts([(buf, starts[ci, :k], ends[ci, :k])])
        if k == n:
            return cols, list(range(n)), []
        return self._rest(lines, cols, good[:k].tolist(), status)

    def _tab_masks(self, buf: np.ndarray) -> np.ndarray:
        """Bit masks of the tabs in ``buf`` (64 bytes per word, one zero word after the end)."""
        size = buf.shape[0]
        words = (size + 63) // 64
        if self._eq.shape[0] < words * 64:  # reused: a fresh 1 MB array per chunk costs page faults
            self._eq = np.empty(2 * words * 64, dtype=np.bool_)
            self._masks = np.empty(2 * words + 1, dtype=np.uint64)
        eq = self._eq[: words * 64]
        np.equal(buf, 9, out=eq[:size])
        eq[size:] = False
        masks = self._masks[: words + 1]
        masks[words] = 0
        scan.tab_masks(eq.view(np.uint64), masks[:words])
        return masks

    def _texts(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, k: int, cols: dict) -> None:
        """The text columns of the ``k`` good lines: one buffer, one decode, one split.

        The kernel only accepts lines whose wanted text fields are ASCII (others go to the
        reference path), so the buffer decodes as ASCII; it holds no tab but the separators."""
        raw, dash, dashes = scan.gather(buf, starts, ends, self._text, k)
        parts = str(raw, "ascii").split(_TAB_STR) if k else []
        for j, ci in enumerate(self._text.tolist()):
            c = self.columns[ci]
            col: list[str | None] = parts[j * k : (j + 1) * k]
            if dashes[j]:
                for r in np.flatnonzero(dash[j]).tolist():
                    col[r] = None
            if c.decode:
                col = [v if v is None or "%" not in v else decode_value(v) for v in col]
            cols[c.name] = col

    def _rest(
        self,
        lines: Sequence[bytes],
        cols: dict[str, np.ndarray | list[str | None]],
        fast_positions: list[int],
        status: np.ndarray,
    ) -> tuple[dict[str, np.ndarray | list[str | None]], list[int], list[tuple[str, bytes]]]:
        """Lines the kernel did not accept: its reason, or the reference path's verdict (``SLOW``);
        records of the reference path are merged in input order."""
        malformed: list[tuple[str, bytes]] = []
        slow_rows: list[tuple[int, tuple[object, ...]]] = []
        codes = status.tolist()
        for i in np.flatnonzero(status).tolist():
            code = codes[i]
            if code == scan.SLOW:
                reason, values = self.parse_line(lines[i])
                if reason is None:
                    assert values is not None
                    slow_rows.append((i, values))
                    continue
            else:
                reason = scan.REASONS[code]
            malformed.append((reason, bytes(lines[i])))
        if not slow_rows:
            return cols, fast_positions, malformed
        positions = sorted(fast_positions + [i for i, _ in slow_rows])
        slot = {p: k for k, p in enumerate(positions)}
        merged: dict[str, np.ndarray | list[str | None]] = {}
        for j, c in enumerate(self.columns):
            if c.numeric:
                arr = np.empty(len(positions), dtype=np.float64)
                if fast_positions:
                    arr[[slot[p] for p in fast_positions]] = cols[c.name]
                for i, values in slow_rows:
                    arr[slot[i]] = values[j]
                merged[c.name] = arr
            else:
                lst: list[str | None] = [None] * len(positions)
                for p, v in zip(fast_positions, cols[c.name], strict=True):
                    lst[slot[p]] = v
                for i, values in slow_rows:
                    lst[slot[i]] = values[j]  # type: ignore[assignment]
                merged[c.name] = lst
        return merged, positions, malformed

    def _empty_columns(self) -> dict[str, np.ndarray | list[str | None]]:
        return {c.name: (np.empty(0, dtype=np.float64) if c.numeric else []) for c in self.columns}


_KERNEL_KIND = {Kind.TEXT: scan.TEXT, Kind.INT: scan.INT, Kind.FLOAT: scan.FLOAT}


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
