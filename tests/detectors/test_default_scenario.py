"""The default detectors on an hour of generated traffic (``consumer.traffic``): every abuser flagged by
the detector meant for it, nobody else flagged (hard negatives, ordinary users), and a snapshot/restore
half-way gives exactly the findings of an uninterrupted run. The end-to-end version through the
pipeline, over several seeds and rates, is tests/test_detection_quality.py."""

from __future__ import annotations

import pickle
from collections import defaultdict

import pytest

from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine
from detectors.finding import Finding
from tests.detectors.generated import KEY_TYPES, generate, labels
from tests.detectors.helpers import as_json

#: (scenario, key type) -> the default detector meant to catch that key.
EXPECTED = {
    ("bandwidth_hog", "user"): "bandwidth_hog_hourly",
    ("bandwidth_hog", "ip"): "bandwidth_hog_ip",
    ("request_flood", "ip"): "request_flood_ip",
    ("scanner", "ip"): "scanner_ip",
    ("credential_stuffing", "user"): "credential_stuffing_user",
    ("scraper", "user"): "scraping_user",
    ("scraper", "ip"): "scraping_ip",
    ("origin_exhaustion", "ip"): "origin_exhaustion_ip",
    ("api_free_rider", "api_key"): "api_key_overuse",
}


def fresh() -> Engine:
    return Engine.from_config(default_detectors(), StateConfig(), list(KEY_TYPES))


@pytest.fixture(scope="module")
def traffic():
    return generate()


@pytest.fixture(scope="module")
def uninterrupted(traffic) -> list[Finding]:
    e = fresh()
    return [f for b in traffic for f in e.process(b)]


def test_every_abuser_is_flagged_by_its_detector_and_nobody_else_is(uninterrupted: list[Finding]) -> None:
    by_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in uninterrupted:
        by_key[(f.key_type, f.key)].add(f.detector)
    lab = labels()
    abusers = {(kt, k): EXPECTED[(name, kt)] for kt in KEY_TYPES for k, name in lab[kt].items()}
    assert set(abusers.values()) == set(EXPECTED.values())
    for key, detector in abusers.items():
        assert detector in by_key.get(key, set()), (key, detector)
    # No finding on anyone else: the NAT and its 300 users, the monitor, the heaviest normal user, the
    # crawler, the prefetcher, ordinary users. Accomplices (one proxy of 2,000) may or may not be caught.
    accomplices = {(kt, k) for kt, keys in lab["accomplices"].items() for k in keys}
    assert set(by_key) - accomplices == set(abusers)


def test_findings_explain_themselves(uninterrupted: list[Finding]) -> None:
    flood = next(f for f in uninterrupted if f.detector == "request_flood_ip")
    assert flood.evidence["value"] == 1200 and flood.score == 1.0 and flood.mode == "block"
    assert flood.evidence["window_end"] - flood.evidence["window_start"] == 60
    daily = next(f for f in uninterrupted if f.detector == "bandwidth_hog_daily")
    assert daily.evidence["value"] >= 50e9 and daily.window == "1d" and daily.window_s == 86400
    # The hog's 16 MiB ranges: the first one that takes the day's total past 50 GB.
    assert daily.evidence["value"] - 50e9 <= 16 * 2**20 and daily.score >= 1.0
    stuffing = next(f for f in uninterrupted if f.detector == "credential_stuffing_user")
    assert stuffing.evidence["value"] == 20 and stuffing.window_s == 300 and stuffing.key_type == "user"


def test_snapshot_restore_half_way_gives_the_same_findings(traffic, uninterrupted: list[Finding]) -> None:
    half = len(traffic) // 2
    a = fresh()
    first = [f for b in traffic[:half] for f in a.process(b)]
    blob = pickle.dumps(a.snapshot())
    b = fresh()
    b.restore(pickle.loads(blob))
    rest = [f for batch in traffic[half:] for f in b.process(batch)]
    assert as_json(first + rest) == as_json(uninterrupted)


def test_restore_refuses_what_is_not_a_snapshot() -> None:
    with pytest.raises(ValueError, match="must be bytes"):
        fresh().restore({"not": "a snapshot"})
    with pytest.raises(ValueError, match="unknown format"):
        fresh().restore(pickle.dumps({"version": 99}))


def test_restore_into_a_tuned_configuration_keeps_what_still_means_the_same(caplog) -> None:
    from detectors.config import BaselineSpec, RuleSpec
    from tests.detectors.helpers import batch

    flood = RuleSpec(name="flood", key="ip", window="1m", metric="requests", threshold=10)
    surge = BaselineSpec(name="surge", key="ip", window="1m", k=3, min_history=2, min_value=5)
    old = Engine.from_config([flood, surge], StateConfig(allowed_lateness_s=0), ["ip"])
    for minute in range(3):
        old.process(batch([{"t": 60.0 * minute + i, "ip": "a"} for i in range(4)], ["ip"]))
    old.process(batch([{"t": 180.0, "ip": "a"}, {"t": 181.0, "ip": "a"}], ["ip"]))  # 2 in [180,240)
    # Tuned: flood threshold 10 -> 5, baseline k 3 -> 1 and min_value 5 -> 3; a new detector.
    tuned = [
        flood.model_copy(update={"threshold": 5}),
        surge.model_copy(update={"k": 1.0, "min_value": 3}),
        RuleSpec(name="nf", key="ip", window="5m", metric="not_found", threshold=1),
    ]
    new = Engine.from_config(tuned, StateConfig(allowed_lateness_s=0), ["ip"])
    new.restore(old.snapshot())
    assert "started empty: 300 s window of 'ip' (new), detector 'nf' (new)" in caplog.text
    base = new.detectors[1]
    slot = new.tables["ip"].slot_of("a")
    assert base.count[slot] == 3 and base.mean[slot] == pytest.approx(4.0)  # history kept
    found = new.process(batch([{"t": 182.0 + i, "ip": "a"} for i in range(3)], ["ip"]))
    # The window [180,240) already had 2: the 3rd record makes 5 = the new flood threshold, and
    # 4 = the baseline's new threshold (mean 4 + 1 * std 0) came one record earlier.
    assert [(f.detector, f.event_time) for f in found] == [("surge", 183.0), ("flood", 184.0)]


def test_default_state_per_key_is_compact() -> None:
    """Per-key bytes of the default set, measured on the arrays: about 200 per key per key type
    (the <= 400 bytes per key budget also has to hold the key string and allocator slack)."""
    import numpy as np

    from detectors.batch import RecordBatch

    n = 20_000
    e = Engine.from_config(default_detectors(), StateConfig(max_keys=n), list(KEY_TYPES))
    b = RecordBatch(time=np.full(n, 1_764_000_000.0))
    b.numbers.update({"sc-status": np.full(n, 200.0), "sc-bytes": np.full(n, 1000.0)})
    b.texts.update({"cs-uri-stem": ["/"] * n, "x-edge-result-type": ["Hit"] * n})
    b.keys.update(
        {"ip": [f"ip{i}" for i in range(n)], "user": [f"u{i}" for i in range(n)], "api_key": [None] * n}
    )
    e.process(b)
    st = e.stats()
    assert st["tracked_keys.ip"] == n and st["tracked_keys.user"] == n
    per_key = st["state_bytes"] / (2 * n)
    assert 150 <= per_key <= 260, per_key
