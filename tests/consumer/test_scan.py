"""The compiled batch path (consumer.scan) against the per-line reference (LineParser.parse_line).

Every test runs whole batches through ``RealtimeParser.parse`` (the kernel decides most lines, the
reference only the ones it hands back) and compares line by line with ``parse_line``: the same
records with bit-identical numbers, the same malformed lines with the same reasons, input order.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer import scan
from consumer.fields import ALL_45, BY_NAME, Kind
from consumer.realtime import CHUNK, RealtimeParser

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WANTED = (
    "timestamp",
    "c-ip",
    "sc-status",
    "sc-bytes",
    "cs-uri-stem",
    "time-taken",
    "cs-cookie",
    "cs-headers",
)
TS = b"1700000000.123"


def line(**values: bytes) -> bytes:
    """A valid 45-field line, with some fields replaced."""
    base = {name: b"-" for name in ALL_45}
    base.update({"timestamp": TS, "c-ip": b"10.0.0.1", "sc-status": b"200", "sc-bytes": b"512",
                 "cs-uri-stem": b"/a", "time-taken": b"0.002", "cs-cookie": b"uid=u1",
                 "cs-headers": b"host:x%0Ax-api-key:k1%0A"})  # fmt: skip
    for k, v in values.items():
        base[k.replace("_", "-")] = v
    return b"\t".join(base[n] for n in ALL_45) + b"\n"


def bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def reference(
    parser: RealtimeParser, lines: list[bytes]
) -> tuple[list[dict[str, object]], list[tuple[str, bytes]]]:
    records: list[dict[str, object]] = []
    malformed: list[tuple[str, bytes]] = []
    for x in lines:
        reason, values = parser.parse_line(x)
        if reason is not None:
            malformed.append((reason, x))
        else:
            assert values is not None
            records.append(values)
    return records, malformed


def assert_matches_reference(parser: RealtimeParser, lines: list[bytes]) -> None:
    result = parser.parse(lines)
    records, malformed = reference(parser, lines)
    assert result.malformed == malformed
    batch = result.batch
    assert len(batch) == len(records)
    for i, rec in enumerate(records):
        for name, want in rec.items():
            if name == "timestamp":
                got: object = float(batch.time[i])
            elif BY_NAME[name].kind is Kind.TEXT:
                got = batch.texts[name][i]
            else:
                got = float(batch.numbers[name][i])
            if isinstance(want, float):
                assert isinstance(got, float)
                assert (math.isnan(want) and math.isnan(got)) or bits(got) == bits(want), (name, got, want)
            else:
                assert got == want, (name, got, want)


def test_each_reason_per_line_in_input_order() -> None:
    p = RealtimeParser(ALL_45, WANTED, max_line_bytes=2000)
    lines = [
        line(),
        b"\n",  # empty
        b" \t \r\n",  # whitespace only: empty, not field_count
        b"\r\r\n",
        b"\x0b\x0c \n",
        b"\t" * 44 + b"\n",  # 45 blank fields: empty
        line()[:-1] + b"\tx\n",  # 46 fields
        line().replace(b"\t", b"", 1),  # 44 fields
        line(timestamp=b"-"),
        line(timestamp=b"1700000000.1.2"),
        line(timestamp=b"99.5"),  # before 2000
        line(timestamp=b"4102444800"),  # 2100: outside
        line(sc_status=b"2x0"),
        line(sc_bytes=b""),
        line(time_taken=b"."),
        line(time_taken=b"-0.5"),
        line(time_taken=b"1e3"),
        line(sc_status=b"200.0"),  # INT field: no dot
        line(c_ip=b"\xff\xfe"),
        line(cs_headers=b"a" * 2100),  # too long
        line(),
    ]
    r = p.parse(lines)
    assert [reason for reason, _ in r.malformed] == [
        "empty", "empty", "empty", "empty", "empty", "field_count", "field_count",
        "bad_timestamp", "bad_timestamp", "bad_timestamp", "bad_timestamp",
        "bad_number", "bad_number", "bad_number", "bad_number", "bad_number", "bad_number",
        "invalid_utf8", "too_long",
    ]  # fmt: skip
    assert [x for _, x in r.malformed] == lines[1:-1]
    assert len(r.batch) == 2
    assert_matches_reference(p, lines)


def test_first_defect_in_field_order_names_the_reason() -> None:
    p = RealtimeParser(ALL_45, WANTED)
    # invalid UTF-8 in c-ip (field 1) comes before the bad number in sc-status (field 3)...
    assert p.parse([line(c_ip=b"\xff", sc_status=b"x")]).malformed[0][0] == "invalid_utf8"
    # ... and the bad number before invalid UTF-8 in cs-uri-stem (field 8).
    assert p.parse([line(sc_status=b"x", cs_uri_stem=b"\xff")]).malformed[0][0] == "bad_number"
    # Unwanted fields are not validated at all.
    assert len(p.parse([line(cs_bytes=b"x", cs_referer=b"\xff")]).batch) == 1


def test_numbers_are_bit_identical_to_float_of_the_text() -> None:
    texts = [b"0", b"007", b"1.", b".5", b"0.1", b"0.3", b"2.675", b"123456789012345", b"1234567890123456",
             b"99999999999999999999999", b"0.000000000000000000000001", b"1.0000000000000002",
             b"9007199254740993", b"123.456789012345678", b"0000000000000000000000000001.5"]  # fmt: skip
    p = RealtimeParser(ALL_45, WANTED)
    r = p.parse([line(time_taken=t) for t in texts])
    assert r.malformed == []
    for t, got in zip(texts, r.batch.numbers["time-taken"].tolist(), strict=True):
        assert bits(got) == bits(float(t)), t


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.from_regex(rb"\A[0-9]{1,25}(\.[0-9]{0,25})?\Z"),
            st.from_regex(rb"\A\.[0-9]{1,25}\Z"),
            st.floats(0, 1e20, allow_nan=False).map(lambda x: repr(x).encode()),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_float_fields_match_python_float(texts: list[bytes]) -> None:
    p = RealtimeParser(ALL_45, ("time-taken", "sc-bytes"))
    lines = [line(time_taken=t) for t in texts]
    r = p.parse(lines)
    ok = [t for t in texts if b"e" not in t]  # repr() may give '1e+16': not a CloudFront number
    assert len(r.batch) == len(ok)
    for t, got in zip(ok, r.batch.numbers["time-taken"].tolist(), strict=True):
        assert bits(got) == bits(float(t)), t


def test_non_ascii_batches_go_through_the_decoder_per_line() -> None:
    p = RealtimeParser(ALL_45, WANTED)
    ok_utf8 = line(cs_uri_stem="/caf\u00e9/\u65e5\u672c".encode())
    bad_utf8 = line(cs_uri_stem=b"/caf\xe9")  # latin-1, not UTF-8
    surrogate = line(cs_cookie=b"uid=\xed\xa0\x80")  # an encoded surrogate: invalid UTF-8
    unwanted = line(cs_referer=b"\xff\xff")  # not wanted: not validated
    lines = [line(), ok_utf8, bad_utf8, line(), surrogate, unwanted] * 3
    r = p.parse(lines)
    assert [reason for reason, _ in r.malformed] == ["invalid_utf8", "invalid_utf8"] * 3
    assert r.batch.texts["cs-uri-stem"][:3] == ["/a", "/caf\u00e9/\u65e5\u672c", "/a"]
    assert_matches_reference(p, lines)


def test_line_terminators_inner_newlines_and_the_last_field() -> None:
    p = RealtimeParser(ALL_45, ALL_45)
    base = line(asn=b"16509")
    lines = [
        base,
        base[:-1] + b"\r\n",
        base[:-1],  # no terminator
        base[:-1] + b"\r",  # a bare \r stays in the last field: not a number
        line(cs_uri_stem=b"/a\nb", asn=b"16509"),  # an inner newline is data
        line(cs_uri_stem=b"/a\rb", asn=b"16509"),
    ]
    r = p.parse(lines)
    assert [reason for reason, _ in r.malformed] == ["bad_number"]
    assert r.batch.numbers["asn"].tolist() == [16509.0] * 3 + [16509.0] * 2
    assert r.batch.texts["cs-uri-stem"][3:] == ["/a\nb", "/a\rb"]
    assert_matches_reference(p, lines)


def test_max_line_bytes_is_inclusive() -> None:
    x = line()
    assert RealtimeParser(ALL_45, WANTED, max_line_bytes=len(x)).parse([x]).malformed == []
    assert RealtimeParser(ALL_45, WANTED, max_line_bytes=len(x) - 1).parse([x]).malformed == [("too_long", x)]


def test_missing_text_is_none_and_decoding_applies_to_good_lines_only() -> None:
    p = RealtimeParser(ALL_45, WANTED, decode=["cs-uri-stem"])
    r = p.parse(
        [line(cs_uri_stem=b"/a%20b", cs_cookie=b"-"), line(cs_uri_stem=b"-"), line(cs_uri_stem=b"/%zz")]
    )
    assert r.batch.texts["cs-uri-stem"] == ["/a b", None, "/%zz"]
    assert r.batch.texts["cs-cookie"] == [None, "uid=u1", "uid=u1"]


def test_tab_masks_mark_every_tab() -> None:
    rng = np.random.default_rng(3)
    buf = rng.choice(np.array([9, 10, 65, 200], dtype=np.uint8), size=1000)
    words = (buf.shape[0] + 63) // 64
    eq = np.zeros(words * 64, dtype=np.bool_)
    eq[: buf.shape[0]] = buf == 9
    masks = np.empty(words, dtype=np.uint64)
    scan.tab_masks(eq.view(np.uint64), masks)
    got = [64 * w + b for w in range(words) for b in range(64) if (int(masks[w]) >> b) & 1]
    assert got == np.flatnonzero(buf == 9).tolist()


# ----------------------------------------------------------------------------- property: equivalence
_field = st.one_of(
    st.sampled_from(
        [
            b"-",
            b"",
            b"0",
            b"200",
            b"1.5",
            b".",
            b"1.2.3",
            b"1e3",
            b"-1",
            b" 7",
            b"\xff",
            b"\xc3\xa9",
            b"a%20b",
            b"\r",
            b"\n",
            b"1700000000.123",
            b"12345678901234567890",
        ]
    ),
    st.binary(max_size=70),
)


@st.composite
def _mutated_line(draw) -> bytes:  # type: ignore[no-untyped-def]
    parts = line().rstrip(b"\n").split(b"\t")
    for _ in range(draw(st.integers(0, 4))):
        parts[draw(st.integers(0, len(parts) - 1))] = draw(_field)
    if draw(st.integers(0, 9)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), draw(_field))
    if draw(st.integers(0, 9)) == 0:
        del parts[draw(st.integers(0, len(parts) - 1))]
    return b"\t".join(parts) + draw(st.sampled_from([b"\n", b"\n", b"\r\n", b""]))


@SETTINGS
@given(
    st.lists(st.one_of(_mutated_line(), st.binary(max_size=200)), max_size=60),
    st.sampled_from([WANTED, ("timestamp",), ("timestamp", "asn"), ALL_45]),
)
def test_batches_agree_with_the_reference_line_by_line(lines: list[bytes], wanted: tuple[str, ...]) -> None:
    p = RealtimeParser(
        ALL_45, wanted, decode=["cs-cookie"] if "cs-cookie" in wanted else (), max_line_bytes=1200
    )
    assert_matches_reference(p, lines)


def test_batches_larger_than_a_chunk_keep_order() -> None:
    p = RealtimeParser(ALL_45, WANTED)
    lines = [line(sc_bytes=str(i).encode()) if i % 7 else line(sc_bytes=b"bad") for i in range(2 * CHUNK + 5)]
    r = p.parse(lines)
    assert r.batch.numbers["sc-bytes"].tolist() == [float(i) for i in range(2 * CHUNK + 5) if i % 7]
    assert len(r.malformed) == len(range(0, 2 * CHUNK + 5, 7))
    assert_matches_reference(p, lines)


def test_a_layout_with_no_wanted_column_still_checks_the_field_count() -> None:
    from consumer.realtime import LineParser

    lp = LineParser(3, [])
    cols, kept, bad = lp.parse_columns([b"a\tb\tc\n", b"a\tb\n", b"a\tb\tc\td\n", b"\n"])
    assert cols == {} and kept == [0]
    assert bad == [("field_count", b"a\tb\n"), ("field_count", b"a\tb\tc\td\n"), ("empty", b"\n")]
