"""Generated lines have exactly the shape of CloudFront real-time log records (reference sample 07)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from consumer import accessors
from consumer.fields import ALL_45, CATALOG, POSITION, Kind
from consumer.realtime import RealtimeParser
from consumer.traffic import Generator
from consumer.traffic.vocab import REGIONS, cf_encode

REFERENCE = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "reference-logs"
    / "07_realtime_clo_kinesis_record_data.bin"
)
F = POSITION


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    gen = Generator(seed=5, rate=60)
    return [line for batch in gen.batches(180) for line in batch]


@pytest.fixture(scope="module")
def rows(lines: list[bytes]) -> list[list[str]]:
    return [line.decode("utf-8")[:-1].split("\t") for line in lines]


def test_every_line_has_45_fields_and_one_trailing_newline(lines: list[bytes]) -> None:
    assert len(lines) > 10_000
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert line.count(b"\t") == 44
        assert b" " not in line  # CloudFront percent-encodes spaces in every text field


def test_the_real_parser_accepts_every_line_with_typed_values(lines: list[bytes]) -> None:
    res = RealtimeParser(ALL_45, ALL_45).parse(lines)
    assert res.malformed == []
    b = res.batch
    assert len(b) == len(lines)
    assert np.all(np.diff(b.time) >= 0), "batches are in event-time order"
    for f in CATALOG[1:]:
        if f.kind is not Kind.TEXT:
            assert f.name in b.numbers
    ranged = b.numbers["sc-status"] == 206
    assert np.isnan(b.numbers["sc-range-start"][~ranged]).all()
    assert not np.isnan(b.numbers["sc-range-start"][ranged]).any()
    assert not np.isnan(b.numbers["asn"]).any() and not np.isnan(b.numbers["c-port"]).any()
    status = b.numbers["sc-status"]
    assert set(np.unique(status).astype(int)) >= {200, 206, 304, 401, 403, 404}
    assert np.all(b.numbers["time-taken"] >= b.numbers["time-to-first-byte"])
    assert np.all(b.numbers["sc-bytes"] > 0)


def test_shapes_match_the_real_record(rows: list[list[str]]) -> None:
    ref = REFERENCE.read_bytes().decode()[:-1].split("\t")
    assert len(ref) == 45 == len(rows[0])
    ts = re.compile(r"^\d{10}\.\d{3}$")
    rid = re.compile(r"^[A-Za-z0-9_-]{54}==$")
    assert ts.match(ref[F["timestamp"]]) and rid.match(ref[F["x-edge-request-id"]])
    ids = set()
    edges = {e for r in REGIONS for e in r.edges}
    for r in rows:
        assert ts.match(r[F["timestamp"]])
        assert rid.match(r[F["x-edge-request-id"]])
        ids.add(r[F["x-edge-request-id"]])
        assert r[F["c-ip-version"]] == ("IPv6" if ":" in r[F["c-ip"]] else "IPv4")
        assert r[F["x-edge-location"]] in edges
        assert r[F["cs-protocol"]] == "https"
        assert r[F["fle-status"]] == r[F["fle-encrypted-fields"]] == "-"
        # Real-time logs carry the query in cs-uri-stem too (samples 01 and 07).
        q = r[F["cs-uri-query"]]
        assert r[F["cs-uri-stem"]].endswith("?" + q) if q != "-" else "?" not in r[F["cs-uri-stem"]]
        names = r[F["cs-header-names"]].split("%0A")[:-1]
        assert int(r[F["cs-headers-count"]]) == len(names)
        headers = [h.split(":", 1)[0] for h in r[F["cs-headers"]].split("%0A")[:-1]]
        assert headers == names
        assert r[F["cs-headers"]].endswith("%0A")
    assert len(ids) == len(rows), "request ids are unique"


def test_cache_results_origin_latencies_and_ranges_are_consistent(rows: list[list[str]]) -> None:
    results = {r[F["x-edge-result-type"]] for r in rows}
    assert {"Hit", "Miss", "RefreshHit", "Error"} <= results
    ranged = 0
    for r in rows:
        if r[F["x-edge-result-type"]] == "Hit":
            assert r[F["origin-fbl"]] == r[F["origin-lbl"]] == "-"
        elif r[F["x-edge-result-type"]] == "Miss":
            assert float(r[F["origin-lbl"]]) >= float(r[F["origin-fbl"]]) > 0
        if r[F["sc-status"]] == "206":
            ranged += 1
            start, end = int(r[F["sc-range-start"]]), int(r[F["sc-range-end"]])
            assert end >= start
            assert int(r[F["sc-content-len"]]) == end - start + 1
            assert int(r[F["sc-bytes"]]) > end - start
            assert f"bytes={start}-{end}" in r[F["cs-headers"]]
        else:
            assert r[F["sc-range-start"]] == "-"
    assert ranged > 50


def test_population_mix_ipv6_cookies_forwarded_for_and_user_agents(rows: list[list[str]]) -> None:
    n = len(rows)
    v6 = sum(r[F["c-ip-version"]] == "IPv6" for r in rows) / n
    assert 0.15 < v6 < 0.6
    with_uid = [accessors.cookie(r[F["cs-cookie"]], "uid") for r in rows]
    assert 0.5 < sum(u is not None for u in with_uid) / n < 0.99
    # The cookie is also in cs-headers, where the header accessor finds the same value.
    for r, uid in zip(rows[:2000], with_uid[:2000], strict=True):
        if uid is not None:
            assert uid in (accessors.header(r[F["cs-headers"]], "cookie") or "")
    assert any(r[F["x-forwarded-for"]] != "-" for r in rows)
    agents = {r[F["cs-user-agent"]] for r in rows}
    assert len(agents) >= 12 and any("Chrome" in a for a in agents) and "okhttp/4.12.0" in agents
    protos = {r[F["cs-protocol-version"]] for r in rows}
    assert protos == {"HTTP/1.1", "HTTP/2.0", "HTTP/3.0"}


def test_cf_encode_matches_the_reference_user_agent() -> None:
    ref = REFERENCE.read_bytes().decode().split("\t")
    raw = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/108.0.0.0 Safari/537.36"
    )
    assert cf_encode(raw) == ref[F["cs-user-agent"]]
    assert cf_encode('"Not?A_Brand";v="8"') == "%22Not?A_Brand%22;v=%228%22"  # as in 07's sec-ch-ua
    assert cf_encode("tab\there é") == "tab%09here%20%C3%A9"


@pytest.mark.parametrize(
    "address",
    ["203.0.113.7", "2600:1700:abcd:12::1", "2a02:8108:1:2:aaaa:bbbb:cccc:dddd", "::ffff:198.51.100.9"],
)
def test_label_ip_keys_are_what_the_default_ip_key_extracts(address: str) -> None:
    from consumer.keys import normalise_ip
    from consumer.traffic.addresses import ip_key

    assert ip_key(address) == normalise_ip(address, 64)
