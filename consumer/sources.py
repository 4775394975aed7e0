"""Replay inputs: open a file, tell what it holds, and hand out batches of raw log lines.

Kinds (detected from the content, not the name; gzip detected by its magic bytes):

- ``realtime``: CloudFront real-time log lines (TSV, one request per line, no header).
- ``standard``: CloudFront standard (S3, W3C) access logs, ``#Version``/``#Fields`` headers or not.
- ``recorded``: recorded Kinesis records, one JSON object per line with base64 ``data`` (plus shard,
  sequence number, partition key, arrival time); KPL-aggregated payloads are de-aggregated.
- ``lambda-event``: a Kinesis event as Lambda receives it (``{"Records": [{"kinesis": {...}}]}``).
- ``empty``: nothing to read.

Damage never stops a replay: a truncated or corrupt gzip ends that file with the damage counted in
the quarantine; an over-long line is counted and skipped without being held in memory whole.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from consumer.deaggregate import user_records
from consumer.quarantine import Quarantine

Kind = Literal["realtime", "standard", "recorded", "lambda-event", "empty"]

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 1_048_576
_STANDARD_LINE = re.compile(rb"^\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\t")
_PEEK_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class RecordedRecord:
    """One Kinesis record of a recording: its metadata and its (possibly aggregated) payload."""

    shard_id: str | None
    sequence_number: str | None
    partition_key: str | None
    arrival_time: float | None
    data: bytes


class InputSource:
    def __init__(
        self,
        path: Path,
        kind: Kind,
        compressed: bool,
        quarantine: Quarantine,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.path = path
        self.kind: Kind = kind
        self.compressed = compressed
        self.quarantine = quarantine
        self.max_line_bytes = max_line_bytes
        self.header_fields: list[str] | None = None

    def _open(self) -> BinaryIO:
        raw = open(self.path, "rb")
        if not self.compressed:
            return raw
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]

    def _lines(self) -> Iterator[bytes]:
        """Raw lines (without a cap on count), over-long ones counted and skipped in bounded memory."""
        limit = self.max_line_bytes
        src = str(self.path)
        with self._open() as f:
            try:
                while True:
                    line = f.readline(limit + 1)
                    if not line:
                        return
                    if len(line) > limit and not line.endswith(b"\n"):
                        head = line[:256]
                        while line and not line.endswith(b"\n"):
                            line = f.readline(limit + 1)
                        self.quarantine.add("too_long", head, src)
                        continue
                    yield line
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                self.quarantine.add("truncated_input", str(exc).encode(), src)

    def records(self) -> Iterator[RecordedRecord]:
        """The Kinesis records of a ``recorded`` or ``lambda-event`` input."""
        src = str(self.path)
        if self.kind == "lambda-event":
            yield from self._lambda_event_records()
            return
        for line in self._lines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                data = base64.b64decode(obj["data"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
                self.quarantine.add("bad_recorded_record", line, src)
                continue
            yield RecordedRecord(
                shard_id=_text(obj.get("shard_id")),
                sequence_number=_text(obj.get("sequence_number")),
                partition_key=_text(obj.get("partition_key")),
                arrival_time=_epoch(obj.get("approximate_arrival_time")),
                data=data,
            )

    def _lambda_event_records(self) -> Iterator[RecordedRecord]:
        src = str(self.path)
        try:
            with self._open() as f:
                event = json.load(f)
            items = event["Records"]
            if not isinstance(items, list):
                raise TypeError(f"'Records' is a {type(items).__name__}, not a list")
        except (ValueError, KeyError, TypeError, EOFError, OSError, zlib.error, RecursionError) as exc:
            self.quarantine.add("bad_lambda_event", str(exc).encode(), src)
            return
        for item in items:
            try:
                k = item["kinesis"]
                data = base64.b64decode(k["data"], validate=True)
                event_id = item.get("eventID")
            except (KeyError, TypeError, AttributeError, binascii.Error):
                self.quarantine.add("bad_recorded_record", json.dumps(item).encode()[:4096], src)
                continue
            yield RecordedRecord(
                shard_id=(_text(event_id) or "").split(":")[0] or None,
                sequence_number=_text(k.get("sequenceNumber")),
                partition_key=_text(k.get("partitionKey")),
                arrival_time=_epoch(k.get("approximateArrivalTimestamp")),
                data=data,
            )

    def lines(self) -> Iterator[bytes]:
        """Log lines, whatever the kind: recorded payloads are de-aggregated and split into lines."""
        if self.kind in ("recorded", "lambda-event"):
            for rec in self.records():
                for _sub, payload in user_records(rec.data):
                    for line in payload.splitlines():
                        if line:
                            yield line
            return
        if self.kind == "realtime":
            # Real Kinesis records carry no header; a file written by a tool may (see header_fields).
            yield from (line for line in self._lines() if not line.startswith(b"#"))
        elif self.kind == "standard":
            yield from self._lines()
        elif self.compressed:
            # "empty" gzip: read it through so a stream cut inside its header is counted, not ignored.
            for _ in self._lines():
                pass

    def batches(self, size: int) -> Iterator[list[bytes]]:
        batch: list[bytes] = []
        for line in self.lines():
            batch.append(line)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def _text(value: object) -> str | None:
    """A metadata string from a recording; anything else (objects, numbers) is dropped, not trusted."""
    return value if isinstance(value, str) else None


def _epoch(value: object) -> float | None:
    """A finite epoch time in seconds, or None (a huge integer or NaN must not reach the pacer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        t = float(value)
    except OverflowError:
        return None
    return t if math.isfinite(t) else None


def _peek(path: Path, compressed: bool) -> bytes:
    with open(path, "rb") as raw:
        if not compressed:
            return raw.read(_PEEK_BYTES)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return f.read(_PEEK_BYTES)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
            # Truncated inside the first block: decompress what is there for detection only.
            raw.seek(0)
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                return d.decompress(raw.read(_PEEK_BYTES * 4), _PEEK_BYTES)
            except zlib.error:
                return b""


def header_fields(head: bytes) -> list[str] | None:
    """The names of a ``#Fields:`` header among the first lines, if there is one."""
    for line in head.split(b"\n")[:5]:
        if line.startswith(b"#Fields:"):
            return line[len(b"#Fields:") :].decode("utf-8", "replace").split()
    return None


def detect_kind(head: bytes) -> Kind:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        return "empty"
    first = text.split(b"\n", 1)[0]
    fields = header_fields(head)
    if fields is not None:
        # Some tools write real-time lines under a W3C-style header; its names tell the layouts apart.
        return "realtime" if "timestamp" in fields else "standard"
    if first.startswith(b"#Version") or _STANDARD_LINE.match(first):
        return "standard"
    if first.startswith(b"{"):
        try:
            obj = json.loads(first)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and "data" in obj:
            return "recorded"
        if (isinstance(obj, dict) and "Records" in obj) or re.match(rb'^\{\s*"Records"', text):
            return "lambda-event"
    return "realtime"


def open_input(
    path: str | Path, *, quarantine: Quarantine | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> InputSource:
    p = Path(path)
    with open(p, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
    head = _peek(p, compressed)
    source = InputSource(p, detect_kind(head), compressed, quarantine or Quarantine(), max_line_bytes)
    source.header_fields = header_fields(head)
    return source
