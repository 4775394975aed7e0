"""Engine + rule detectors: exact crossing record, re-emission, windows, filters, lateness, eviction."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.config import RatioSpec, RuleSpec, StateConfig
from detectors.engine import Engine
from tests.detectors.helpers import batch


def engine(*specs, key_types=("ip",), **state) -> Engine:
    return Engine.from_config(list(specs), StateConfig(**state), list(key_types))


FLOOD = RuleSpec(name="flood", key="ip", window="1m", metric="requests", threshold=5)


def test_fires_at_exactly_the_record_that_crosses_and_reemits_on_doubling() -> None:
    e = engine(FLOOD)
    rows = [{"t": 100.0 + i, "ip": "a"} for i in range(12)] + [{"t": 101.0 + i, "ip": "b"} for i in range(4)]
    found = e.process(batch(rows, ["ip"]))
    assert [(f.key, f.event_time, f.score) for f in found] == [("a", 104.0, 1.0), ("a", 109.0, 2.0)]
    f = found[0]
    assert f.detector == "flood" and f.key_type == "ip" and f.window == "1m" and f.window_s == 60
    assert f.threshold == 5.0 and f.mode == "alert"
    assert f.evidence == {
        "metric": "requests",
        "value": 5,
        "requests": 5,
        "window_start": 60.0,
        "window_end": 120.0,
    }


def test_running_value_spans_batches_and_one_record_per_batch() -> None:
    e = engine(FLOOD)
    out = []
    for i in range(6):
        out += e.process(batch([{"t": 60.0 + i, "ip": "a"}], ["ip"]))
    assert [(f.event_time, f.score) for f in out] == [(64.0, 1.0)]


def test_window_boundary_resets_the_count_and_a_new_window_emits_again() -> None:
    e = engine(FLOOD)
    rows = [{"t": 115.0 + i * 0.5, "ip": "a"} for i in range(9)]  # 115.0 .. 119.0: 9 records in [60,120)
    rows += [{"t": 119.999, "ip": "a"}]  # 10th in the same window: score 2
    rows += [{"t": 120.0 + i, "ip": "a"} for i in range(5)]  # new window [120,180): fires at the 5th
    found = e.process(batch(rows, ["ip"]))
    assert [(f.event_time, f.score, f.evidence["window_start"]) for f in found] == [
        (117.0, 1.0, 60.0),
        (119.999, 2.0, 60.0),
        (124.0, 1.0, 120.0),
    ]


def test_bytes_threshold_score_is_value_over_threshold() -> None:
    spec = RuleSpec(name="hog", key="user", window="1h", metric="bytes_sent", threshold=1000)
    e = engine(spec, key_types=("user",))
    rows = [{"t": 3600.0 + i, "user": "u1", "bytes": 400} for i in range(3)]
    rows += [{"t": 3610.0, "user": "u1", "bytes": float("nan")}]  # missing sc-bytes counts 0
    found = e.process(batch(rows, ["user"]))
    assert [(f.event_time, f.score, f.evidence["value"]) for f in found] == [(3602.0, 1.2, 1200)]
    assert found[0].evidence["window_start"] == 3600.0 and found[0].evidence["window_end"] == 7200.0


def test_path_filter_counts_only_matching_requests() -> None:
    spec = RuleSpec(name="stuff", key="ip", window="5m", metric="auth_failures", threshold=3, path=r"^/login")
    e = engine(spec)
    rows = [{"t": 300.0 + i, "ip": "a", "status": 401, "uri": "/api/x"} for i in range(5)]
    rows += [{"t": 310.0 + i, "ip": "a", "status": 403, "uri": "/login"} for i in range(3)]
    found = e.process(batch(rows, ["ip"]))
    assert [(f.event_time, f.evidence["value"], f.evidence["path"]) for f in found] == [(312.0, 3, "^/login")]
    assert e.required_fields() >= {"cs-uri-stem", "sc-status", "timestamp"}


def test_ratio_waits_for_min_requests_and_min_numerator() -> None:
    spec = RatioSpec(
        name="r",
        key="ip",
        window="5m",
        numerator="auth_failures",
        threshold=0.5,
        min_requests=4,
        min_numerator=3,
    )
    e = engine(spec)
    statuses = [401, 401, 200, 200, 401, 200, 200, 200]
    rows = [{"t": 600.0 + i, "ip": "a", "status": s} for i, s in enumerate(statuses)]
    found = e.process(batch(rows, ["ip"]))
    # After 4 records: 2/4 = 0.5 but only 2 failures (< 3); the 5th makes 3/5 = 0.6 -> score 1.2.
    assert [(f.event_time, round(f.score, 6)) for f in found] == [(604.0, 1.2)]
    assert found[0].evidence["numerator_value"] == 3 and found[0].evidence["denominator_value"] == 5


def test_status_filter_with_distinct_uris_scanner() -> None:
    spec = RuleSpec(
        name="scan",
        key="ip",
        window="5m",
        metric="distinct_uris",
        status=(403, 404),
        threshold=20,
        min_requests=20,
    )
    e = engine(spec)
    ok_rows = [{"t": 900.0, "ip": "a", "status": 200, "uri": f"/ok/{i}"} for i in range(200)]
    assert e.process(batch(ok_rows, ["ip"])) == []  # 200 distinct but successful: not scanning
    scan = [{"t": 901.0, "ip": "a", "status": 404, "uri": f"/wp-admin/{i}.php"} for i in range(40)]
    found = e.process(batch(scan, ["ip"]))
    # As record by record, whatever the batch: first at the crossing record (the 20th 404, when
    # min_requests is met), again at the record whose estimate doubles the threshold (re-emission).
    assert [f.key for f in found] == ["a", "a"]
    first, last = found
    assert first.evidence["requests"] == 20 and 1.0 <= first.score < 2.0
    assert last.score >= 2.0 and 20 < last.evidence["requests"] < 40
    assert last.evidence["value"] >= 40  # the sketch's estimate, at that record
    assert isinstance(last.evidence["value"], int) and last.evidence["estimated"] is True
    assert last.evidence["status"] == [403, 404]


def test_late_within_lateness_counts_beyond_it_is_dropped_and_counted() -> None:
    e = engine(FLOOD, allowed_lateness_s=30)
    e.process(batch([{"t": 100.0, "ip": "a"}, {"t": 130.0, "ip": "x"}], ["ip"]))
    # 110 is 20 s behind the watermark (130): accepted, lands in window [60,120) with the record at 100.
    # 90 is 40 s behind: dropped and counted.
    found = e.process(
        batch([{"t": 110.0, "ip": "a"}, {"t": 90.0, "ip": "a"}] + [{"t": 111.0, "ip": "a"}] * 3, ["ip"])
    )
    assert [(f.event_time, f.evidence["value"], f.evidence["window_start"]) for f in found] == [
        (111.0, 5, 60.0)
    ]
    st = e.stats()
    assert st["late_dropped"] == 1 and st["late_accepted"] == 4 and st["records"] == 7


def test_out_of_order_across_a_window_boundary_inside_a_batch() -> None:
    e = engine(FLOOD, allowed_lateness_s=60)
    rows = [
        {"t": 118.0, "ip": "a"},
        {"t": 121.0, "ip": "a"},
        {"t": 119.0, "ip": "a"},
        {"t": 122.0, "ip": "a"},
    ]
    rows += [{"t": 119.5, "ip": "a"}] * 3
    found = e.process(batch(rows, ["ip"]))
    # window [60,120) gets 118, 119, 119.5 x3 = 5 records: fires at the last 119.5 (arrival order kept)
    assert [(f.event_time, f.evidence["window_start"]) for f in found] == [(119.5, 60.0)]
    e.process(batch([{"t": 123.0 + i, "ip": "a"} for i in range(3)], ["ip"]))
    # [120,180) now has 121, 122, 123, 124, 125 -> crossing was at 125
    assert e.process(batch([{"t": 126.0, "ip": "a"}], ["ip"])) == []


def test_records_without_a_key_are_skipped_for_that_key_type_only() -> None:
    specs = [FLOOD, RuleSpec(name="uflood", key="user", window="1m", metric="requests", threshold=5)]
    e = engine(*specs, key_types=("ip", "user"))
    rows = [{"t": 60.0 + i, "ip": "a", "user": None} for i in range(5)]
    found = e.process(batch(rows))
    assert [f.detector for f in found] == ["flood"]
    assert e.stats()["tracked_keys.user"] == 0 and e.stats()["tracked_keys.ip"] == 1


def test_lru_eviction_forgets_the_least_recently_seen_key_first(caplog: pytest.LogCaptureFixture) -> None:
    e = engine(FLOOD, max_keys=3)
    e.process(batch([{"t": 60.0, "ip": "a"}, {"t": 61.0, "ip": "b"}, {"t": 62.0, "ip": "c"}], ["ip"]))
    e.process(batch([{"t": 63.0, "ip": "a"}] * 3, ["ip"]))  # a: 4 requests, now the most recent
    e.process(batch([{"t": 64.0, "ip": "d"}], ["ip"]))  # full: b (last seen 61) goes
    st = e.stats()
    assert st["evicted_lru.ip"] == 1 and st["tracked_keys.ip"] == 3
    assert e.tables["ip"].live_keys() == {"a", "c", "d"}
    e.process(batch([{"t": 65.0, "ip": "b"}], ["ip"]))  # b returns: c (62) goes, b starts from zero
    assert e.tables["ip"].live_keys() == {"a", "b", "d"}
    found = e.process(batch([{"t": 66.0, "ip": "a"}] + [{"t": 66.0, "ip": "b"}] * 3, ["ip"]))
    assert [(f.key, f.evidence["value"]) for f in found] == [("a", 5)]  # b has 4: its old count is gone
    assert e.stats()["evicted_lru.ip"] == 2
    full = [r for r in caplog.records if "reached state.max_keys" in r.getMessage()]
    assert len(full) == 1 and "'ip'" in full[0].getMessage()  # once, naming the key type, no key


def test_more_new_keys_in_one_batch_than_max_keys_is_processed_in_chunks() -> None:
    e = engine(FLOOD, max_keys=4)
    rows = [{"t": 60.0 + i, "ip": f"k{i}"} for i in range(10)]
    e.process(batch(rows, ["ip"]))
    assert e.stats()["tracked_keys.ip"] == 4 and e.stats()["evicted_lru.ip"] == 6
    assert e.tables["ip"].live_keys() == {"k6", "k7", "k8", "k9"}


def test_idle_keys_are_evicted_in_event_time() -> None:
    e = engine(FLOOD, idle_timeout_s=600, allowed_lateness_s=0)
    e.process(batch([{"t": 1000.0, "ip": "a"}, {"t": 1300.0, "ip": "b"}], ["ip"]))
    e.process(batch([{"t": 1601.0, "ip": "c"}], ["ip"]))  # a idle 601 s > 600: gone; b idle 301 s: kept
    assert e.tables["ip"].live_keys() == {"b", "c"}
    assert e.stats()["evicted_idle.ip"] == 1


def test_empty_batch_and_bad_times() -> None:
    e = engine(FLOOD)
    from detectors.batch import RecordBatch

    assert e.process(RecordBatch.empty()) == []
    b = batch([{"t": 60.0, "ip": "a"}, {"t": 61.0, "ip": "a"}], ["ip"])
    b.time[1] = np.nan
    assert e.process(b) == []
    assert e.stats()["bad_time"] == 1 and e.stats()["records"] == 2


def test_missing_key_column_is_a_clear_error() -> None:
    e = engine(FLOOD)
    b = batch([{"t": 60.0, "ip": "a"}], [])
    with pytest.raises(ValueError, match="no keys for key type 'ip'"):
        e.process(b)


def test_unknown_key_type_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'flood' uses key type 'ip'"):
        Engine.from_config([FLOOD], StateConfig(), ["user"])


def test_sliding_rule_weights_the_previous_window_by_the_part_still_inside() -> None:
    spec = RuleSpec(name="sflood", key="ip", window="1m", metric="requests", threshold=10, sliding=True)
    e = engine(spec)
    rows = [{"t": 100.0 + i, "ip": "a"} for i in range(8)]  # 8 in [60,120): below 10
    rows += [{"t": 125.0, "ip": "a"}, {"t": 126.0, "ip": "a"}, {"t": 127.0, "ip": "a"}]
    found = e.process(batch(rows, ["ip"]))
    # at 125: 1 + 8 * (1 - 5/60) = 8.33; at 126: 2 + 8 * 54/60 = 9.2; at 127: 3 + 8 * 53/60 = 10.07
    assert [f.event_time for f in found] == [127.0]
    f = found[0]
    assert f.score == pytest.approx((3 + 8 * 53 / 60) / 10)
    assert f.evidence["current_window_value"] == 3 and f.evidence["previous_window_value"] == 8
    assert f.evidence["previous_weight"] == pytest.approx(53 / 60, abs=1e-6)
    assert (
        f.evidence["sliding"] is True
        and f.evidence["window_start"] == 67.0
        and f.evidence["window_end"] == 127.0
    )
    # the aligned rule misses this burst entirely (8 + 3 split over two windows)
    assert engine(FLOOD.model_copy(update={"threshold": 10})).process(batch(rows, ["ip"])) == []


def test_sliding_needs_a_sum_metric() -> None:
    with pytest.raises(ValueError, match="'distinct_uris' is a distinct metric"):
        RuleSpec(name="s", key="ip", metric="distinct_uris", threshold=10, sliding=True)


def test_idle_timeout_shorter_than_a_window_is_refused_naming_the_detector() -> None:
    daily = RuleSpec(name="daily_cap", key="ip", window="24h", metric="bytes_sent", threshold=1e9)
    with pytest.raises(ValueError, match=r"idle_timeout_s \(3600\).*'daily_cap'"):
        engine(FLOOD, daily, idle_timeout_s=3600)
    assert engine(FLOOD, daily, idle_timeout_s=86400 + 60).stats()["records"] == 0


def test_a_corrupt_future_timestamp_does_not_drag_the_watermark() -> None:
    e = engine(FLOOD, allowed_lateness_s=30, max_future_s=3600)
    rows = [{"t": 1000.0 + i, "ip": "a"} for i in range(3)] + [{"t": 4_000_000_000.0, "ip": "a"}]
    e.process(batch(rows, ["ip"]))
    st = e.stats()
    assert st["future_dropped"] == 1 and st["watermark"] == 1002.0
    found = e.process(batch([{"t": 1003.0, "ip": "a"}, {"t": 1004.0, "ip": "a"}], ["ip"]))
    assert [(f.event_time, f.evidence["value"]) for f in found] == [(1004.0, 5)]  # still counted
    assert e.stats()["late_dropped"] == 0


def test_a_real_gap_in_the_stream_moves_the_watermark_on() -> None:
    e = engine(FLOOD, allowed_lateness_s=30, max_future_s=3600)
    e.process(batch([{"t": 1000.0, "ip": "a"}], ["ip"]))
    later = 1000.0 + 3 * 86400  # the whole next batch is three days on: a gap, not corruption
    found = e.process(batch([{"t": later + i, "ip": "a"} for i in range(5)], ["ip"]))
    assert [f.event_time for f in found] == [later + 4]
    assert e.stats()["future_dropped"] == 0 and e.stats()["watermark"] == later + 4


def test_a_sparse_batch_spanning_days_is_not_mistaken_for_corruption() -> None:
    e = engine(FLOOD, allowed_lateness_s=30, max_future_s=3600)
    rows = [{"t": 1000.0 + 7200.0 * i, "ip": f"k{i}"} for i in range(100)]  # one record every 2 h
    e.process(batch(rows, ["ip"]))
    st = e.stats()
    assert st["future_dropped"] == 0 and st["late_dropped"] == 0 and st["watermark"] == 1000.0 + 7200.0 * 99


def test_distinct_rule_decides_at_the_same_record_whatever_the_batching() -> None:
    spec = RuleSpec(name="scrape", key="ip", window="5m", metric="distinct_uris", threshold=25)
    rows = [{"t": 900.0 + i, "ip": "ab"[i % 2], "status": 200, "uri": f"/p/{i}"} for i in range(160)]
    whole = engine(spec).process(batch(rows, ["ip"]))
    e = engine(spec)
    split = [f for i in range(0, len(rows), 7) for f in e.process(batch(rows[i : i + 7], ["ip"]))]
    assert [(f.key, f.event_time, f.score) for f in whole] == [(f.key, f.event_time, f.score) for f in split]
    assert {f.key for f in whole} == {"a", "b"}
