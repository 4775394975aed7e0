"""Hostile standard-log headers and hostile key sources: never raise, every line and key accounted for.

Extends tests/consumer/test_parser_fuzz.py (random bytes, near-valid lines) with what it does not
cover: attacker-shaped ``#Fields`` headers mixed into the data, and key extraction on values with
control characters, CR/LF, ANSI escapes, 100 KB values, invalid percent-encoding and odd unicode.
"""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from consumer.keys import KeyExtractor, KeySpec
from consumer.standard import DEFAULT_FIELDS, StandardParser
from detectors.batch import RecordBatch
from tests.hostile._settings import fuzz_settings

SETTINGS = fuzz_settings(300)
WANTED = {"timestamp", "c-ip", "cs-cookie", "cs-uri-stem", "sc-status", "sc-bytes", "x-forwarded-for"}
VALID = (
    b"2025-11-26\t12:00:00\tHIO52-P4\t512\t203.0.113.9\tGET\td1.cloudfront.net\t/index.html\t200\t-\t"
    b"curl/8\t-\tuid=abc\tHit\tid==\t-\thttps\t100\t0.001\t-\tTLSv1.3\tTLS_AES_128_GCM_SHA256\tHit\t"
    b"HTTP/2.0\t-\t-\t51234\t0.001\tHit\ttext/html\t512\t-\t-"
)
_name = st.one_of(
    st.sampled_from([*DEFAULT_FIELDS, "timestamp", "date", "time", "cs(Cookie)", "c-ip"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=12),
)
_header = st.one_of(
    st.lists(_name, max_size=60).map(lambda ns: ("#Fields: " + " ".join(ns)).encode()),
    st.just(b"#Fields: " + b" ".join([b"date"] * 5000)),  # many columns, all duplicates
    st.just(b"#Fields: date time " + b"c-ip " * 2000),
    st.just(b"#Fields:"),
    st.just(b"#Fields: \x00\x1b[2J\xff\xfe"),
    st.binary(max_size=80).map(lambda b: b"#" + b.replace(b"\n", b"")),
    st.just(b"#Version: " + b"9" * 10_000),
)
_data = st.one_of(
    st.just(VALID),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    st.lists(st.sampled_from([b"-", b"1", b"x", b"\x1b", b"%zz", b"\xff"]), max_size=40).map(b"\t".join),
)


@SETTINGS
@given(st.lists(st.one_of(_header, _data), max_size=30), st.integers(1, 3))
def test_hostile_fields_headers_never_raise_and_account_for_every_line(
    lines: list[bytes], batches: int
) -> None:
    parser = StandardParser(WANTED, decode=["cs-cookie"], max_line_bytes=4096)
    step = max(1, len(lines) // batches)
    parsed = malformed = 0
    for i in range(0, len(lines), step):
        chunk = lines[i : i + step]
        r = parser.parse(chunk)
        parsed += len(r.batch)
        malformed += sum(1 for reason, _ in r.malformed if reason != "bad_header")
        assert len(r.batch.time) == len(r.batch)
        for col in r.batch.texts.values():
            assert len(col) == len(r.batch)
    data_lines = sum(1 for x in lines if x[:1] != b"#")
    assert parsed + malformed == data_lines


_nasty = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.text(st.sampled_from("\r\n\t\x1b\x00%;=,\"' \u2028\u202e\x85\ufeffA9:."), max_size=60),
    st.sampled_from(
        ["x" * 100_000, "%" * 1000, "%E2%80%A8", "%0D%0AX-Evil: 1", "%ff%fe", "%u0041", "uid=%", "=;=;="]
    ),
)
SPECS = [
    KeySpec(name="ip", source="c-ip", ipv6_prefix=64),
    KeySpec(name="fwd", source="x-forwarded-for", xff_from_right=2),
    KeySpec(name="fwd1", source="x-forwarded-for"),
    KeySpec(name="user", source="cookie", param="uid"),
    KeySpec(name="hdr", source="header", param="x-id"),
    KeySpec(name="q", source="query", param="u"),
    KeySpec(name="path", source="uri-regex", param=r"^/u/([^/]{1,64})"),
]


@SETTINGS
@given(st.lists(st.tuples(*[_nasty] * 6), min_size=1, max_size=8))
def test_key_extraction_on_hostile_values_never_raises_and_counts_every_record(rows) -> None:
    n = len(rows)
    cols = list(zip(*rows, strict=True))
    batch = RecordBatch(
        time=np.zeros(n),
        numbers={},
        texts={
            "c-ip": list(cols[0]),
            "x-forwarded-for": list(cols[1]),
            "cs-cookie": ["uid=" + v for v in cols[2]],
            "cs-headers": ["x-id:" + v for v in cols[3]],
            "cs-uri-query": ["u=" + v for v in cols[4]],
            "cs-uri-stem": ["/u/" + v for v in cols[5]],
        },
        keys={},
    )
    ex = KeyExtractor(SPECS)
    ex.extract(batch)
    for spec in SPECS:
        keys = batch.keys[spec.name]
        assert len(keys) == n
        assert ex.keyed[spec.name] + ex.missing[spec.name] == n
        for k in keys:
            assert k is None or (0 < len(k) <= spec.max_length)
        if spec.is_ip:
            # An IP key is always a canonical address (or prefix): nothing of the raw text survives.
            for k in keys:
                assert k is None or ipaddress.ip_network(k, strict=False)
