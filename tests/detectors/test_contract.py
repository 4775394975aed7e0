"""The contract every detector kind passes (river ``checks`` style): one suite, every kind.

Each case is an engine with one detector of the kind; the checks: findings are deterministic, a
pickled / snapshot-restored engine continues with identical findings, a clone is independent,
memory is bounded with 100,000 distinct keys, nothing below threshold is emitted, findings carry
every field, time is event time only, out-of-order input within the lateness gives the same state
as in-order input, and empty input is a no-op.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import time
from collections.abc import Callable

import numpy as np
import pytest

from detectors.batch import RecordBatch
from detectors.config import BaselineSpec, RatioSpec, RuleSpec, StateConfig
from detectors.engine import Engine
from detectors.finding import Finding
from detectors.ml_spec import HalfSpaceTreesModel, MLSpec
from detectors.spec_base import Strict
from detectors.windowclose import WindowCloseAdapter
from tests.detectors.helpers import as_json
from tests.detectors.stream import stream

STATE = StateConfig(allowed_lateness_s=30, idle_timeout_s=3600)


class _CloseSpec(Strict):
    type: str = "closed"
    name: str = "closed"
    key: str = "ip"
    mode: str = "shadow"


class VolumeJudge:
    """A stand-in per-key evaluator (the ML detector's interface): flags closed windows >= 50 requests."""

    def evaluate(self, key_type: str, key: str, features: dict[str, float], event_time: float, window_s: int):
        if features["requests"] < 50:
            return None
        score = features["requests"] / 50
        return Finding(
            key, key_type, "closed", score, 50.0, "1m", window_s, event_time, "shadow", dict(features)
        )


def _closed_engine() -> Engine:
    det = WindowCloseAdapter(_CloseSpec(), VolumeJudge(), ("requests", "not_found", "distinct_uris"), 60, 5)
    return Engine([det], STATE, ["ip"])


CASES: dict[str, Callable[[], Engine]] = {
    "rule": lambda: Engine.from_config(
        [RuleSpec(name="flood", key="ip", window="1m", metric="requests", threshold=40)], STATE, ["ip"]
    ),
    "rule_distinct": lambda: Engine.from_config(
        [RuleSpec(name="scan", key="ip", window="1m", metric="distinct_uris", status=(404,), threshold=30)],
        STATE,
        ["ip"],
    ),
    "ratio": lambda: Engine.from_config(
        [
            RatioSpec(
                name="miss", key="ip", window="1m", numerator="cache_misses", threshold=0.8, min_requests=20
            )
        ],
        STATE,
        ["ip"],
    ),
    "baseline": lambda: Engine.from_config(
        [BaselineSpec(name="surge", key="user", window="1m", k=3, min_history=5, min_value=12)],
        STATE,
        ["user"],
    ),
    "window_close": _closed_engine,
}

CASES["ml"] = lambda: Engine.from_config(
    [
        MLSpec(
            name="ml",
            key="ip",
            window="1m",
            min_requests=2,  # (the memory check's keys make one request each: no river call per key)
            warmup=20,
            model=HalfSpaceTreesModel(window_size=10),
        )
    ],
    STATE,
    ["ip"],
)

KINDS = sorted(CASES)


def run(e: Engine, batches: list[RecordBatch]) -> list[Finding]:
    out: list[Finding] = []
    for b in batches:
        out += e.process(b)
    return out


STREAM = stream()
HALF = len(STREAM) // 2


@pytest.fixture(scope="module")
def reference() -> dict[str, list[Finding]]:
    return {k: run(CASES[k](), STREAM) for k in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_finds_the_abuser_only_and_deterministically(kind: str, reference: dict[str, list[Finding]]) -> None:
    found = reference[kind]
    if kind != "ml":
        assert found, "the surge must be found"
        assert {f.key for f in found} == {"abuser"}
        assert min(f.event_time for f in found) >= 1_764_000_000.0 + 12 * 60
    again = run(CASES[kind](), STREAM)
    assert as_json(again) == as_json(found)


@pytest.mark.parametrize("kind", KINDS)
def test_pickled_engine_and_restored_snapshot_continue_identically(
    kind: str, reference: dict[str, list[Finding]]
) -> None:
    e = CASES[kind]()
    first = run(e, STREAM[:HALF])
    clone = pickle.loads(pickle.dumps(e))
    fresh = CASES[kind]()
    fresh.restore(e.snapshot())
    rest = run(e, STREAM[HALF:])
    assert first + rest == reference[kind]
    assert run(clone, STREAM[HALF:]) == rest
    assert run(fresh, STREAM[HALF:]) == rest
    assert fresh.stats() == e.stats()


@pytest.mark.parametrize("kind", KINDS)
def test_clone_is_independent(kind: str, reference: dict[str, list[Finding]]) -> None:
    e = CASES[kind]()
    first = run(e, STREAM[:HALF])
    clone = copy.deepcopy(e)
    run(clone, stream(seed=99)[HALF:])  # different data into the clone only
    assert first + run(e, STREAM[HALF:]) == reference[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_memory_is_bounded_with_100k_distinct_keys(kind: str) -> None:
    e = CASES[kind]()
    kt = e.key_types[0]
    small = StateConfig(max_keys=2000, allowed_lateness_s=30)
    e = type(e)(e.detectors, small, e.key_types)
    n = 100_000
    t0 = 1_764_000_000.0
    for a in range(0, n, 10_000):
        m = 10_000
        b = RecordBatch(time=t0 + np.arange(a, a + m) / 1000.0)
        b.numbers["sc-status"] = np.full(m, 404.0)
        b.numbers["sc-bytes"] = np.full(m, 1000.0)
        b.texts["cs-uri-stem"] = [f"/p{i}" for i in range(m)]
        b.texts["x-edge-result-type"] = ["Miss"] * m
        b.texts["cs-user-agent"] = ["curl/8"] * m
        b.numbers["sc-range-start"] = np.full(m, np.nan)
        b.numbers["cs-bytes"] = np.full(m, 100.0)
        b.keys[kt] = [f"key{i}" for i in range(a, a + m)]
        e.process(b)
    st = e.stats()
    assert st[f"tracked_keys.{kt}"] <= 2000
    assert st[f"evicted_lru.{kt}"] >= n - 2000
    assert e.tables[kt].capacity <= 2000
    assert st["state_bytes"] <= 2000 * 400
    for det in e.detectors:
        emitter = getattr(det, "emitter", None)
        if emitter is not None:
            assert len(emitter.last) <= 2000


@pytest.mark.parametrize("kind", KINDS)
def test_no_finding_below_threshold_and_every_field_present(
    kind: str, reference: dict[str, list[Finding]]
) -> None:
    for f in reference[kind]:
        assert f.score >= 1.0 and math.isfinite(f.score)
        assert f.threshold > 0 and f.window == "1m" and f.window_s == 60
        assert (
            f.key and f.key_type in ("ip", "user") and f.detector and f.mode in ("block", "alert", "shadow")
        )
        assert math.isfinite(f.event_time)
        json.dumps(f.evidence)
    quiet = stream(surge_from=10_000)  # the abuser never surges
    assert run(CASES[kind](), quiet) == [] or kind == "ml"


@pytest.mark.parametrize("kind", KINDS)
def test_time_is_event_time_only(kind: str, monkeypatch: pytest.MonkeyPatch, reference) -> None:
    def no_wall_clock() -> float:
        raise AssertionError("the engine read the wall clock")

    for name in ("time", "monotonic", "perf_counter", "time_ns"):
        monkeypatch.setattr(time, name, no_wall_clock)
    found = run(CASES[kind](), STREAM)
    assert found == reference[kind]
    times = {float(t) for b in STREAM for t in b.time}
    for f in found:
        assert f.event_time in times or f.event_time % 60 == 0  # a record's time, or a window end


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_order_within_lateness_gives_the_same_state(kind: str) -> None:
    in_order = CASES[kind]()
    run(in_order, stream(batch_size=40))
    shuffled_batches = []
    rng = np.random.default_rng(5)
    for b in stream(batch_size=40):
        p = rng.permutation(len(b))  # inside a 40-record batch (< 30 s of event time): within lateness
        shuffled_batches.append(
            RecordBatch(
                time=b.time[p],
                numbers={k: v[p] for k, v in b.numbers.items()},
                texts={k: [v[i] for i in p] for k, v in b.texts.items()},
                keys={k: [v[i] for i in p] for k, v in b.keys.items()},
            )
        )
    shuffled = CASES[kind]()
    found = run(shuffled, shuffled_batches)
    assert shuffled.stats()["late_dropped"] == 0 and shuffled.stats()["late_accepted"] > 0
    if kind != "ml":
        assert {f.key for f in found} == {"abuser"}
    for sk, store in in_order.stores.items():
        other = shuffled.stores[sk]
        n = in_order.tables[sk[0]].next_slot
        ids = {k: in_order.tables[sk[0]].slot_of(k) for k in in_order.tables[sk[0]].live_keys()}
        ids2 = {k: shuffled.tables[sk[0]].slot_of(k) for k in shuffled.tables[sk[0]].live_keys()}
        a = np.array([ids[k] for k in sorted(ids)])
        b = np.array([ids2[k] for k in sorted(ids)])
        assert n == shuffled.tables[sk[0]].next_slot
        assert np.array_equal(store.cur_id[a], other.cur_id[b])
        for m in store.sums:
            assert np.allclose(store.cur[m][a], other.cur[m][b]) and np.allclose(
                store.prev[m][a], other.prev[m][b]
            )
        for m in store.distincts:
            assert np.array_equal(store.regs[m][a], other.regs[m][b])


@pytest.mark.parametrize("kind", KINDS)
def test_empty_input(kind: str) -> None:
    e = CASES[kind]()
    assert e.process(RecordBatch.empty()) == []
    assert e.stats()["records"] == 0
    e2 = CASES[kind]()
    e2.restore(e.snapshot())
    assert e2.stats() == e.stats()
