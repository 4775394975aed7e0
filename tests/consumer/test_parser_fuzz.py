"""Property tests: no bytes make either parser raise, and the hot path agrees with the model."""

from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.fields import ALL_45, BY_NAME, CATALOG, Kind
from consumer.realtime import RealtimeParser
from consumer.record import CloudFrontRealtimeRecord, RecordError
from consumer.standard import DEFAULT_FIELDS, StandardParser, realtime_name
from tests.consumer.test_record import assert_same

REASONS = {
    "too_long",
    "empty",
    "field_count",
    "invalid_utf8",
    "bad_timestamp",
    "bad_number",
    "not_bytes",
    "bad_header",
}
DECODE = ["cs-user-agent", "cs-cookie"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\n\r"), min_size=0, max_size=30
)


def _valid_value(name: str) -> st.SearchStrategy[str]:
    kind = BY_NAME[name].kind
    if name == "timestamp":
        return st.integers(946_684_800_000, 4_102_444_799_999).map(lambda ms: f"{ms // 1000}.{ms % 1000:03d}")
    if kind is Kind.INT:
        return st.one_of(st.just("-"), st.integers(0, 10**15).map(str))
    if kind is Kind.FLOAT:
        return st.one_of(
            st.just("-"), st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False).map(str)
        )
    return st.one_of(st.just("-"), _text.filter(lambda s: s.strip() != "" or s == ""), st.just("a%20b%25c"))


_valid_line = st.tuples(*[_valid_value(f.name) for f in CATALOG[:45]]).map(
    lambda vals: ("\t".join(vals) + "\n").encode()
)

_odd_value = st.one_of(
    st.sampled_from(
        [b"", b"-", b"-5", b"-0", b"1.5", b"nan", b"inf", b"1e3", b" 1", b"1_0", b".", b"1.2.3", b"\xff"]
    ),
    st.binary(max_size=12),
)


@st.composite
def _near_valid_line(draw) -> bytes:
    parts = draw(_valid_line).rstrip(b"\n").split(b"\t")
    for _ in range(draw(st.integers(0, 3))):
        parts[draw(st.integers(0, len(parts) - 1))] = draw(_odd_value)
    if draw(st.booleans()) and draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), draw(_odd_value))
    line = b"\t".join(parts)
    return line + draw(st.sampled_from([b"\n", b"\r\n", b"", b"\n"]))


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_random_bytes_never_raise_realtime(lines: list[bytes]) -> None:
    r = RealtimeParser(ALL_45, ALL_45, decode=DECODE, max_line_bytes=200).parse(lines)
    assert len(r.batch) + len(r.malformed) == len(lines)
    assert {reason for reason, _ in r.malformed} <= REASONS


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_random_bytes_never_raise_standard(lines: list[bytes]) -> None:
    p = StandardParser()
    r = p.parse(lines)
    header_like = sum(1 for x in lines if x[:1] == b"#")
    assert len(r.batch) + len(r.malformed) <= len(lines)
    assert len(r.batch) + len(r.malformed) >= len(lines) - header_like
    assert {reason for reason, _ in r.malformed} <= REASONS


@SETTINGS
@given(st.lists(st.one_of(_near_valid_line(), st.binary(max_size=80)), max_size=30))
def test_hot_path_agrees_with_the_model_line_by_line(lines: list[bytes]) -> None:
    r = RealtimeParser(ALL_45, ALL_45, decode=DECODE).parse(lines)
    row = 0
    bad = iter(r.malformed)
    for line in lines:
        try:
            rec = CloudFrontRealtimeRecord.from_line(line, ALL_45, decode=DECODE)
        except RecordError as exc:
            assert next(bad) == (exc.reason, line)
            continue
        assert_same(r.batch, row, rec, ALL_45)
        row += 1
    assert row == len(r.batch)
    assert next(bad, None) is None


@SETTINGS
@given(st.lists(_valid_line, min_size=1, max_size=30))
def test_valid_lines_round_trip_with_few_wanted_fields(lines: list[bytes]) -> None:
    wanted = ["c-ip", "sc-status", "cs-user-agent", "sc-range-start", "asn"]
    r = RealtimeParser(ALL_45, wanted, decode=["cs-user-agent"]).parse(lines)
    assert r.malformed == []
    for i, line in enumerate(lines):
        assert_same(
            r.batch, i, CloudFrontRealtimeRecord.from_line(line, ALL_45, decode=["cs-user-agent"]), wanted
        )


@SETTINGS
@given(st.lists(_valid_line, min_size=1, max_size=5), st.integers(1, 3))
def test_big_batches_over_chunk_boundaries_agree(lines: list[bytes], repeat: int) -> None:
    batch = lines * (400 * repeat)  # > one 1024-line chunk
    r = RealtimeParser(ALL_45, ["c-ip", "sc-bytes"]).parse(batch)
    assert r.malformed == [] and len(r.batch) == len(batch)
    for i in (0, len(batch) // 2, len(batch) - 1):
        assert_same(r.batch, i, CloudFrontRealtimeRecord.from_line(batch[i], ALL_45), ["c-ip", "sc-bytes"])


_std_valid = st.tuples(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)).map(str),
    st.times().map(lambda t: t.strftime("%H:%M:%S")),
    *[_valid_value(realtime_name(w) or "cs-uri-stem") for w in DEFAULT_FIELDS[2:]],
).map(lambda vals: ("\t".join(vals) + "\n").encode())


@st.composite
def _near_valid_standard(draw) -> bytes:
    parts = draw(_std_valid).rstrip(b"\n").split(b"\t")
    for _ in range(draw(st.integers(0, 3))):
        parts[draw(st.integers(0, len(parts) - 1))] = draw(_odd_value)
    if draw(st.booleans()):
        parts = parts[: draw(st.integers(1, len(parts)))]  # older (shorter) layouts, or too short
    return b"\t".join(parts) + draw(st.sampled_from([b"\n", b"\r\n", b""]))


@SETTINGS
@given(st.lists(_near_valid_standard(), max_size=30), st.booleans())
def test_near_valid_standard_lines_never_raise_and_are_all_accounted(
    lines: list[bytes], header: bool
) -> None:
    head = [b"#Version: 1.0\n", b"#Fields: " + " ".join(DEFAULT_FIELDS).encode() + b"\n"] if header else []
    r = StandardParser(["c-ip", "sc-bytes", "cs-cookie", "time-taken"]).parse(head + lines)
    # W3C: a line starting with '#' is a directive or a comment, not a record (replay counts the same).
    records = [line for line in lines if not line.startswith(b"#")]
    assert len(r.batch) + len(r.malformed) == len(records)
    assert {reason for reason, _ in r.malformed} <= REASONS
    assert ((r.batch.time >= 946_684_800) & (r.batch.time < 4_102_444_800)).all()
    assert len(r.batch.texts["c-ip"]) == len(r.batch.numbers["sc-bytes"]) == len(r.batch)
