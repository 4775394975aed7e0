"""Standard (W3C) access logs: header state across batches, default layouts, bad lines by reason."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from consumer.standard import DEFAULT_FIELDS, OLDEST_LAYOUT, StandardParser, event_time, realtime_name

HEADER = b"#Version: 1.0\n#Fields: " + " ".join(DEFAULT_FIELDS).encode() + b"\n"


def _line(date: str = "2024-03-12", time: str = "15:22:28", n: int = 33, **over: str) -> bytes:
    values = {
        "date": date, "time": time, "x-edge-location": "CDG50-P2", "sc-bytes": "703", "c-ip": "1.2.3.4",
        "cs-method": "GET", "cs(Host)": "d6.cloudfront.net", "cs-uri-stem": "/a", "sc-status": "200",
        "cs(Referer)": "-", "cs(User-Agent)": "curl/8.0%20x", "cs-uri-query": "-", "cs(Cookie)": "uid=7",
        "time-taken": "0.113", "c-port": "51754",
    }  # fmt: skip
    values.update({k.replace("_", "-"): v for k, v in over.items()})
    return ("\t".join(values.get(f, "-") for f in DEFAULT_FIELDS[:n]) + "\n").encode()


def _utc(*a: int) -> float:
    return datetime(*a, tzinfo=UTC).timestamp()


def test_name_mapping() -> None:
    assert realtime_name("cs(User-Agent)") == "cs-user-agent"
    assert realtime_name("cs(Host)") == "cs-host"
    assert realtime_name("cs(Cookie)") == "cs-cookie"
    assert realtime_name("sc-bytes") == "sc-bytes"
    assert realtime_name("date") is None and realtime_name("x-unknown") is None


def test_event_time() -> None:
    assert event_time("2024-03-12", "15:22:28") == _utc(2024, 3, 12, 15, 22, 28)
    assert event_time("2024-02-29", "00:00:00.250") == _utc(2024, 2, 29) + 0.25
    for d, t in [("2023-02-29", "00:00:00"), ("2024-13-01", "00:00:00"), ("2024-03-12", "24:00:00"),
                 ("2024/03/12", "15:22:28"), ("2024-03-12", "15:22"), ("1999-12-31", "23:59:59"),
                 ("2024-03-12", "1a:00:00"), ("２０２４-03-12", "15:22:28")]:  # fmt: skip
        assert event_time(d, t) is None, (d, t)


def test_header_state_carries_across_batches_and_can_change() -> None:
    p = StandardParser(["c-ip", "sc-status", "cs-user-agent"])
    first = p.parse([*HEADER.splitlines(keepends=True), _line()])
    assert len(first.batch) == 1 and first.malformed == []
    second = p.parse([_line(c_ip="5.6.7.8", time="15:22:29")])  # same file, next batch: same layout
    assert second.batch.texts["c-ip"] == ["5.6.7.8"]
    assert second.batch.time.tolist() == [_utc(2024, 3, 12, 15, 22, 29)]
    # a new #Fields line mid-batch: a shorter custom layout
    third = p.parse([_line(), b"#Fields: time date sc-status c-ip\n", b"01:02:03\t2025-01-01\t404\t::1\n"])
    assert third.malformed == []
    assert third.batch.texts["c-ip"] == ["1.2.3.4", "::1"]
    assert third.batch.numbers["sc-status"].tolist() == [200.0, 404.0]
    assert third.batch.texts["cs-user-agent"] == ["curl/8.0%20x", None]  # not in the new layout
    assert third.batch.time.tolist() == [_utc(2024, 3, 12, 15, 22, 28), _utc(2025, 1, 1, 1, 2, 3)]
    assert p.header_lines == 3


def test_headerless_older_layouts_are_prefixes_and_order_is_kept() -> None:
    p = StandardParser(["sc-bytes", "c-port", "cs-cookie"])
    lines = [
        _line(sc_bytes="1"),
        _line(n=OLDEST_LAYOUT, sc_bytes="2"),
        _line(n=26, sc_bytes="3"),
        _line(sc_bytes="4"),
    ]
    r = p.parse(lines)
    assert r.malformed == []
    assert r.batch.numbers["sc-bytes"].tolist() == [1.0, 2.0, 3.0, 4.0]
    c_port = r.batch.numbers["c-port"]
    assert c_port[0] == 51754 and math.isnan(c_port[1]) and math.isnan(c_port[2]) and c_port[3] == 51754
    assert r.batch.texts["cs-cookie"] == ["uid=7"] * 4


def test_bad_lines_are_counted_by_reason_and_the_rest_kept() -> None:
    p = StandardParser(["sc-status", "c-ip"])
    lines = [
        _line(),
        _line(n=22),  # older than any documented layout
        _line(date="2024-02-30"),
        _line(sc_status="2xx"),
        _line().replace(b"1.2.3.4", b"1.2.\xff.4"),
        b"",
        b"\x00\x01binary\xff\xfe",
        b"#Fields: no date here\n",
        _line(),
    ]
    r = p.parse(lines)
    reasons = sorted(reason for reason, _ in r.malformed)
    assert reasons == sorted(
        ["field_count", "bad_timestamp", "bad_number", "invalid_utf8", "empty", "field_count", "bad_header"]
    )
    assert len(r.batch) == 2


def test_all_fields_when_wanted_is_none_and_decode() -> None:
    p = StandardParser(decode=["cs-user-agent"])
    r = p.parse([*HEADER.splitlines(keepends=True), _line()])
    assert p.version == "1.0" and p.fields == DEFAULT_FIELDS
    b = r.batch
    assert b.texts["cs-user-agent"] == ["curl/8.0 x"]
    assert {"c-ip", "cs-host", "cs-cookie", "x-edge-location"} <= set(b.texts)
    assert {"sc-bytes", "sc-status", "time-taken", "c-port", "sc-range-end"} <= set(b.numbers)
    assert "cs-headers" not in b.texts


def test_empty_input() -> None:
    r = StandardParser(["c-ip"]).parse([])
    assert len(r.batch) == 0 and r.batch.texts["c-ip"] == [] and r.malformed == []
