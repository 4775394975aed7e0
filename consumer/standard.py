"""CloudFront standard (access) logs, the W3C layout delivered to S3, mapped onto real-time field names.

A file starts with ``#Version: 1.0`` and ``#Fields: date time x-edge-location ...``; the ``#Fields``
line sets the layout for the lines after it (a file may repeat it). W3C names are mapped to the
real-time names the detectors use, so the same detectors run on both:

=====================  ===========================================================
standard (W3C)         real-time name
=====================  ===========================================================
``date`` + ``time``    ``timestamp`` (UTC, epoch seconds; standard logs have whole seconds)
``cs(Host)``           ``cs-host``
``cs(Referer)``        ``cs-referer``
``cs(User-Agent)``     ``cs-user-agent``
``cs(Cookie)``         ``cs-cookie``
any other name         the same name when the real-time catalog has it (``sc-bytes``,
                       ``c-ip``, ``x-host-header``, ``time-taken``...), otherwise ignored
=====================  ===========================================================

Without a header the documented default order (:data:`DEFAULT_FIELDS`, 33 fields) applies. Older
files have fewer fields and CloudFront only ever appended fields, so a header-less line with 23..33
fields is read with the first that many default fields (sample 08 has a 2016 line of 23 fields).
A wanted field the layout lacks (e.g. ``cs-headers``) is a column of missing values.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, repeat

import numpy as np

from consumer import fields as catalog
from consumer.columns import MAX_TIMESTAMP, MIN_TIMESTAMP, Column
from consumer.fields import Kind
from consumer.realtime import LineParser, ParseResult, to_bytes
from detectors.batch import RecordBatch

W3C_TO_REALTIME: dict[str, str] = {
    "cs(Host)": "cs-host",
    "cs(Referer)": "cs-referer",
    "cs(User-Agent)": "cs-user-agent",
    "cs(Cookie)": "cs-cookie",
}

#: The standard log fields in their documented order (the ``#Fields`` line of current files).
DEFAULT_FIELDS: tuple[str, ...] = (
    "date", "time", "x-edge-location", "sc-bytes", "c-ip", "cs-method", "cs(Host)", "cs-uri-stem",
    "sc-status", "cs(Referer)", "cs(User-Agent)", "cs-uri-query", "cs(Cookie)", "x-edge-result-type",
    "x-edge-request-id", "x-host-header", "cs-protocol", "cs-bytes", "time-taken", "x-forwarded-for",
    "ssl-protocol", "ssl-cipher", "x-edge-response-result-type", "cs-protocol-version", "fle-status",
    "fle-encrypted-fields", "c-port", "time-to-first-byte", "x-edge-detailed-result-type",
    "sc-content-type", "sc-content-len", "sc-range-start", "sc-range-end",
)  # fmt: skip
OLDEST_LAYOUT = 23  # fields of the oldest documented layout (through x-edge-response-result-type)

_DATE = "__date"
_TIME = "__time"


def realtime_name(w3c: str) -> str | None:
    """The real-time field a W3C standard-log field maps onto, or None when there is none."""
    name = W3C_TO_REALTIME.get(w3c, w3c)
    return name if name in catalog.BY_NAME else None


@lru_cache(maxsize=4096)
def _day_start(text: str) -> float | None:
    """Epoch seconds of a ``YYYY-MM-DD`` day (UTC), None when it is not a valid date."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    y, m, d = text[:4], text[5:7], text[8:]
    if not (y.isdigit() and m.isdigit() and d.isdigit() and y.isascii() and m.isascii() and d.isascii()):
        return None
    year, month, day = int(y), int(m), int(d)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]) or year < 1970:
        return None
    return float(calendar.timegm((year, month, day, 0, 0, 0)))


@lru_cache(maxsize=100_000)
def _seconds_of_day(text: str) -> float | None:
    """Seconds since midnight of ``HH:MM:SS`` (or ``HH:MM:SS.fff``), None when invalid."""
    if len(text) < 8 or text[2] != ":" or text[5] != ":":
        return None
    h, m, s = text[:2], text[3:5], text[6:]
    if not (h.isdigit() and m.isdigit() and h.isascii() and m.isascii()):
        return None
    whole, _, frac = s.partition(".")
    if not (len(whole) == 2 and whole.isdigit() and whole.isascii()):
        return None
    if frac and not (frac.isdigit() and frac.isascii()):
        return None
    hour, minute, sec = int(h), int(m), int(whole)
    if hour > 23 or minute > 59 or sec > 60:
        return None
    return hour * 3600 + minute * 60 + sec + (float("0." + frac) if frac else 0.0)


def event_time(date: str | None, time: str | None) -> float | None:
    """Epoch seconds of a standard log's ``date`` and ``time`` fields (UTC), None when invalid."""
    if date is None or time is None:
        return None
    day = _day_start(date)
    sec = _seconds_of_day(time)
    if day is None or sec is None:
        return None
    value = day + sec
    return value if MIN_TIMESTAMP <= value < MAX_TIMESTAMP else None


class _Layout:
    """Column extraction for one ``#Fields`` layout."""

    def __init__(self, w3c_fields: Sequence[str], wanted: frozenset[str] | None, decode: frozenset[str],
                 max_line_bytes: int) -> None:  # fmt: skip
        self.w3c_fields = tuple(w3c_fields)
        columns: list[Column] = []
        present: set[str] = set()
        has_ts = "timestamp" in self.w3c_fields
        for i, w3c in enumerate(self.w3c_fields):
            if w3c == "date" and not has_ts:
                columns.append(Column(_DATE, i, Kind.TEXT))
                continue
            if w3c == "time" and not has_ts:
                columns.append(Column(_TIME, i, Kind.TEXT))
                continue
            name = realtime_name(w3c)
            if name is None or name in present:
                continue
            if wanted is not None and name not in wanted and name != "timestamp":
                continue
            present.add(name)
            kind = catalog.BY_NAME[name].kind
            columns.append(
                Column(
                    name,
                    i,
                    kind,
                    decode=name in decode and kind is Kind.TEXT,
                    required_time=name == "timestamp",
                )
            )
        self.present = frozenset(present)
        self.time_from_date = not has_ts
        if self.time_from_date and not {"date", "time"} <= set(self.w3c_fields):
            raise ValueError("a standard log layout needs 'date' and 'time' (or 'timestamp') fields")
        self.parser = LineParser(len(self.w3c_fields), columns, max_line_bytes=max_line_bytes)


class StandardParser:
    """Parse the lines of one standard log file, batch after batch (the header state carries over).

    ``wanted``: real-time names of the fields to convert (None = every field the layout has);
    ``timestamp`` is always produced. ``decode``: URL-encoded fields to percent-decode.
    """

    def __init__(
        self,
        wanted: Iterable[str] | None = None,
        *,
        decode: Iterable[str] = (),
        max_line_bytes: int = 65536,
    ) -> None:
        if wanted is not None:
            wanted_set = frozenset(wanted) | {"timestamp"}
            unknown = sorted(wanted_set - set(catalog.BY_NAME))
            if unknown:
                raise ValueError(f"unknown CloudFront field(s): {', '.join(unknown)}")
            self.wanted: frozenset[str] | None = wanted_set
        else:
            self.wanted = None
        self.decode = frozenset(decode)
        self.max_line_bytes = max_line_bytes
        self.version: str | None = None
        self._header: _Layout | None = None
        self._defaults: dict[int, _Layout] = {}
        self.header_lines = 0

    @property
    def fields(self) -> tuple[str, ...]:
        """The W3C field list in force (the last ``#Fields`` line, or the default order)."""
        return self._header.w3c_fields if self._header is not None else DEFAULT_FIELDS

    def _default(self, n_fields: int) -> _Layout:
        layout = self._defaults.get(n_fields)
        if layout is None:
            layout = _Layout(DEFAULT_FIELDS[:n_fields], self.wanted, self.decode, self.max_line_bytes)
            self._defaults[n_fields] = layout
        return layout

    def parse(self, lines: Sequence[bytes | str]) -> ParseResult:
        data, rejected, _ = to_bytes(lines)
        malformed: list[tuple[str, bytes]] = list(rejected)
        pieces: list[_Piece] = []
        if not any(x[:1] == b"#" for x in data):
            self._segment(data, 0, pieces, malformed)
        else:
            start = 0
            for i, line in enumerate(data):
                if line[:1] == b"#":
                    if i > start:
                        self._segment(data[start:i], start, pieces, malformed)
                    self._directive(line, malformed)
                    start = i + 1
            if start < len(data):
                self._segment(data[start:], start, pieces, malformed)
        return ParseResult(self._assemble(pieces), malformed)

    def _directive(self, line: bytes, malformed: list[tuple[str, bytes]]) -> None:
        """``#Fields:`` sets the layout; ``#Version:`` is kept; other comment lines are skipped."""
        self.header_lines += 1
        key, _, value = line.decode("utf-8", "replace").strip().partition(":")
        key = key.strip().lower()
        if key == "#fields":
            names = value.split()
            try:
                self._header = _Layout(names, self.wanted, self.decode, self.max_line_bytes)
            except ValueError:
                malformed.append(("bad_header", bytes(line)))
                self._header = None
        elif key == "#version":
            self.version = value.strip()

    def _segment(self, lines: list[bytes], offset: int, pieces: list[_Piece], malformed: list) -> None:
        """Lines under one layout (or, header-less, grouped by field count) into pieces."""
        if self._header is not None:
            groups: dict[_Layout, list[int]] = {self._header: list(range(len(lines)))}
        else:
            groups = {}
            full = len(DEFAULT_FIELDS)
            for i, n_tabs in enumerate(map(bytes.count, lines, repeat(b"\t"))):
                k = n_tabs + 1
                groups.setdefault(self._default(k if OLDEST_LAYOUT <= k <= full else full), []).append(i)
        for layout, idx in groups.items():
            sub = lines if len(idx) == len(lines) else [lines[i] for i in idx]
            cols, kept, bad = layout.parser.parse_columns(sub)
            malformed.extend(bad)
            keep = self._times(layout, cols, [sub[k] for k in kept], malformed)
            positions = np.asarray([offset + idx[k] for k in kept], dtype=np.int64)
            if keep is not None:
                positions = positions[keep]
                kl = keep.tolist()
                for name, col in list(cols.items()):
                    cols[name] = col[keep] if isinstance(col, np.ndarray) else list(compress(col, kl))
            pieces.append(_Piece(cols, positions))

    def _times(
        self,
        layout: _Layout,
        cols: dict[str, np.ndarray | list[str | None]],
        lines: list[bytes],
        malformed: list,
    ) -> np.ndarray | None:
        """Turn date + time into ``timestamp``; returns the rows to keep (None = all)."""
        if not layout.time_from_date:
            return None
        dates = cols.pop(_DATE)
        times = cols.pop(_TIME)
        ts = np.fromiter(map(_event_time_or_nan, dates, times), np.float64, len(lines))
        cols["timestamp"] = ts
        bad = np.isnan(ts)
        if not bad.any():
            return None
        for i in np.flatnonzero(bad).tolist():
            malformed.append(("bad_timestamp", bytes(lines[i])))
        return ~bad

    def _assemble(self, pieces: list[_Piece]) -> RecordBatch:
        if self.wanted is not None:
            names = set(self.wanted)
        else:
            names = set(self.fields_present())
            for piece in pieces:
                names.update(piece.cols)
        names.discard("timestamp")
        positions = np.concatenate([p.positions for p in pieces]) if pieces else np.empty(0, np.int64)
        order = None
        if positions.size > 1 and (np.diff(positions) < 0).any():
            order = np.argsort(positions, kind="stable")
        times = (
            np.concatenate([np.asarray(p.cols["timestamp"], np.float64) for p in pieces]) if pieces else None
        )
        batch = RecordBatch(time=times if times is not None else np.empty(0, dtype=np.float64))
        for name in catalog.ordered(tuple(names)):
            if catalog.BY_NAME[name].kind is Kind.TEXT:
                joined: list[str | None] = []
                for p in pieces:
                    col = p.cols.get(name)
                    joined.extend(col if col is not None else [None] * len(p.positions))  # type: ignore[arg-type]
                batch.texts[name] = joined
            else:
                arrays = [
                    np.asarray(p.cols[name]) if name in p.cols else np.full(len(p.positions), np.nan)
                    for p in pieces
                ]
                batch.numbers[name] = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.float64)
        if order is not None:
            batch.time = batch.time[order]
            idx = order.tolist()
            for name, arr in batch.numbers.items():
                batch.numbers[name] = arr[order]
            for name, lst in batch.texts.items():
                batch.texts[name] = [lst[i] for i in idx]
        return batch

    def fields_present(self) -> frozenset[str]:
        """Real-time names the current layout provides."""
        layout = self._header if self._header is not None else self._default(len(DEFAULT_FIELDS))
        return layout.present | {"timestamp"}


@dataclass(slots=True)
class _Piece:
    cols: dict[str, np.ndarray | list[str | None]]
    positions: np.ndarray  # input index of each row


def _event_time_or_nan(date: str | None, time: str | None) -> float:
    v = event_time(date, time)
    return np.nan if v is None else v
