"""A typed, one-record-at-a-time model of a CloudFront real-time log record, and its transports.

Not the hot path (that is :mod:`consumer.realtime`, columnar): this is for tooling, inspection
and exactness tests. It is written independently of the hot path, from the same rules, so that the
two can be checked against each other (``tests/consumer/test_record.py``):

- one line per record, tab-separated, fields in CloudFront's catalog order, a trailing ``\\n``
  or ``\\r\\n`` removed; ``-`` is a missing value;
- INT fields are digits only, FLOAT fields digits with at most one ``.``; ``timestamp`` is required
  and lies in 2000..2100 (epoch seconds);
- text is UTF-8; URL-encoded fields are percent-decoded only when asked for.

Envelopes strip the transport around the line: a KCL MultiLangDaemon ``processRecords`` message,
an AWS Lambda Kinesis event (sample 06) and a recorded JSONL line (``cfguard record``), all of which
carry the line as base64 ``data``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, field_validator

from consumer import fields as catalog
from consumer.fields import Kind

_INT = re.compile(rb"[0-9]+")
_FLOAT = re.compile(rb"[0-9]+\.?[0-9]*|\.[0-9]+")
TIMESTAMP_RANGE = (946_684_800.0, 4_102_444_800.0)


class RecordError(ValueError):
    """A line that is not a valid record; ``reason`` uses the parser's reason codes."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _attr(name: str) -> str:
    return name.replace("-", "_")


def _annotation(kind: Kind) -> Any:
    return {Kind.INT: int | None, Kind.FLOAT: float | None, Kind.TEXT: str | None}[kind]


class _RecordBase(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    FIELD_NAMES: ClassVar[tuple[str, ...]] = tuple(f.name for f in catalog.CATALOG)

    @classmethod
    def from_line(
        cls, line: bytes | str, fields: Sequence[str], *, decode: Iterable[str] = ()
    ) -> CloudFrontRealtimeRecord:
        """The record of one log line written with the real-time log config's ``fields``."""
        layout = catalog.ordered(tuple(fields))
        if "timestamp" not in layout:
            raise ValueError("the field list has no 'timestamp'")
        decode_set = set(decode)
        raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
        if raw.endswith(b"\r\n"):
            raw = raw[:-2]
        elif raw.endswith(b"\n"):
            raw = raw[:-1]
        if not raw.strip():
            raise RecordError("empty", "no content")
        parts = raw.split(b"\t")
        if len(parts) != len(layout):
            raise RecordError("field_count", f"{len(parts)} fields, the field list has {len(layout)}")
        values: dict[str, Any] = {}
        for name, part in zip(layout, parts, strict=True):
            kind = catalog.BY_NAME[name].kind
            if part == b"-":
                if name == "timestamp":
                    raise RecordError("bad_timestamp", "timestamp is missing")
                continue
            if kind is Kind.TEXT:
                try:
                    text = part.decode("utf-8")
                except UnicodeDecodeError:
                    raise RecordError("invalid_utf8", f"field {name} is not UTF-8") from None
                values[name] = unquote(text) if name in decode_set and "%" in text else text
                continue
            pattern = _INT if kind is Kind.INT else _FLOAT
            if not pattern.fullmatch(part):
                if name == "timestamp":
                    raise RecordError("bad_timestamp", f"timestamp {part[:40]!r} is not a number")
                raise RecordError("bad_number", f"field {name} value {part[:40]!r} is not a number")
            values[name] = int(part) if kind is Kind.INT else float(part)
            if name == "timestamp" and not TIMESTAMP_RANGE[0] <= values[name] < TIMESTAMP_RANGE[1]:
                raise RecordError("bad_timestamp", f"timestamp {values[name]} outside 2000..2100")
        return CloudFrontRealtimeRecord.model_validate(values)

    def get(self, name: str) -> Any:
        """A value by its CloudFront name (``sc-status``); None when missing or not configured."""
        return getattr(self, _attr(name))

    def to_cloudfront(self) -> dict[str, Any]:
        """``{cloudfront-name: value}`` of the present fields."""
        return self.model_dump(by_alias=True, exclude_none=True)


def _build_model() -> type[_RecordBase]:
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__annotations__": annotations, "__module__": __name__}
    for f in catalog.CATALOG:
        attr = _attr(f.name)
        if f.name == "timestamp":
            annotations[attr] = float
            namespace[attr] = Field(alias=f.name, description="epoch seconds with milliseconds")
        else:
            annotations[attr] = _annotation(f.kind)
            namespace[attr] = Field(None, alias=f.name)
    namespace["__doc__"] = (
        "One CloudFront real-time log record: every catalog field, typed (INT -> int, FLOAT -> float, "
        "text -> str), None when the line had '-' or the config does not include the field. "
        "Attributes use snake_case (``sc_status``), aliases the CloudFront names (``sc-status``)."
    )
    return type("CloudFrontRealtimeRecord", (_RecordBase,), namespace)


CloudFrontRealtimeRecord = _build_model()


# ---------------------------------------------------------------------------------- envelopes
def _b64(value: str | bytes) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"data is not valid base64: {exc}") from None


class _Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class KinesisData(_Envelope):
    """The ``kinesis`` object of a Lambda Kinesis event record."""

    data: bytes
    partition_key: str = Field(alias="partitionKey")
    sequence_number: str = Field(alias="sequenceNumber")
    approximate_arrival_timestamp: float | None = Field(None, alias="approximateArrivalTimestamp")
    kinesis_schema_version: str | None = Field(None, alias="kinesisSchemaVersion")

    @field_validator("data", mode="before")
    @classmethod
    def _decode(cls, v: Any) -> bytes:
        return _b64(v)


class KinesisEventRecord(_Envelope):
    kinesis: KinesisData
    event_source: str | None = Field(None, alias="eventSource")
    event_id: str | None = Field(None, alias="eventID")
    event_source_arn: str | None = Field(None, alias="eventSourceARN")

    @property
    def shard_id(self) -> str | None:
        return self.event_id.split(":")[0] if self.event_id else None


class KinesisLambdaEvent(_Envelope):
    """An AWS Lambda event from a Kinesis trigger (``{"Records": [{"kinesis": {"data": ...}}]}``)."""

    records: list[KinesisEventRecord] = Field(alias="Records")

    def payloads(self) -> list[bytes]:
        return [r.kinesis.data for r in self.records]


class KclRecord(_Envelope):
    """One record of a KCL MultiLangDaemon ``processRecords`` message."""

    data: bytes
    partition_key: str = Field(alias="partitionKey")
    sequence_number: str = Field(alias="sequenceNumber")
    sub_sequence_number: int | None = Field(None, alias="subSequenceNumber")
    approximate_arrival_timestamp: int | None = Field(None, alias="approximateArrivalTimestamp")  # ms

    @field_validator("data", mode="before")
    @classmethod
    def _decode(cls, v: Any) -> bytes:
        return _b64(v)


class KclProcessRecords(_Envelope):
    """The KCL MultiLangDaemon message ``{"action": "processRecords", "records": [...]}``."""

    action: str
    records: list[KclRecord]
    millis_behind_latest: int | None = Field(None, alias="millisBehindLatest")

    @field_validator("action")
    @classmethod
    def _is_process_records(cls, v: str) -> str:
        if v != "processRecords":
            raise ValueError(f"action is {v!r}, not 'processRecords'")
        return v

    def payloads(self) -> list[bytes]:
        return [r.data for r in self.records]


class RecordedRecord(_Envelope):
    """One line of a recording (``cfguard record``): a Kinesis record with base64 ``data``."""

    data: bytes
    shard_id: str | None = None
    sequence_number: str | None = None
    partition_key: str | None = None
    approximate_arrival_time: float | None = None

    @field_validator("data", mode="before")
    @classmethod
    def _decode(cls, v: Any) -> bytes:
        return _b64(v)


def records_from_payload(
    payload: bytes, fields: Sequence[str], *, decode: Iterable[str] = ()
) -> list[CloudFrontRealtimeRecord]:
    """The records of one Kinesis payload (CloudFront writes one line per record)."""
    lines = [x for x in payload.split(b"\n") if x] if payload.count(b"\n") > 1 else [payload]
    return [CloudFrontRealtimeRecord.from_line(x, fields, decode=decode) for x in lines]


def parse_envelope(text: str | bytes) -> list[bytes]:
    """Payloads of a Lambda Kinesis event, a KCL processRecords message or a recorded JSONL line."""
    obj = json.loads(text)
    if isinstance(obj, dict) and "Records" in obj:
        return KinesisLambdaEvent.model_validate(obj).payloads()
    if isinstance(obj, dict) and obj.get("action") == "processRecords":
        return KclProcessRecords.model_validate(obj).payloads()
    if isinstance(obj, dict) and "data" in obj:
        return [RecordedRecord.model_validate(obj).data]
    raise ValueError("not a Lambda Kinesis event, a KCL processRecords message or a recorded record")
