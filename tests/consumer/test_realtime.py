"""The real-time parser: typed columns, wanted fields only, every bad line counted by reason."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.linegen import LineMaker
from consumer.fields import ALL_45, POSITION
from consumer.realtime import CHUNK, RealtimeParser

DEFAULT_WANTED = [
    "c-ip", "sc-status", "sc-bytes", "cs-bytes", "cs-method", "cs-uri-stem", "time-taken",
    "cs-user-agent", "cs-cookie", "x-edge-result-type", "x-edge-response-result-type", "sc-range-start",
]  # fmt: skip


def _line(**overrides: str) -> bytes:
    """A valid 45-field line (from the deterministic line maker) with some fields replaced."""
    base = next(LineMaker(seed=3).lines(1)).decode().rstrip("\n").split("\t")
    for name, value in overrides.items():
        base[POSITION[name.replace("_", "-")]] = value
    return ("\t".join(base) + "\n").encode()


def test_types_missing_and_wanted_only() -> None:
    p = RealtimeParser(ALL_45, ["sc-status", "sc-range-start", "c-ip", "cs-referer"])
    line = _line(timestamp="1591205362.123", sc_status="403", sc_range_start="-", cs_referer="-")
    r = p.parse([line])
    assert r.malformed == []
    b = r.batch
    assert b.time.dtype == np.float64 and b.time.tolist() == [1591205362.123]
    assert b.numbers["sc-status"].tolist() == [403.0]
    assert math.isnan(b.numbers["sc-range-start"][0])
    assert b.texts["cs-referer"] == [None]
    assert set(b.numbers) == {"sc-status", "sc-range-start"}
    assert set(b.texts) == {"c-ip", "cs-referer"}  # nothing else converted


def test_url_decoding_only_when_asked() -> None:
    ua = "Mozilla/5.0%20(X11;%20Linux)%20100%25"
    plain = RealtimeParser(ALL_45, ["cs-user-agent"]).parse([_line(cs_user_agent=ua)])
    decoded = RealtimeParser(ALL_45, ["cs-user-agent"], decode=["cs-user-agent"]).parse(
        [_line(cs_user_agent=ua)]
    )
    assert plain.batch.texts["cs-user-agent"] == [ua]
    assert decoded.batch.texts["cs-user-agent"] == ["Mozilla/5.0 (X11; Linux) 100%"]


def test_configured_order_is_irrelevant_and_subset_layouts_work() -> None:
    fields = ["sc-status", "c-ip", "timestamp"]  # CloudFront writes timestamp, c-ip, sc-status
    p = RealtimeParser(fields, ["sc-status", "c-ip"])
    r = p.parse([b"1700000000.5\t2001:db8::1\t404\n", "1700000001.000\t10.0.0.1\t-"])
    assert r.malformed == []
    assert r.batch.time.tolist() == [1700000000.5, 1700000001.0]
    assert r.batch.texts["c-ip"] == ["2001:db8::1", "10.0.0.1"]
    assert r.batch.numbers["sc-status"][0] == 404 and math.isnan(r.batch.numbers["sc-status"][1])


def test_single_field_layout() -> None:
    r = RealtimeParser(["timestamp"], []).parse([b"1700000000.25\n", b"1700000001\r\n", b"x\n", b"\n"])
    assert r.batch.time.tolist() == [1700000000.25, 1700000001.0]
    assert sorted(reason for reason, _ in r.malformed) == ["bad_timestamp", "empty"]


def test_crlf_and_no_newline_and_str_inputs() -> None:
    p = RealtimeParser(ALL_45, ["asn", "c-ip"])
    base = _line(asn="16509")
    lines = [base, base[:-1] + b"\r\n", base[:-1], base.decode()]
    r = p.parse(lines)
    assert r.malformed == []
    assert r.batch.numbers["asn"].tolist() == [16509.0] * 4


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"1\t2\t3\n", "field_count"),
        (_line()[:-1] + b"\textra\n", "field_count"),
        (_line(sc_status="2O0"), "bad_number"),
        (_line(sc_bytes="-5"), "bad_number"),
        (_line(sc_bytes="-0"), "bad_number"),
        (_line(sc_bytes="1.5"), "bad_number"),  # INT field
        (_line(sc_bytes=""), "bad_number"),
        (_line(time_taken="1.2.3"), "bad_number"),
        (_line(time_taken="nan"), "bad_number"),
        (_line(time_taken="1e3"), "bad_number"),
        (_line(time_taken=" 1"), "bad_number"),
        (_line(timestamp="-"), "bad_timestamp"),
        (_line(timestamp="yesterday"), "bad_timestamp"),
        (_line(timestamp="99999999999"), "bad_timestamp"),
        (_line(c_ip="1.2.\xff.4").replace("\xff".encode(), b"\xff"), "invalid_utf8"),
        (b"", "empty"),
        (b"\n", "empty"),
        (b"\t" * 44 + b"\n", "empty"),
        (b"\x00\xff\xfe binary \x89PNG\r\n\x1a", "field_count"),
        (b"x" * 1_048_576, "too_long"),
    ],
)
def test_each_bad_line_is_counted_under_its_reason(line: bytes, reason: str) -> None:
    p = RealtimeParser(ALL_45, DEFAULT_WANTED)
    good = _line()
    r = p.parse([good, line, good])
    assert [m[0] for m in r.malformed] == [reason]
    assert r.malformed[0][1] == line
    assert len(r.batch) == 2  # the rest of the batch is kept
    # and the same verdict through the one-line reference path
    assert p.parse_line(line)[0] == reason


def test_invalid_utf8_in_a_field_nobody_reads_is_not_checked() -> None:
    p = RealtimeParser(ALL_45, ["sc-status"])
    line = _line().replace(b"TLSv1.3", b"TLS\xffv1.3")
    assert len(p.parse([line]).batch) == 1
    assert RealtimeParser(ALL_45, ["ssl-protocol"]).parse([line]).malformed[0][0] == "invalid_utf8"


def test_non_bytes_inputs_are_rejected_not_raised() -> None:
    p = RealtimeParser(ALL_45, [])
    r = p.parse([None, 5, bytearray(_line()), "\ud800 lone surrogate"])  # type: ignore[list-item]
    assert [m[0] for m in r.malformed] == ["not_bytes", "not_bytes", "invalid_utf8"]
    assert len(r.batch) == 1


def test_large_batches_with_scattered_bad_lines_keep_order_and_values() -> None:
    good = list(LineMaker(seed=11).lines(3 * CHUNK + 17))
    lines: list[bytes] = []
    for i, line in enumerate(good):
        lines.append(line)
        if i % 500 == 7:
            lines.append(b"bad\tline\n")
        if i % 700 == 3:
            lines.append(line[:-1])  # no newline: valid, takes the slow path
    p = RealtimeParser(ALL_45, DEFAULT_WANTED)
    r = p.parse(lines)
    assert all(reason == "field_count" for reason, _ in r.malformed)
    expected = [x for x in lines if x != b"bad\tline\n"]
    assert len(r.batch) == len(expected) == len(lines) - len(r.malformed)
    ref = [p.parse_line(x)[1] for x in expected]
    assert r.batch.time.tolist() == [v["timestamp"] for v in ref]
    assert r.batch.texts["cs-cookie"] == [v["cs-cookie"] for v in ref]
    np.testing.assert_array_equal(r.batch.numbers["sc-range-start"], [v["sc-range-start"] for v in ref])


def test_empty_batch_and_config_errors() -> None:
    r = RealtimeParser(ALL_45, DEFAULT_WANTED).parse([])
    assert len(r.batch) == 0 and r.malformed == [] and r.batch.numbers["sc-status"].shape == (0,)
    with pytest.raises(ValueError, match="asn"):
        RealtimeParser(["timestamp", "c-ip"], ["asn"])
    with pytest.raises(ValueError, match="timestamp"):
        RealtimeParser(["c-ip"], [])
    with pytest.raises(ValueError, match="numeric"):
        RealtimeParser(ALL_45, ["sc-bytes"], decode=["sc-bytes"])
    with pytest.raises(ValueError, match="unknown"):
        RealtimeParser((*ALL_45, "bogus"), [])


def test_fixed_width_timestamp_path_is_exact_and_falls_back() -> None:
    import random

    rng = random.Random(4)
    stamps = [
        f"{rng.randrange(1_000_000_000, 4_102_444_800)}.{rng.randrange(1000):03d}" for _ in range(20_000)
    ]
    lines = [f"{s}\t1.2.3.4\n".encode() for s in stamps]
    r = RealtimeParser(["timestamp", "c-ip"], []).parse(lines)
    assert r.batch.time.tolist() == [float(s) for s in stamps]
    # other shapes of a valid timestamp in the same chunk take the general path, same values
    mixed = [*lines[:10], b"1700000000\t1.2.3.4\n", b"1700000000.5\t1.2.3.4\n", b"0999999999.999\t1.2.3.4\n"]
    r = RealtimeParser(["timestamp", "c-ip"], []).parse(mixed)
    assert r.malformed == []
    assert r.batch.time.tolist() == [float(s) for s in stamps[:10]] + [
        1700000000.0,
        1700000000.5,
        999999999.999,
    ]


def test_mostly_missing_numeric_column() -> None:
    lines = [_line(sc_range_start="-") for _ in range(100)]
    lines[10] = _line(sc_range_start="1024")
    lines[50] = _line(sc_range_start="12x")
    lines[90] = _line(sc_range_start="0")
    r = RealtimeParser(ALL_45, ["sc-range-start"]).parse(lines)
    assert r.malformed == [("bad_number", lines[50])]
    col = r.batch.numbers["sc-range-start"]
    assert len(col) == 99 and col[10] == 1024 and col[89] == 0
    assert np.isnan(np.delete(col, [10, 89])).all()


def test_structure_errors_that_compensate_each_other_are_still_caught() -> None:
    p = RealtimeParser(["timestamp", "c-ip", "sc-status"], ["c-ip", "sc-status"])
    good = b"1700000000.000\t1.1.1.1\t200\n"
    cases = [
        # one line a field short, the next a field long: the total field count is right
        (
            [b"1700000000.000\t1.1.1.1\n", b"1700000000.000\t2.2.2.2\t200\t7\n"],
            ["field_count", "field_count"],
        ),
        # a missing terminator and an inner newline: the total newline count is right
        ([b"1700000000.000\t1.1.1.1\t200", b"\n1700000000.000\t2.2.2.2\t201\n"], ["bad_timestamp"]),
        # an inner newline inside a field of a line with the right tab count: kept in the value
        ([b"1700000000.000\t1.1\n.1.1\t200\n"], []),
    ]
    for lines, reasons in cases:
        r = p.parse([good, *lines, good])
        assert [m[0] for m in r.malformed] == reasons, lines
        expected = [good, *[x for x in lines if p.parse_line(x)[0] is None], good]
        assert r.batch.texts["c-ip"] == [p.parse_line(x)[1]["c-ip"] for x in expected]
