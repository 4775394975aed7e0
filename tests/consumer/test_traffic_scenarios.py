"""Each scenario produces the behaviour it claims; each hard negative stays within the normal range.

Figures come from a 20-minute run (all scenarios and hard negatives at their defaults) measured
through the real parser and key extractor (``consumer.traffic.metrics``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from consumer.traffic import Generator
from consumer.traffic.metrics import KeyFigures, key_figures

DURATION = 1200.0


@pytest.fixture(scope="module")
def gen() -> Generator:
    return Generator(seed=11, rate=20)


@pytest.fixture(scope="module")
def run(gen: Generator) -> tuple[dict[str, dict[str, KeyFigures]], dict[str, Any]]:
    lines = [line for batch in gen.batches(DURATION) for line in batch]
    return key_figures(lines), gen.labels(DURATION)


@pytest.fixture(scope="module")
def figs(run):  # type: ignore[no-untyped-def]
    return run[0]


@pytest.fixture(scope="module")
def labels(run):  # type: ignore[no-untyped-def]
    return run[1]


def _keys(labels: dict[str, Any], key_type: str, name: str, section: str | None = None) -> list[str]:
    table = labels[section][key_type] if section else labels[key_type]
    found = [k for k, v in table.items() if v == name]
    assert found, f"no {key_type} key labelled {name}"
    return found


def _one(figs, labels, key_type: str, name: str, section: str | None = None) -> KeyFigures:  # type: ignore[no-untyped-def]
    return figs[key_type][_keys(labels, key_type, name, section)[0]]


def _normal(figs, labels, key_type: str) -> list[KeyFigures]:  # type: ignore[no-untyped-def]
    special = set(labels.get(key_type, {}))
    for section in ("hard_negatives", "accomplices"):
        special |= set(labels[section].get(key_type, {}))
    return [f for k, f in figs[key_type].items() if k not in special]


def _q(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q))


def _per_hour(f: KeyFigures) -> float:
    return f.bytes_sent * 3600.0 / DURATION


def test_population_is_heavy_tailed(figs, labels) -> None:  # type: ignore[no-untyped-def]
    users = _normal(figs, labels, "user")
    assert len(users) > 500
    req = [f.requests for f in users]
    assert _q(req, 0.99) > 8 * _q(req, 0.5), "a few users do far more than the median one"
    assert max(f.auth_fail for f in users) <= 6


def test_bandwidth_hog_pulls_far_more_than_any_normal_user(figs, labels) -> None:  # type: ignore[no-untyped-def]
    hog = _one(figs, labels, "user", "bandwidth_hog")
    normal = [_per_hour(f) for f in _normal(figs, labels, "user")]
    p999 = _q(normal, 0.999)
    assert _per_hour(hog) > 50 * p999
    assert _per_hour(hog) > 50e9  # ~100 GB/h at the default 30 MB/s over 19.5 of 20 minutes
    assert figs["ip"][_keys(labels, "ip", "bandwidth_hog")[0]].bytes_sent == hog.bytes_sent
    # The heaviest honest user stays under 10% of the hog, yet above every ordinary user's p99.9.
    heavy = _one(figs, labels, "user", "heavy_downloader", "hard_negatives")
    assert p999 < _per_hour(heavy) < _per_hour(hog) / 10
    assert 1.5e9 < _per_hour(heavy) < 3.5e9  # 40 GB/day over 16 active hours


def test_request_flood_dwarfs_the_office_nat(figs, labels, gen) -> None:  # type: ignore[no-untyped-def]
    flood = _one(figs, labels, "ip", "request_flood")
    nat = _one(figs, labels, "ip", "nat_office", "hard_negatives")
    normal_ip = [f.max_per_minute for f in _normal(figs, labels, "ip")]
    assert flood.max_per_minute > 2000
    assert flood.max_per_minute > 4 * nat.max_per_minute
    assert nat.max_per_minute > 3 * max(normal_ip), "the NAT is busier than any single user's address"
    # Behind the NAT, each user is ordinary: per-user figures within the population's range.
    (office,) = [s for s in gen.scenarios if s.name == "nat_office"]
    behind = set(office.group.uids)
    nat_users = [figs["user"][u] for u in behind if u in figs["user"]]
    assert len(nat_users) > 150
    others = set(labels["user"]) | set(labels["hard_negatives"]["user"])
    others |= set(labels["accomplices"].get("user", {}))
    normal = [f for k, f in figs["user"].items() if k not in behind and k not in others]
    for metric in ("requests", "bytes_sent", "auth_fail", "distinct_paths", "max_per_minute"):
        ours = [getattr(f, metric) for f in nat_users]
        theirs = [getattr(f, metric) for f in normal]
        assert _q(ours, 0.99) <= _q(theirs, 0.999), metric
        assert _q(ours, 0.5) <= 2 * _q(theirs, 0.5) + 1, metric
    monitor = _one(figs, labels, "ip", "monitor", "hard_negatives")
    assert monitor.max_per_minute <= 31
    assert monitor.max_per_minute <= _q(normal_ip, 0.999)


def test_scanner_probes_many_distinct_paths_and_gets_errors(figs, labels) -> None:  # type: ignore[no-untyped-def]
    scan = _one(figs, labels, "ip", "scanner")
    assert scan.distinct_paths >= 400
    assert (scan.not_found + scan.auth_fail) / scan.requests > 0.9
    normal = _normal(figs, labels, "ip")
    assert max(f.not_found for f in normal) < scan.not_found / 50
    busy = [f.not_found / f.requests for f in normal if f.requests >= 50]
    assert max(busy) < 0.2


def test_credential_stuffing_rotating_ips_one_uid(figs, labels) -> None:  # type: ignore[no-untyped-def]
    stuffer = _one(figs, labels, "user", "credential_stuffing")
    assert stuffer.auth_fail / stuffer.requests > 0.9
    assert stuffer.auth_fail > 3000
    assert stuffer.distinct_ips > 1000
    proxies = [
        figs["ip"][k]
        for k in labels["accomplices"]["ip"]
        if labels["accomplices"]["ip"][k] == "credential_stuffing" and k in figs["ip"]
    ]
    assert max(p.requests for p in proxies) < 20, "each proxy address is used only a few times"
    for key in _keys(labels, "user", "password_retry", "hard_negatives"):
        retry = figs["user"].get(key)
        if retry is not None:
            assert retry.auth_fail <= 3


def test_credential_stuffing_from_one_ip_with_fresh_cookies() -> None:
    gen = Generator(
        seed=3, rate=5, scenarios="credential_stuffing:mode=one_ip:start_s=0:rate=4", negatives="none"
    )
    figs = key_figures([line for batch in gen.batches(300) for line in batch])
    labels = gen.labels()
    (ip,) = labels["ip"]
    f = figs["ip"][ip]
    assert f.requests > 1000 and f.auth_fail / f.requests > 0.9
    throwaway = labels["accomplices"]["user"]
    assert len(throwaway) == f.requests
    assert all(figs["user"][u].requests == 1 for u in list(throwaway)[:100])


def test_scraper_fetches_distinct_pages_at_a_steady_pace(figs, labels) -> None:  # type: ignore[no-untyped-def]
    scraper = _one(figs, labels, "ip", "scraper")
    assert scraper.distinct_paths == scraper.requests > 3000
    assert 170 <= scraper.max_per_minute <= 190
    normal = _normal(figs, labels, "user")
    assert scraper.distinct_paths > 5 * max(f.distinct_paths for f in normal)
    prefetch = _one(figs, labels, "ip", "cdn_prefetcher", "hard_negatives")
    assert prefetch.distinct_paths <= 40
    assert prefetch.distinct_paths < _q([f.distinct_paths for f in normal], 0.99)
    assert prefetch.misses == 0


def test_origin_exhaustion_misses_the_cache_on_purpose(figs, labels) -> None:  # type: ignore[no-untyped-def]
    ips = _keys(labels, "ip", "origin_exhaustion")
    assert len(ips) == 3
    for ip in ips:
        f = figs["ip"][ip]
        assert f.misses / f.requests > 0.9
        assert f.distinct_uris == f.requests, "every request has its own cache-busting query"
    normal = [f for f in _normal(figs, labels, "ip") if f.requests >= 50]
    total = sum(f.requests for f in normal)
    assert sum(f.misses for f in normal) / total < 0.5


def test_api_free_rider_shares_one_key_across_many_servers(figs, labels) -> None:  # type: ignore[no-untyped-def]
    (key,) = labels["api_key"]
    f = figs["api_key"][key]
    assert f.distinct_ips == 25 and f.requests > 5000
    assert all(k.startswith("ak_live_") for k in figs["api_key"])
    assert len(figs["api_key"]) == 1, "ordinary traffic sends no API key"


def test_api_free_rider_without_a_key_is_refused_mostly() -> None:
    gen = Generator(seed=4, rate=5, scenarios="api_free_rider:mode=no_key:start_s=0", negatives="none")
    figs = key_figures([line for batch in gen.batches(300) for line in batch])
    labels = gen.labels()
    (ip,) = labels["ip"]
    f = figs["ip"][ip]
    assert f.requests > 1000 and 0.6 < f.auth_fail / f.requests < 0.9
    assert "api_key" not in labels or not labels["api_key"]


def test_labels_name_every_key_with_its_start(figs, labels) -> None:  # type: ignore[no-untyped-def]
    assert labels["format"] == "cfguard-traffic-labels/1"
    for kt in ("user", "ip", "api_key"):
        for key in labels.get(kt, {}):
            assert key in figs[kt], f"labelled {kt} {key} never appears"
        assert not set(labels.get(kt, {})) & set(labels["hard_negatives"].get(kt, {}))
    by_name = {s["name"]: s for s in labels["scenarios"]}
    assert set(by_name) == {
        "bandwidth_hog",
        "request_flood",
        "scanner",
        "credential_stuffing",
        "scraper",
        "origin_exhaustion",
        "api_free_rider",
        "heavy_downloader",
        "nat_office",
        "monitor",
        "password_retry",
        "cdn_prefetcher",
        "search_crawler",
    }
    for s in labels["scenarios"]:
        for kt, keys in s["keys"].items():
            for k in keys:
                assert figs[kt][k].first >= s["start"]
    assert by_name["scanner"]["start"] == labels["generator"]["start"] + 30
    assert by_name["scanner"]["params"]["rate"] == 8.0


def test_mobile_carrier_nat_carries_only_phones() -> None:
    gen = Generator(seed=8, rate=20, scenarios="none", negatives="nat_office:mobile=true:users=80")
    lines = [line for batch in gen.batches(300) for line in batch]
    (nat_ip,) = gen.labels()["hard_negatives"]["ip"]
    agents = {line.split(b"\t")[16] for line in lines if line.split(b"\t")[1].decode() == nat_ip}
    assert len(agents) >= 2
    assert all(b"Mobile" in a or b"iPhone" in a or a == b"okhttp/4.12.0" for a in agents)


def test_search_crawler_is_slow_and_cookieless(figs, labels) -> None:  # type: ignore[no-untyped-def]
    crawler = _one(figs, labels, "ip", "search_crawler", "hard_negatives")
    scraper = _one(figs, labels, "ip", "scraper")
    assert crawler.distinct_paths > 0.95 * crawler.requests > 500  # distinct pages, like a scraper...
    assert crawler.max_per_minute <= 31  # ...at a sixth of its pace
    assert crawler.distinct_paths < scraper.distinct_paths / 5
