"""The pydantic record model agrees with the hot-path parser; envelopes strip their transport."""

from __future__ import annotations

import base64
import json
import math

import pytest
from pydantic import ValidationError

from bench.linegen import LineMaker
from consumer.fields import ALL_45, BY_NAME, POSITION, Kind
from consumer.realtime import RealtimeParser
from consumer.record import (
    CloudFrontRealtimeRecord,
    KclProcessRecords,
    KinesisLambdaEvent,
    RecordError,
    parse_envelope,
    records_from_payload,
)

DECODE = ["cs-user-agent", "cs-uri-stem", "cs-cookie"]


def assert_same(batch, row: int, rec, fields) -> None:
    """The hot path's row equals the model's record on every field in ``fields``."""
    assert batch.time[row] == rec.timestamp
    for name in fields:
        if name == "timestamp":
            continue
        expected = rec.get(name)
        if BY_NAME[name].kind is Kind.TEXT:
            assert batch.texts[name][row] == expected, name
        else:
            got = batch.numbers[name][row]
            assert (math.isnan(got) and expected is None) or got == expected, (name, got, expected)


def test_model_and_hot_path_agree_on_generated_lines() -> None:
    lines = list(LineMaker(seed=5).lines(3000))
    r = RealtimeParser(ALL_45, ALL_45, decode=DECODE).parse(lines)
    assert r.malformed == []
    for i in range(0, 3000, 7):
        rec = CloudFrontRealtimeRecord.from_line(lines[i], ALL_45, decode=DECODE)
        assert_same(r.batch, i, rec, ALL_45)


def test_model_for_a_subset_layout() -> None:
    fields = ["sc-status", "timestamp", "cs-user-agent"]
    rec = CloudFrontRealtimeRecord.from_line(b"1700000000.5\t503\tcurl/8.0\r\n", fields)
    assert rec.timestamp == 1700000000.5 and rec.sc_status == 503 and rec.cs_user_agent == "curl/8.0"
    assert rec.c_ip is None  # not configured
    assert rec.to_cloudfront() == {"timestamp": 1700000000.5, "sc-status": 503, "cs-user-agent": "curl/8.0"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sc-status": "2O0"}, "bad_number"),
        ({"sc-bytes": "1.5"}, "bad_number"),
        ({"time-taken": "1e3"}, "bad_number"),
        ({"timestamp": "-"}, "bad_timestamp"),
        ({"timestamp": "123"}, "bad_timestamp"),
        ({"c-ip": b"\xff"}, "invalid_utf8"),
    ],
)
def test_model_reasons_match_the_parser(change: dict, reason: str) -> None:
    parts = next(LineMaker(seed=1).lines(1)).rstrip(b"\n").split(b"\t")
    for name, value in change.items():
        parts[POSITION[name]] = value if isinstance(value, bytes) else value.encode()
    line = b"\t".join(parts) + b"\n"
    with pytest.raises(RecordError) as exc:
        CloudFrontRealtimeRecord.from_line(line, ALL_45)
    assert exc.value.reason == reason
    assert RealtimeParser(ALL_45, ALL_45).parse([line]).malformed == [(reason, line)]


def test_model_structural_errors() -> None:
    with pytest.raises(RecordError) as exc:
        CloudFrontRealtimeRecord.from_line(b"1\t2\n", ALL_45)
    assert exc.value.reason == "field_count"
    with pytest.raises(RecordError) as exc:
        CloudFrontRealtimeRecord.from_line(b" \r\n", ALL_45)
    assert exc.value.reason == "empty"
    with pytest.raises(ValueError, match="timestamp"):
        CloudFrontRealtimeRecord.from_line(b"1.2.3.4\n", ["c-ip"])
    with pytest.raises(ValidationError):
        CloudFrontRealtimeRecord.model_validate({"timestamp": 1.0, "no-such-field": 1})


def test_envelopes_reject_what_they_cannot_read() -> None:
    with pytest.raises(ValidationError, match="processRecords"):
        KclProcessRecords.model_validate({"action": "checkpoint", "records": []})
    with pytest.raises(ValidationError):
        KinesisLambdaEvent.model_validate(
            {"Records": [{"kinesis": {"partitionKey": "p", "sequenceNumber": "1"}}]}
        )
    with pytest.raises(ValidationError, match="base64"):
        KinesisLambdaEvent.model_validate(
            {"Records": [{"kinesis": {"data": "%%%", "partitionKey": "p", "sequenceNumber": "1"}}]}
        )
    with pytest.raises(ValueError, match="not a Lambda"):
        parse_envelope(json.dumps({"something": "else"}))


def test_records_from_payload() -> None:
    lines = list(LineMaker(seed=2).lines(3))
    recs = records_from_payload(b"".join(lines), ALL_45)
    assert [r.timestamp for r in recs] == [
        CloudFrontRealtimeRecord.from_line(x, ALL_45).timestamp for x in lines
    ]
    kcl = {
        "action": "processRecords",
        "records": [
            {"data": base64.b64encode(x).decode(), "partitionKey": "k", "sequenceNumber": str(i)}
            for i, x in enumerate(lines)
        ],
    }
    assert parse_envelope(json.dumps(kcl)) == lines
