"""Helpers: partial-mode engines, and a batch split over N "shards" by a random partition key."""

from __future__ import annotations

import dataclasses

import numpy as np

from detectors import partial_encode, partials
from detectors import partial_wire as wire_format
from detectors.batch import RecordBatch
from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine
from detectors.finding import Finding

BUCKET_S = 1
HOLD_S = 5.0


def partial_engine(specs=None) -> Engine:
    specs = specs or default_detectors()
    e = Engine.from_config(specs, StateConfig(), list(dict.fromkeys(d.key for d in specs)))
    e.enable_partials(BUCKET_S, HOLD_S)
    return e


def sub_batch(b: RecordBatch, idx: np.ndarray) -> RecordBatch:
    il = idx.tolist()
    return RecordBatch(
        time=b.time[idx],
        numbers={k: v[idx] for k, v in b.numbers.items()},
        texts={k: [v[i] for i in il] for k, v in b.texts.items()},
        keys={k: [v[i] for i in il] for k, v in b.keys.items()},
    )


def split(b: RecordBatch, shards: int, rng: np.random.Generator) -> list[RecordBatch]:
    """Each record to a uniformly random shard (CloudFront's random partition key)."""
    to = rng.integers(0, shards, len(b))
    return [sub_batch(b, np.flatnonzero(to == s)) for s in range(shards)]


def local(engine: Engine, b: RecordBatch) -> list[tuple[str, partials.KeyPartials]]:
    assert engine.partials is not None
    return list(partials.build(b, engine.partials.layout, engine.partial_masks(b)).items())


def wire(
    engine: Engine, b: RecordBatch, source: str, first_pos: int, sources: tuple[str, ...] = ()
) -> list[bytes]:
    """What a re-keying processor sends for this batch: its data bundles (the batch as one run, its
    records at positions first_pos...) and a progress record with its watermark."""
    assert engine.partials is not None
    layout = engine.partials.layout
    parts = dict(local(engine, b))
    for kp in parts.values():
        kp.run = np.zeros(len(kp), dtype=np.int64)
    out = [d for _, d in partial_encode.encode_data(source, parts, [(first_pos + len(b) - 1, 0)], layout, 16)]
    if parts:
        wm = max(int(kp.last_ms.max()) for kp in parts.values())
        out.append(partial_encode.encode_progress(wire_format.Progress(source, wm, sources), layout))
    return out


def comparable(findings: list[Finding]) -> list[dict]:
    return [dataclasses.asdict(f) for f in findings]


def assert_same(a: list[Finding], b: list[Finding], rel: float = 1e-9) -> None:
    """Same decisions: same keys, detectors, windows, modes, event times, evidence figures;
    scores and float evidence equal within ``rel`` (sums of fractional values in another order)."""
    assert len(a) == len(b), (len(a), len(b))
    for fa, fb in zip(sorted(a, key=_order), sorted(b, key=_order), strict=True):
        da, db = dataclasses.asdict(fa), dataclasses.asdict(fb)
        for k in da:
            _close(da[k], db[k], rel, k)


def _order(f: Finding) -> tuple:
    return (f.event_time, f.key_type, f.key, f.detector, f.score)


def _close(x, y, rel, where) -> None:
    if isinstance(x, dict):
        assert set(x) == set(y), where
        for k in x:
            _close(x[k], y[k], rel, f"{where}.{k}")
    elif isinstance(x, float) or isinstance(y, float):
        assert abs(x - y) <= rel * max(1.0, abs(x), abs(y)), (where, x, y)
    else:
        assert x == y, (where, x, y)
