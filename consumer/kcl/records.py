"""From the daemon's records to raw lines with their stream positions.

A position is ``(sequence_number, sub_sequence_number)`` as ints: Kinesis sequence numbers are
decimal strings of up to 128 bits and only compare correctly as numbers; the sub-sequence orders
the user records inside one KPL-aggregated record.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aws_kinesis_agg import MAGIC

from consumer.deaggregate import user_records
from consumer.kcl.fast_io import KinesisRecord

log = logging.getLogger(__name__)

Position = tuple[int, int]


def position(sequence_number: str | int, sub_sequence_number: int | None = 0) -> Position:
    return int(sequence_number), int(sub_sequence_number or 0)


def parse_position(sequence_number: str | None, sub_sequence_number: int | None) -> Position | None:
    """The daemon's checkpoint value, or None for TRIM_HORIZON / LATEST / AT_TIMESTAMP / SHARD_END."""
    if sequence_number is None or not str(sequence_number).isdigit():
        return None
    return position(sequence_number, sub_sequence_number)


@dataclass
class Decoded:
    lines: list[bytes]
    positions: list[Position]
    undecodable: int  # records whose data was not valid base64 (counted, logged)
    skipped: int  # re-delivered records already covered by the restored snapshot


def _get(rec: Any, name: str) -> Any:
    return rec.get(name)  # a dict or amazon_kclpy.messages.Record


def decode(records: Iterable[Any], after: Position | None) -> Decoded:
    """Base64-decode, de-aggregate, and drop user records at or before ``after``.

    ``records``: :class:`~consumer.kcl.fast_io.KinesisRecord` structs (data already decoded) or the
    protocol's dicts / ``amazon_kclpy`` records (data in base64, checked here record by record)."""
    out = Decoded([], [], 0, 0)
    lines, positions = out.lines, out.positions
    for rec in records:
        if type(rec) is KinesisRecord:
            data = rec.data
            seq = int(rec.sequenceNumber)
            delivered_sub = rec.subSequenceNumber or 0
        else:
            seq = int(_get(rec, "sequenceNumber"))
            delivered_sub = int(_get(rec, "subSequenceNumber") or 0)
            try:
                data = base64.b64decode(_get(rec, "data"), validate=True)
            except (binascii.Error, ValueError, TypeError):
                out.undecodable += 1
                log.error("record %s: data is not valid base64; skipped", seq)
                continue
        if not data.startswith(MAGIC):  # one CloudFront line per record: no de-aggregation
            pos = (seq, delivered_sub)
            if after is not None and pos <= after:
                out.skipped += 1
            else:
                lines.append(data)
                positions.append(pos)
            continue
        for sub, payload in user_records(data):
            # The daemon may have de-aggregated already (it then sends the sub-sequence itself).
            pos = (seq, int(sub if sub is not None else delivered_sub))
            if after is not None and pos <= after:
                out.skipped += 1
                continue
            lines.append(payload)
            positions.append(pos)
    return out
