"""The ML detector end to end through the real engine: CloudFront-like records in, per-key windows
closed in event time, findings out, for both model types; engine snapshot mid-stream continues alike."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors.batch import RecordBatch
from detectors.config import StateConfig
from detectors.engine import Engine
from detectors.finding import Finding
from detectors.ml_spec import MLSpec

T0 = 1_764_000_000.0
USERS = 150
MINUTES = 14
SCAN_FROM = 9


def _records(seed: int = 5) -> list[RecordBatch]:
    """Ordinary users browse (10-40 requests a minute, ~2 % 404, page-sized responses, some video
    range requests); from minute ``SCAN_FROM`` a scanner probes 400 new paths a minute, mostly 404."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[float, str, int, float, str, str, str, float]] = []
    for minute in range(MINUTES):
        for u in range(USERS):
            video = u % 7 == 0
            for _ in range(int(rng.integers(10, 41))):
                rows.append(
                    (
                        T0 + minute * 60 + float(rng.uniform(0, 60)),
                        f"user-{u}",
                        404 if rng.random() < 0.02 else 200,
                        float(rng.lognormal(np.log(1e6 if video else 3e4), 0.6)),
                        f"/p/{int(rng.integers(0, 60))}",
                        "Miss" if rng.random() < 0.25 else "Hit",
                        "Mozilla/5.0" if rng.random() < 0.97 else "Safari",
                        0.0 if video and rng.random() < 0.9 else np.nan,
                    )
                )
        if minute >= SCAN_FROM:
            for i in range(400):
                rows.append(
                    (
                        T0 + minute * 60 + i * 0.15,
                        "scanner",
                        404 if i % 10 else 403,
                        300.0,
                        f"/probe/{minute}/{i}",
                        "Miss",
                        "sqlmap/1.7",
                        np.nan,
                    )
                )
    rows.sort(key=lambda r: r[0])
    out = []
    for a in range(0, len(rows), 500):
        chunk = rows[a : a + 500]
        b = RecordBatch(time=np.array([r[0] for r in chunk]))
        b.keys["user"] = [r[1] for r in chunk]
        b.numbers["sc-status"] = np.array([r[2] for r in chunk], dtype=np.float64)
        b.numbers["sc-bytes"] = np.array([r[3] for r in chunk])
        b.texts["cs-uri-stem"] = [r[4] for r in chunk]
        b.texts["x-edge-result-type"] = [r[5] for r in chunk]
        b.texts["cs-user-agent"] = [r[6] for r in chunk]
        b.numbers["sc-range-start"] = np.array([r[7] for r in chunk])
        out.append(b)
    return out


BATCHES = _records()


def _engine(model: dict) -> Engine:
    spec = MLSpec(
        name="ml-user",
        key="user",
        window="1m",
        mode="alert",
        min_requests=5,
        model=model,
        warmup=400,
        quantile=0.995,
        quantile_window=2000,
    )
    return Engine.from_config([spec], StateConfig(allowed_lateness_s=5), ["user"])


def _run(e: Engine, batches: list[RecordBatch]) -> list[Finding]:
    out: list[Finding] = []
    for b in batches:
        out += e.process(b)
    return out


MODELS = {"hst": {"kind": "half_space_trees", "window_size": 100}, "loda": {"kind": "loda"}}


@pytest.mark.parametrize("model", list(MODELS))
def test_scanner_flagged_every_window_ordinary_users_rarely(model: str) -> None:
    findings = _run(_engine(MODELS[model]), BATCHES)
    scanner = [f for f in findings if f.key == "scanner"]
    others = [f for f in findings if f.key != "scanner"]
    # windows [SCAN_FROM, MINUTES - 1) are closed by the stream's own progress; the last stays open
    assert sorted(f.event_time for f in scanner) == [T0 + 60 * m for m in range(SCAN_FROM + 1, MINUTES)]
    for f in scanner:
        assert f.score >= 1.0
        assert (f.detector, f.key_type, f.window, f.window_s) == ("ml-user", "user", "1m", 60)
        top = {t["feature"] for t in f.evidence["top_features"]}
        assert top & {
            "not_found",
            "status_4xx",
            "status_4xx/requests",
            "distinct_uris",
            "auth_failures",
            "distinct_user_agents",
            "cache_misses",
            "requests",
            "bytes_sent/requests",
        }
        assert f.evidence["features"]["not_found"] >= 300
    ordinary_vectors = USERS * (MINUTES - 1)
    assert len(others) <= 0.01 * ordinary_vectors, [(f.key, f.score) for f in others]


def test_engine_snapshot_mid_stream_continues_identically() -> None:
    half = len(BATCHES) * 2 // 3
    a = _engine(MODELS["hst"])
    _run(a, BATCHES[:half])
    b = _engine(MODELS["hst"])
    b.restore(a.snapshot())
    c = pickle.loads(pickle.dumps(a))
    rest_a, rest_b, rest_c = _run(a, BATCHES[half:]), _run(b, BATCHES[half:]), _run(c, BATCHES[half:])
    assert pickle.dumps(rest_a) == pickle.dumps(rest_b) == pickle.dumps(rest_c)
    assert any(f.key == "scanner" for f in rest_a)
