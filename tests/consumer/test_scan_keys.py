"""Fast paths of key extraction against their definitions: IPv6 keys through the C socket functions
vs ``ipaddress``, and the batch pre-filter of header keys vs the per-value accessor."""

from __future__ import annotations

from urllib.parse import unquote

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer import accessors
from consumer.fields import ALL_45
from consumer.keys import KeyExtractor, KeySpec, _normalise_ip_reference, normalise_ip
from consumer.realtime import CHUNK, RealtimeParser
from consumer.scan_texts import ScannedTexts
from detectors.batch import RecordBatch
from tests.consumer.test_scan import line

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIXES = (None, 1, 16, 48, 56, 63, 64, 65, 80, 96, 112, 127, 128)

_group = st.one_of(st.just("0"), st.just("0000"), st.from_regex(r"\A[0-9a-fA-F]{1,4}\Z"), st.just("ffff"))


@st.composite
def _ipv6_text(draw) -> str:  # type: ignore[no-untyped-def]
    groups = draw(st.lists(_group, min_size=0, max_size=9))
    if draw(st.booleans()) and len(groups) <= 8:
        at = draw(st.integers(0, len(groups)))
        return ":".join(groups[:at]) + "::" + ":".join(groups[at:])
    return ":".join(groups)


@SETTINGS
@given(
    st.one_of(
        _ipv6_text(),
        st.text(st.sampled_from("0123456789abcdefABCDEF:."), max_size=45),
        st.sampled_from(
            [
                "::",
                "::1",
                "::ffff:1.2.3.4",
                "::ffff:0:0",
                "::1:2",
                "1::",
                "0:0:0:0:0:1:0:0",
                "0:0:0:0:1::",
                "fe80::1%eth0",
                " 2001:db8::1 ",
                "2001:DB8:0:0:1:0:0:1",
                "2001:db8:0:1:1:1:1:1",
                "1:2:3:4:5:6:7::",
                "1:2:3:4:5:6:7:8::",
                "::2:3:4:5:6:7:8",
            ]
        ),
    ),
    st.sampled_from(PREFIXES),
)
def test_ipv6_fast_path_agrees_with_ipaddress(text: str, prefix: int | None) -> None:
    assert normalise_ip(text, prefix) == _normalise_ip_reference(text, prefix)


@SETTINGS
@given(
    st.one_of(st.text(st.sampled_from("0123456789.: x\u0661"), max_size=20), st.ip_addresses(v=4).map(str))
)
def test_dotted_quad_pattern_agrees_with_ipaddress(text: str) -> None:
    assert normalise_ip(text) == _normalise_ip_reference(text)
    assert normalise_ip(text, 64) == _normalise_ip_reference(text, 64)


@SETTINGS
@given(st.text(st.sampled_from("%20aZ;=\u00e9+3B"), max_size=30))
def test_unquote_shortcut_is_unquote(text: str) -> None:
    assert accessors._unquote(text) == unquote(text)


# ----------------------------------------------------------------------------- header pre-filter
_name = st.sampled_from(["x-api-key", "X-Api-Key", "X-API-KEY", "x-api-keys", "x-api", "host", "x%2Dapi-key"])
_value = st.text(st.sampled_from("ak_1%20AB:\u212a\u00e9-"), max_size=8)


@st.composite
def _headers_field(draw) -> str | None:  # type: ignore[no-untyped-def]
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, "-", "", "x-api-key", "\u212a"]))
    entries = draw(st.lists(st.tuples(_name, _value), max_size=4))
    sep = draw(st.sampled_from(["%0A", "%0a"]))
    return "".join(f"{k}:{v}{sep}" for k, v in entries)


def _per_value(ex: KeyExtractor, name: str, values: list[str | None]) -> list[str | None]:
    fn = ex._extractors[name]._fn
    return [None if v is None else fn(v) for v in values]


@SETTINGS
@given(st.lists(_headers_field(), max_size=40), st.sampled_from(["x-api-key", "X-Api-Key", "host", "k"]))
def test_header_keys_of_a_plain_column_match_the_accessor(values: list[str | None], name: str) -> None:
    ex = KeyExtractor([KeySpec(name="h", source="header", param=name, max_length=6)])
    b = RecordBatch(time=np.zeros(len(values)))
    b.texts["cs-headers"] = list(values)
    ex.extract(b)
    assert b.keys["h"] == _per_value(ex, "h", values)


@SETTINGS
@given(st.lists(_headers_field(), min_size=1, max_size=40), st.integers(0, 2))
def test_header_keys_from_the_parsers_bytes_match_the_accessor(
    values: list[str | None], bad_every: int
) -> None:
    lines = []
    for i, v in enumerate(values):
        field = b"-" if v is None or v == "" else v.encode()
        stem = b"bad\xff" if bad_every and i % (bad_every + 2) == 0 else b"/a"  # some via the reference path
        lines.append(line(cs_headers=field, cs_uri_stem=stem))
    parser = RealtimeParser(ALL_45, ("cs-headers", "cs-uri-stem"))
    batch = parser.parse(lines).batch
    ex = KeyExtractor([KeySpec(name="api_key", source="header", param="x-api-key")])
    column = batch.texts["cs-headers"]
    ex.extract(batch)
    assert batch.keys["api_key"] == _per_value(ex, "api_key", column)


def test_parsed_header_columns_carry_their_bytes_across_chunks() -> None:
    heads = [
        f"host:h%0Ax-api-key:k{i % 50}%0A".encode() if i % 3 else b"host:h%0A" for i in range(2 * CHUNK + 9)
    ]
    batch = RealtimeParser(ALL_45, ("cs-headers",)).parse([line(cs_headers=h) for h in heads]).batch
    column = batch.texts["cs-headers"]
    assert isinstance(column, ScannedTexts) and len(column.segments) == 3 and len(column) == 2 * CHUNK + 9
    KeyExtractor([KeySpec(name="api_key", source="header", param="x-api-key")]).extract(batch)
    assert batch.keys["api_key"] == [f"k{i % 50}" if i % 3 else None for i in range(2 * CHUNK + 9)]


@SETTINGS
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(["1.2.3.4", "01.2.3.4", "2001:db8::1", "x", "-"])), max_size=30
    )
)
def test_memo_keys_match_per_value_extraction(values: list[str | None]) -> None:
    ex = KeyExtractor([KeySpec(name="ip", source="c-ip", ipv6_prefix=64)])
    for _ in range(2):  # a cold and a warm memo
        b = RecordBatch(time=np.zeros(len(values)))
        b.texts["c-ip"] = list(values)
        ex.extract(b)
        assert b.keys["ip"] == _per_value(ex, "ip", values)


def test_a_value_the_ip_fast_path_rejects_does_not_cost_the_rest_of_the_batch_its_keys() -> None:
    # inet_pton raises ValueError (not OSError) on an embedded NUL; the memo loop once ended at the
    # first such value and left every later record of the batch without a key.
    ex = KeyExtractor([KeySpec(name="ip", source="c-ip")])
    b = RecordBatch(time=np.zeros(4))
    b.texts["c-ip"] = ["1.2.3.4", ":\x00", "5.6.7.8", "2001:db8::1"]
    ex.extract(b)
    assert b.keys["ip"] == ["1.2.3.4", None, "5.6.7.8", "2001:db8::1"]
    assert normalise_ip(":\x00") is None
