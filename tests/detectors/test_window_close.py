"""The "window closed" hook (what the ML detector plugs into) and the baseline detector."""

from __future__ import annotations

from typing import Any

import pytest

from detectors import registry
from detectors.base import WindowDetector
from detectors.config import BaselineSpec, StateConfig
from detectors.engine import Engine
from detectors.finding import Finding
from detectors.spec_base import Strict
from detectors.windowclose import WindowCloseAdapter
from tests.detectors.helpers import batch


class Recorder:
    """A per-key evaluator like the ML detector: records every call, flags keys named 'bad'."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, float], float, int]] = []

    def evaluate(self, key_type: str, key: str, features: dict[str, float], event_time: float, window_s: int):
        self.calls.append((key_type, key, features, event_time, window_s))
        if key != "bad":
            return None
        return Finding(key, key_type, "rec", 2.0, 1.0, "1m", window_s, event_time, "alert", {"f": features})


class HookSpec(Strict):
    type: str = "hook"
    name: str = "hook"
    key: str = "ip"
    mode: str = "alert"


def hook_engine(min_requests: int = 2, lateness: int = 10, **state: Any) -> tuple[Engine, Recorder]:
    rec = Recorder()
    det = WindowCloseAdapter(
        HookSpec(), rec, ("requests", "not_found", "bytes_sent", "distinct_uris"), 60, min_requests
    )
    return Engine([det], StateConfig(allowed_lateness_s=lateness, **state), ["ip"]), rec


def test_closed_window_delivered_once_after_watermark_minus_lateness_passes_its_end() -> None:
    e, rec = hook_engine()
    rows = [
        {"t": 60.0 + i, "ip": "a", "uri": f"/{i}", "status": 404 if i < 2 else 200, "bytes": 10}
        for i in range(3)
    ]
    rows += [{"t": 65.0, "ip": "b"}]  # one request: below min_requests, never evaluated
    e.process(batch(rows, ["ip"]))
    e.process(batch([{"t": 129.0, "ip": "c"}], ["ip"]))  # watermark 129 - 10 < 120: still open
    assert rec.calls == []
    e.process(batch([{"t": 130.0, "ip": "c"}], ["ip"]))  # 130 - 10 >= 120: [60,120) closed
    assert len(rec.calls) == 1
    key_type, key, features, event_time, window_s = rec.calls[0]
    assert (key_type, key, event_time, window_s) == ("ip", "a", 120.0, 60)
    assert features["requests"] == 3 and features["not_found"] == 2 and features["bytes_sent"] == 30
    assert 2.5 <= features["distinct_uris"] <= 3.5
    e.process(batch([{"t": 500.0, "ip": "c"}], ["ip"]))
    assert [c[1] for c in rec.calls] == ["a", "c"]  # c's [120,180) window, delivered once; a not again
    assert rec.calls[1][3] == 180.0 and rec.calls[1][2]["requests"] == 2


def test_late_record_within_lateness_is_in_the_closed_window_features() -> None:
    e, rec = hook_engine(min_requests=1, lateness=30)
    e.process(batch([{"t": 100.0, "ip": "a"}, {"t": 125.0, "ip": "a"}], ["ip"]))
    e.process(batch([{"t": 110.0, "ip": "a"}], ["ip"]))  # late (15 s) for window [60,120), accepted
    e.process(batch([{"t": 151.0, "ip": "z"}], ["ip"]))  # 151 - 30 >= 120: [60,120) closes
    assert [(c[1], c[3], c[2]["requests"]) for c in rec.calls] == [("a", 120.0, 2)]


def test_a_key_jumping_windows_delivers_its_skipped_window_and_findings_come_back() -> None:
    e, rec = hook_engine(min_requests=1, lateness=0)
    e.process(batch([{"t": 10.0, "ip": "bad"}, {"t": 11.0, "ip": "bad"}], ["ip"]))
    found = e.process(batch([{"t": 300.0, "ip": "bad"}], ["ip"]))
    assert [(c[1], c[3], c[2]["requests"]) for c in rec.calls] == [("bad", 60.0, 2)]
    assert [(f.key, f.event_time) for f in found] == [("bad", 60.0)]


def test_evicted_keys_deliver_their_open_windows_first() -> None:
    e, rec = hook_engine(min_requests=1, lateness=0, max_keys=1)
    e.process(batch([{"t": 10.0, "ip": "a"}], ["ip"]))
    e.process(batch([{"t": 11.0, "ip": "b"}], ["ip"]))  # a evicted (LRU): its open window goes out
    assert [(c[1], c[3]) for c in rec.calls] == [("a", 11.0)]  # at the watermark, not the window's end


def test_registering_a_new_kind_is_one_call() -> None:
    class Spec(Strict):
        type: str = "counter"
        name: str = "cnt"
        key: str = "ip"
        mode: str = "alert"

    class Counter(WindowDetector):
        def __init__(self, spec: Spec) -> None:
            self.spec = spec
            self.inner = WindowCloseAdapter(spec, Recorder(), ("requests",), 60, 1)

        def needs(self):
            return self.inner.needs()

    registry.register(Spec, Counter)
    try:
        e = Engine.from_config([Spec()], StateConfig(), ["ip"])
        assert isinstance(e.detectors[0], Counter)
    finally:
        del registry.KINDS[Spec]
    with pytest.raises(ValueError, match="no detector registered for spec type Spec"):
        Engine.from_config([Spec()], StateConfig(), ["ip"])


BASE = BaselineSpec(
    name="surge", key="user", window="1m", metric="requests", k=3.0, alpha=0.5, min_history=3, min_value=4
)


def test_baseline_learns_at_window_close_and_scores_against_mean_plus_k_std() -> None:
    e = Engine.from_config([BASE], StateConfig(allowed_lateness_s=0), ["user"])
    det = e.detectors[0]
    found = []
    # Three minutes of history: 4, 6, 4 requests (only closed windows are learned).
    for minute, n in enumerate((4, 6, 4)):
        found += e.process(batch([{"t": 60.0 * minute + i, "user": "u"} for i in range(n)], ["user"]))
    assert found == []  # history too short while the first three windows were open
    slot = e.tables["user"].slot_of("u")
    assert det.count[slot] == 2  # [0,60) and [60,120) closed; [120,180) still open
    e.process(batch([{"t": 180.0, "user": "other"}], ["user"]))  # closes [120,180) for u
    assert det.count[slot] == 3
    # EWMA (alpha 0.5): mean 4 -> 5 -> 4.5; var 0 -> 0.5*(0+2*1)=1 -> 0.5*(1+(-1)*(-0.5))=0.75
    assert det.mean[slot] == pytest.approx(4.5) and det.var[slot] == pytest.approx(0.75)
    thr = 4.5 + 3.0 * 0.75**0.5  # 7.098...
    rows = [{"t": 181.0 + i * 0.1, "user": "u"} for i in range(16)]
    found = e.process(batch(rows, ["user"]))
    # 8 requests is the first value >= 7.098: the 8th record; doubling (>= 14.2) at the 15th.
    assert [(f.event_time, f.evidence["value"]) for f in found] == [(181.7, 8), (182.4, 15)]
    assert found[0].threshold == pytest.approx(thr) and found[0].score == pytest.approx(8 / thr)
    assert found[0].evidence["history_windows"] == 3
    # The flagged window is not learned when it closes.
    e.process(batch([{"t": 300.0, "user": "other"}], ["user"]))
    assert det.count[slot] == 3 and det.skipped_flagged == 1


def test_baseline_min_value_floor_keeps_quiet_keys_quiet() -> None:
    e = Engine.from_config([BASE], StateConfig(allowed_lateness_s=0), ["user"])
    for minute in range(5):
        e.process(batch([{"t": 60.0 * minute, "user": "u"}], ["user"]))  # 1 request a minute: std 0
    found = e.process(batch([{"t": 300.0 + i, "user": "u"} for i in range(3)], ["user"]))
    assert found == []  # 3 > mean + k*std = 1, but below min_value 4
    found = e.process(batch([{"t": 304.0, "user": "u"}], ["user"]))
    assert [(f.evidence["value"], f.threshold) for f in found] == [(4, 4.0)]


def test_baseline_learns_every_window_of_a_batch_spanning_several() -> None:
    e = Engine.from_config([BASE], StateConfig(allowed_lateness_s=0), ["user"])
    rows = [{"t": 60.0 * m + 1, "user": "u"} for m in range(8) for _ in range(4 + m % 2)]  # 4,5,4,5,...
    e.process(batch([*rows, {"t": 481.0, "user": "x"}], ["user"]))
    det = e.detectors[0]
    slot = e.tables["user"].slot_of("u")
    assert det.count[slot] == 8 and det.learned >= 8
    mean, var = 4.0, 0.0
    for x in (5, 4, 5, 4, 5, 4, 5):
        diff = x - mean
        mean, var = mean + 0.5 * diff, 0.5 * (var + diff * 0.5 * diff)
    assert det.mean[slot] == pytest.approx(mean, rel=1e-6) and det.var[slot] == pytest.approx(var, rel=1e-5)


def test_window_close_features_of_every_window_of_a_batch_spanning_several() -> None:
    e, rec = hook_engine(min_requests=1, lateness=60)
    rows = [{"t": 60.0 * m + 5, "ip": "a"} for m in range(8) for _ in range(m + 1)]
    e.process(batch(rows, ["ip"]))
    assert [(c[3], c[2]["requests"]) for c in rec.calls] == [(60.0 * (m + 1), m + 1) for m in range(6)]
    e.process(batch([{"t": 1000.0, "ip": "z"}], ["ip"]))
    assert [(c[3], c[2]["requests"]) for c in rec.calls if c[1] == "a"] == [
        (60.0 * (m + 1), m + 1) for m in range(8)
    ]
