"""The vectorised engine against a record-at-a-time reference model, on random streams.

The reference keeps, per key, a dict of window counts and applies the documented semantics one
record at a time: drop records older than the watermark minus the lateness, tumbling windows
aligned to the epoch, a key keeps its current and previous window, emit at score >= 1 and again at
each doubling within a window. With lateness <= window length the engine's batch-at-once processing
must give exactly the same findings, whatever the batch split.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from detectors.batch import RecordBatch
from detectors.config import RatioSpec, RuleSpec, StateConfig
from detectors.engine import Engine

W = 60
LATENESS = 40
RULE = RuleSpec(name="bytes", key="ip", window="1m", metric="bytes_sent", threshold=5000, min_requests=2)
RATIO = RatioSpec(name="nf", key="ip", window="1m", numerator="not_found", threshold=0.4, min_requests=3)
SLIDE = RuleSpec(name="slide", key="ip", window="1m", metric="bytes_sent", threshold=7000, sliding=True)
SLIDE_RATIO = RatioSpec(
    name="snf", key="ip", window="1m", numerator="not_found", threshold=0.45, min_requests=4, sliding=True
)


def reference(times, keys, nbytes, status, sliding: bool = False) -> list[tuple]:
    wm = -math.inf
    cur: dict[str, int] = {}
    counts: dict[tuple[str, int], list[float]] = {}  # (key, window) -> [requests, bytes, 404s]
    last: dict[tuple[str, str], tuple[int, int]] = {}
    out = []
    for t, k, b, s in zip(times, keys, nbytes, status, strict=True):
        if t < wm - LATENESS:
            continue
        wm = max(wm, t)
        w = math.floor(t / W)
        c = cur.get(k, w)
        if w < c - 1:
            continue
        cur[k] = max(c, w)
        agg = counts.setdefault((k, w), [0.0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += b
        agg[2] += s == 404
        checks = []
        if agg[1] >= RULE.threshold and agg[0] >= RULE.min_requests:
            checks.append(("bytes", agg[1] / RULE.threshold))
        ratio = agg[2] / agg[0]
        if agg[0] >= RATIO.min_requests and ratio >= RATIO.threshold:
            checks.append(("nf", ratio / RATIO.threshold))
        if sliding:
            prev = counts.get((k, w - 1), [0.0, 0.0, 0.0])
            weight = 1.0 - (t - w * W) / W
            est = [a + p * weight for a, p in zip(agg, prev, strict=True)]
            if est[1] >= SLIDE.threshold:
                checks.append(("slide", est[1] / SLIDE.threshold))
            if est[0] >= SLIDE_RATIO.min_requests and est[0] > 0 and est[2] / est[0] >= SLIDE_RATIO.threshold:
                checks.append(("snf", est[2] / est[0] / SLIDE_RATIO.threshold))
        for name, score in checks:
            level = math.floor(math.log(score) / math.log(2.0))
            prev = last.get((name, k))
            if prev is not None and (w < prev[0] or (w == prev[0] and level <= prev[1])):
                continue
            last[(name, k)] = (w, level)
            out.append((t, k, name, round(score, 9)))
    return sorted(out)


def random_stream(seed: int, n: int = 1500, late: bool = True):
    rng = np.random.default_rng(seed)
    base = 1_764_000_000.0
    t = base + np.sort(rng.uniform(0, 600, n))
    if late:
        t = t + rng.uniform(-50, 0, n) * (rng.random(n) < 0.2)  # some records late (some beyond 40 s)
    keys = [f"k{i}" for i in rng.integers(0, 12, n).tolist()]
    nbytes = np.round(rng.exponential(400, n))
    nbytes[rng.random(n) < 0.05] = np.nan
    status = rng.choice([200, 200, 404, 301], n).astype(float)
    return t, keys, nbytes, status


def run_engine(t, keys, nbytes, status, cuts, specs=(RULE, RATIO)) -> list[tuple]:
    e = Engine.from_config(list(specs), StateConfig(allowed_lateness_s=LATENESS), ["ip"])
    out = []
    bounds = [0, *cuts, len(keys)]
    for a, b in itertools.pairwise(bounds):
        rb = RecordBatch(time=t[a:b])
        rb.numbers["sc-bytes"] = nbytes[a:b]
        rb.numbers["sc-status"] = status[a:b]
        rb.keys["ip"] = keys[a:b]
        out += [(f.event_time, f.key, f.detector, round(f.score, 9)) for f in e.process(rb)]
    return sorted(out)


@pytest.mark.parametrize("seed", range(12))
def test_engine_equals_the_record_at_a_time_reference(seed: int) -> None:
    t, keys, nbytes, status = random_stream(seed)
    expected = reference(t.tolist(), keys, np.nan_to_num(nbytes).tolist(), status.tolist())
    assert len(expected) > 5
    rng = np.random.default_rng(1000 + seed)
    for n_cuts in (0, 7, 60, 400):  # one batch, a few, many small ones
        cuts = sorted(rng.choice(np.arange(1, len(keys)), n_cuts, replace=False).tolist()) if n_cuts else []
        assert run_engine(t, keys, nbytes, status, cuts) == expected, n_cuts


@pytest.mark.parametrize("seed", range(8))
def test_sliding_estimates_equal_the_reference_on_in_order_streams(seed: int) -> None:
    """(In order: with late records the engine sees the previous window as of the end of the batch.)"""
    t, keys, nbytes, status = random_stream(seed, late=False)
    expected = reference(t.tolist(), keys, np.nan_to_num(nbytes).tolist(), status.tolist(), sliding=True)
    assert any(f[2] == "slide" for f in expected) and any(f[2] == "snf" for f in expected)
    rng = np.random.default_rng(2000 + seed)
    for n_cuts in (0, 30, 300):
        cuts = sorted(rng.choice(np.arange(1, len(keys)), n_cuts, replace=False).tolist()) if n_cuts else []
        got = run_engine(t, keys, nbytes, status, cuts, specs=(RULE, RATIO, SLIDE, SLIDE_RATIO))
        assert got == expected, n_cuts


class _Collect:
    def __init__(self) -> None:
        self.seen: dict[tuple[str, float], tuple[float, float, float]] = {}
        self.duplicates = 0

    def evaluate(self, key_type, key, features, event_time, window_s):
        k = (key, event_time)
        self.duplicates += k in self.seen
        self.seen[k] = (features["requests"], features["bytes_sent"], features["not_found"])


def reference_windows(times, keys, nbytes, status) -> dict[tuple[str, float], tuple[float, float, float]]:
    wm = -math.inf
    cur: dict[str, int] = {}
    counts: dict[tuple[str, float], list[float]] = {}
    for t, k, b, s in zip(times, keys, nbytes, status, strict=True):
        if t < wm - LATENESS:
            continue
        wm = max(wm, t)
        w = math.floor(t / W)
        c = cur.get(k, w)
        if w < c - 1:
            continue
        cur[k] = max(c, w)
        agg = counts.setdefault((k, float((w + 1) * W)), [0.0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += b
        agg[2] += s == 404
    return {k: tuple(v) for k, v in counts.items()}


@pytest.mark.parametrize("seed", range(6))
def test_closed_windows_carry_the_reference_totals_exactly_once(seed: int) -> None:
    from detectors.spec_base import Strict
    from detectors.windowclose import WindowCloseAdapter

    class Spec(Strict):
        type: str = "collect"
        name: str = "collect"
        key: str = "ip"
        mode: str = "shadow"

    t, keys, nbytes, status = random_stream(seed)
    t = np.append(t, t.max() + 10 * W)  # a last record far ahead closes every window
    keys = [*keys, "closer"]
    nbytes = np.append(nbytes, 0.0)
    status = np.append(status, 200.0)
    expected = reference_windows(t.tolist(), keys, np.nan_to_num(nbytes).tolist(), status.tolist())
    expected = {k: v for k, v in expected.items() if k[0] != "closer"}
    rng = np.random.default_rng(seed)
    cuts = sorted(rng.choice(np.arange(1, len(keys)), 50, replace=False).tolist())
    col = _Collect()
    det = WindowCloseAdapter(Spec(), col, ("requests", "bytes_sent", "not_found"), W, 1)
    e = Engine([det], StateConfig(allowed_lateness_s=LATENESS), ["ip"])
    for a, b in itertools.pairwise([0, *cuts, len(keys)]):
        rb = RecordBatch(time=t[a:b])
        rb.numbers["sc-bytes"] = nbytes[a:b]
        rb.numbers["sc-status"] = status[a:b]
        rb.keys["ip"] = keys[a:b]
        e.process(rb)
    assert col.duplicates == 0
    assert col.seen == expected
