"""The default detectors on a generated day of traffic: every abuser flagged, no hard negative, and a
snapshot/restore half-way gives exactly the findings of an uninterrupted run."""

from __future__ import annotations

import pickle
from collections import defaultdict

import pytest

from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine
from detectors.finding import Finding
from tests.detectors.helpers import as_json
from tests.detectors.traffic import ABUSERS, generate


def fresh() -> Engine:
    return Engine.from_config(default_detectors(), StateConfig(), ["ip", "user"])


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
    for key, detector in ABUSERS.items():
        assert detector in by_key.get(key, set()), (key, detector)
    # No finding on anyone else: the NAT, its 300 users, the monitor, the heaviest normal user, background.
    assert set(by_key) == set(ABUSERS)


def test_findings_explain_themselves(uninterrupted: list[Finding]) -> None:
    flood = next(f for f in uninterrupted if f.detector == "request_flood_ip")
    assert flood.evidence["value"] == 6000 and flood.score == 1.0 and flood.mode == "block"
    assert flood.evidence["window_end"] - flood.evidence["window_start"] == 60
    daily = next(f for f in uninterrupted if f.detector == "bandwidth_hog_daily")
    assert daily.evidence["value"] >= 50e9 and daily.window == "1d" and daily.window_s == 86400
    # 200 MB records: crossing 50 GB needs the 250th download of the day, the last one before 15:30 UTC
    assert daily.evidence["value"] == 250 * 200e6
    surge = next(f for f in uninterrupted if f.detector == "request_surge_user")
    assert surge.evidence["history_windows"] == 8 and 90 <= surge.evidence["baseline_mean"] <= 110


def test_snapshot_restore_half_way_gives_the_same_findings(traffic, uninterrupted: list[Finding]) -> None:
    half = len(traffic) // 2
    a = fresh()
    first = [f for b in traffic[:half] for f in a.process(b)]
    blob = pickle.dumps(a.snapshot())
    b = fresh()
    b.restore(pickle.loads(blob))
    rest = [f for batch in traffic[half:] for f in b.process(batch)]
    assert as_json(first + rest) == as_json(uninterrupted)


def test_restore_refuses_a_snapshot_of_another_configuration() -> None:
    other = Engine.from_config(default_detectors()[:3], StateConfig(), ["ip", "user"])
    with pytest.raises(ValueError, match="different detector/state configuration"):
        fresh().restore(other.snapshot())
    with pytest.raises(ValueError, match="must be bytes"):
        fresh().restore({"not": "a snapshot"})
