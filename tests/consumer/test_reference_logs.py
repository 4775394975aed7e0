"""Every CloudFront sample in shared/reference-logs parses with the right values.

The samples are real CloudFront output copied from public repositories (see PROVENANCE.md there);
the expected values below were read off the files by eye, field by field.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.accessors import cookie, header, query_arg
from consumer.fields import ALL_45, CATALOG
from consumer.realtime import RealtimeParser
from consumer.record import (
    CloudFrontRealtimeRecord,
    KclProcessRecords,
    KinesisLambdaEvent,
    RecordedRecord,
    parse_envelope,
)
from consumer.standard import StandardParser

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference-logs"

COVERED = {
    "01_realtime_claygregory_kinesis-1-0.txt",
    "04_standard_crowdsec_hub_aws-cloudfront-logs.log",
    "05_standard_clo_cloudfront.log",
    "06_realtime_clo_kinesis_lambda_event.json",
    "07_realtime_clo_kinesis_record_data.bin",
    "08_standard_logstash_aws_spec_cloudfront.tsv",
}


def _read(name: str) -> bytes:
    path = REF / name
    assert path.exists(), (
        f"reference log {path} is missing: the repository expects shared/reference-logs/ beside it "
        "(as in /work and in the CI clone)"
    )
    return path.read_bytes()


def _utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_every_cloudfront_sample_is_covered() -> None:
    assert REF.is_dir(), f"reference logs missing at {REF}"
    cloudfront = {
        p.name for p in REF.iterdir() if p.is_file() and ("_realtime_" in p.name or "_standard_" in p.name)
    }
    assert cloudfront == COVERED, "a CloudFront sample was added or renamed: give it a test here"


SAMPLE07_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/108.0.0.0 Safari/537.36"
)


def _check_sample07(parser: RealtimeParser, payloads: list[bytes]) -> None:
    r = parser.parse(payloads)
    assert r.malformed == []
    b = r.batch
    assert len(b) == 1
    assert b.time.tolist() == [1671005351.148]
    n, t = b.numbers, b.texts
    assert n["time-to-first-byte"][0] == 0.001
    assert n["sc-status"][0] == 200 and n["sc-bytes"][0] == 2212 and n["cs-bytes"][0] == 50
    assert n["time-taken"][0] == 0.001 and n["c-port"][0] == 17929
    assert n["cs-headers-count"][0] == 13 and n["asn"][0] == 16509
    for missing in ("sc-content-len", "sc-range-start", "sc-range-end", "origin-fbl", "origin-lbl"):
        assert math.isnan(n[missing][0]), missing
    assert t["c-ip"] == ["27.0.3.156"]
    assert t["cs-method"] == ["GET"] and t["cs-protocol"] == ["https"]
    assert t["cs-host"] == ["d2omsvnrx2yu4i.cloudfront.net"]
    assert t["cs-uri-stem"] == ["/locales/en/common.json?v=v1.2.0"]
    assert t["x-edge-location"] == ["NRT57-C1"]
    assert t["x-edge-request-id"] == ["cGX9Jx7KFX7UwY8KwRFS5FvFrdUJBpSBqMgaHWi3yuHJ7mblrhzT5A=="]
    assert t["cs-protocol-version"] == ["HTTP/2.0"] and t["c-ip-version"] == ["IPv4"]
    assert t["cs-user-agent"] == [SAMPLE07_UA]  # decoded: listed in decode
    assert t["cs-referer"] == [None] and t["cs-cookie"] == [None] and t["x-forwarded-for"] == [None]
    assert t["cs-uri-query"] == ["v=v1.2.0"]
    assert t["x-edge-response-result-type"] == ["Hit"] and t["x-edge-result-type"] == ["Hit"]
    assert t["x-edge-detailed-result-type"] == ["Hit"]
    assert t["ssl-protocol"] == ["TLSv1.3"] and t["ssl-cipher"] == ["TLS_AES_128_GCM_SHA256"]
    assert t["sc-content-type"] == ["application/json"]
    assert t["c-country"] == ["JP"]
    assert t["cs-accept-encoding"] == ["gzip,%20deflate,%20br"]  # not decoded: not listed
    assert t["cs-accept"] == ["*/*"] and t["cache-behavior-path-pattern"] == ["*"]
    assert t["primary-distribution-id"] == ["E32QJQ394BWBEI"]
    assert t["primary-distribution-dns-name"] == ["d2omsvnrx2yu4i.cloudfront.net"]
    raw_headers = t["cs-headers"][0]
    assert header(raw_headers, "User-Agent") == SAMPLE07_UA
    assert header(raw_headers, "sec-ch-ua-platform") == '"macOS"'
    assert header(raw_headers, "accept-language") == "en,zh-CN;q=0.9,zh;q=0.8"
    assert t["cs-header-names"][0].split("%0A")[:3] == ["host", "pragma", "cache-control"]
    assert query_arg(t["cs-uri-query"][0], "v") == "v1.2.0"


def _parser45() -> RealtimeParser:
    return RealtimeParser(ALL_45, ALL_45, decode=["cs-user-agent"])


def test_sample07_raw_kinesis_record() -> None:
    data = _read("07_realtime_clo_kinesis_record_data.bin")
    assert data.endswith(b"\n") and data.count(b"\t") == 44
    _check_sample07(_parser45(), [data])
    # str input and a configured list in another order give the same
    _check_sample07(
        RealtimeParser(tuple(reversed(ALL_45)), ALL_45, decode=["cs-user-agent"]), [data.decode()]
    )


def test_sample06_lambda_event_envelope() -> None:
    event = KinesisLambdaEvent.model_validate_json(_read("06_realtime_clo_kinesis_lambda_event.json"))
    assert event.records[0].kinesis.partition_key == "8bc2091b-cbed-43f4-9a01-d20a7854d38c"
    assert event.records[0].shard_id == "shardId-000000000000"
    payloads = event.payloads()
    assert payloads == [_read("07_realtime_clo_kinesis_record_data.bin")]
    _check_sample07(_parser45(), payloads)
    assert parse_envelope(_read("06_realtime_clo_kinesis_lambda_event.json")) == payloads


def test_sample07_through_kcl_and_recorded_envelopes() -> None:
    data = _read("07_realtime_clo_kinesis_record_data.bin")
    b64 = base64.b64encode(data).decode()
    kcl = json.dumps(
        {
            "action": "processRecords",
            "millisBehindLatest": 0,
            "records": [
                {
                    "data": b64,
                    "partitionKey": "8bc2091b-cbed-43f4-9a01-d20a7854d38c",
                    "sequenceNumber": "49635675801952128003396914033285311334825079587865624578",
                    "subSequenceNumber": 0,
                    "approximateArrivalTimestamp": 1671005356480,
                }
            ],
        }
    )
    msg = KclProcessRecords.model_validate_json(kcl)
    assert msg.records[0].approximate_arrival_timestamp == 1671005356480
    _check_sample07(_parser45(), msg.payloads())
    recorded = json.dumps({"shard_id": "shardId-000000000000", "sequence_number": "4963", "data": b64})
    assert RecordedRecord.model_validate_json(recorded).data == data
    assert parse_envelope(kcl) == parse_envelope(recorded) == [data]
    with pytest.raises(ValueError, match="base64"):
        RecordedRecord.model_validate({"data": "not base64!"})


def test_sample07_record_model() -> None:
    rec = CloudFrontRealtimeRecord.from_line(
        _read("07_realtime_clo_kinesis_record_data.bin"), ALL_45, decode=["cs-user-agent"]
    )
    assert rec.timestamp == 1671005351.148
    assert rec.sc_status == 200 and isinstance(rec.sc_status, int)
    assert rec.get("sc-bytes") == 2212 and rec.asn == 16509
    assert rec.c_ip == "27.0.3.156" and rec.cs_user_agent == SAMPLE07_UA
    assert rec.origin_fbl is None and rec.cs_cookie is None
    assert rec.to_cloudfront()["x-edge-location"] == "NRT57-C1"


def test_sample01_realtime_40_fields() -> None:
    text = _read("01_realtime_claygregory_kinesis-1-0.txt")
    lines = text.splitlines(keepends=True)
    assert lines[0].startswith(b"#Version") and lines[1].startswith(b"#Fields: ")
    fields = lines[1].decode().split(":", 1)[1].split()
    assert len(fields) == 40 and list(fields) == [f.name for f in CATALOG[:40]]
    data = [x for x in lines if not x.startswith(b"#")]
    p = RealtimeParser(fields, fields, decode=["cs-user-agent"])
    r = p.parse(data)
    assert r.malformed == []
    b = r.batch
    assert b.time.tolist() == [1607374321.541]
    assert b.texts["c-ip"] == ["127.0.0.1"]
    assert b.numbers["sc-status"][0] == 200 and b.numbers["sc-bytes"][0] == 485
    assert b.numbers["cs-bytes"][0] == 745 and b.numbers["time-taken"][0] == 0.042
    assert b.numbers["sc-content-len"][0] == 35 and b.numbers["c-port"][0] == 49323
    assert b.numbers["cs-headers-count"][0] == 8
    assert b.texts["cs-user-agent"] == [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:83.0) Gecko/20100101 Firefox/83.0"
    ]
    assert b.texts["cs-referer"] == ["http://localhost:5000/page-2"]
    assert b.texts["cs-cookie"] == [None]
    assert b.texts["x-edge-result-type"] == ["Miss"] and b.texts["c-country"] == ["US"]
    assert b.texts["sc-content-type"] == ["image/gif"]
    query = b.texts["cs-uri-query"][0]
    assert query_arg(query, "url") == "http://localhost:5000/page-2"
    assert query_arg(query, "tz") == "America/New_York"
    assert query_arg(query, "res") == "3840x1600"
    raw_headers = b.texts["cs-headers"][0]
    assert header(raw_headers, "dnt") == "1"
    assert header(raw_headers, "accept-encoding") == "gzip, deflate"
    assert cookie(b.texts["cs-cookie"][0], "x") is None


def test_sample04_standard_without_header_or_final_newline() -> None:
    text = _read("04_standard_crowdsec_hub_aws-cloudfront-logs.log")
    assert not text.endswith(b"\n")
    r = StandardParser().parse(text.splitlines(keepends=True))
    assert r.malformed == []
    b = r.batch
    assert b.time.tolist() == [_utc(2024, 3, 12, 15, 22, 28)] * 2
    assert b.texts["c-ip"] == ["1.2.3.4"] * 2
    assert b.texts["x-edge-location"] == ["CDG50-P2"] * 2
    assert b.numbers["sc-bytes"].tolist() == [703.0, 703.0]
    assert b.numbers["sc-status"].tolist() == [400.0, 400.0]
    assert b.texts["cs-host"] == ["d6rcaj0q1hys9.cloudfront.net"] * 2
    assert b.texts["cs-user-agent"] == ["curl/7.81.0"] * 2
    assert query_arg(b.texts["cs-uri-query"][0], "query_param") == "42"
    assert b.texts["x-host-header"] == ["hub-cdn.crowdsec.net"] * 2
    assert b.numbers["cs-bytes"].tolist() == [62.0, 62.0]
    assert b.numbers["time-taken"].tolist() == [0.113, 0.113]
    assert b.numbers["c-port"].tolist() == [51754.0, 51754.0]
    assert b.texts["sc-content-type"] == ["text/plain;%20charset=utf-8"] * 2
    assert b.numbers["sc-content-len"][0] == 20 and math.isnan(b.numbers["sc-content-len"][1])


def test_sample05_standard_with_header() -> None:
    p = StandardParser(decode=["cs-user-agent"])
    r = p.parse(_read("05_standard_clo_cloudfront.log").splitlines(keepends=True))
    assert r.malformed == []
    assert p.version == "1.0" and p.fields[:3] == ("date", "time", "x-edge-location")
    b = r.batch
    assert b.time.tolist() == [_utc(2022, 3, 24, 22, 14, 9), _utc(2022, 3, 24, 22, 14, 13)]
    assert b.numbers["sc-bytes"].tolist() == [350.0, 348.0]
    assert b.numbers["cs-bytes"].tolist() == [488.0, 82.0]
    assert b.numbers["time-taken"].tolist() == [0.834, 1.044]
    assert b.numbers["time-to-first-byte"].tolist() == [0.834, 1.044]
    assert b.texts["c-ip"] == ["13.248.48.10"] * 2
    assert b.texts["cs-uri-stem"] == ["/favicon.ico"] * 2
    assert b.texts["cs-referer"] == [
        "https://d5szyetdhzssss.cloudfront.net/",
        "https://d5szyetdhzssss.cloudfront.net/clusters/opensearch-domains",
    ]
    assert b.texts["cs-user-agent"][0] == (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/99.0.4844.74 Safari/537.36"
    )
    assert b.texts["x-edge-request-id"][1] == "TJkGc5B9Orpx7bvKP0rVtHo5YPe8YHVnfu87I7cxhD5n5F9578Ur1A=="
    assert b.texts["cs-cookie"] == [None, None] and b.texts["cs-uri-query"] == [None, None]
    assert b.texts["x-edge-result-type"] == ["Error", "Error"]
    assert b.numbers["c-port"].tolist() == [23245.0, 23245.0]
    assert "cs-headers" not in b.texts  # standard logs have no such field


def test_sample08_standard_old_23_field_and_33_field_lines() -> None:
    p = StandardParser(["c-ip", "sc-bytes", "cs-user-agent", "sc-content-len", "x-edge-response-result-type"])
    r = p.parse(_read("08_standard_logstash_aws_spec_cloudfront.tsv").splitlines(keepends=True))
    assert r.malformed == []
    b = r.batch
    assert b.time.tolist() == [_utc(2016, 6, 10, 18, 41, 39), _utc(2019, 12, 4, 21, 2, 31)]
    assert b.texts["c-ip"] == ["192.168.1.1", "192.0.2.100"]
    assert b.numbers["sc-bytes"].tolist() == [224281.0, 392.0]
    assert b.texts["x-edge-response-result-type"] == ["RefreshHit", "Hit"]
    assert math.isnan(b.numbers["sc-content-len"][0]) and b.numbers["sc-content-len"][1] == 78
    # the 2016 line's user agent is double-encoded in the log itself; left as logged
    assert b.texts["cs-user-agent"][0].startswith("Mozilla/5.0%2520(Windows%2520NT%25206.1;")
    assert set(b.texts) | set(b.numbers) == {
        "c-ip",
        "sc-bytes",
        "cs-user-agent",
        "sc-content-len",
        "x-edge-response-result-type",
    }
