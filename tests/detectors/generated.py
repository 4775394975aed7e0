"""Columnar batches of ``consumer.traffic`` output (seeded, every abuse scenario and hard negative) for
the engine-level tests: parsed and keyed by the default config's parser and key extractor."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from consumer.config import load_config
from consumer.pipeline import Pipeline
from consumer.traffic import Generator
from detectors.batch import RecordBatch

SEED, RATE, DURATION_S = 5, 20.0, 3600.0
KEY_TYPES = ("ip", "user", "api_key")


@lru_cache(maxsize=2)
def generate(seed: int = SEED, rate: float = RATE, duration_s: float = DURATION_S) -> list[RecordBatch]:
    p = Pipeline.from_config(load_config(None, environ={}), dry_run=True)
    out = []
    for lines in Generator(seed=seed, rate=rate).batches(duration_s):
        b = p.parser.parse(lines).batch
        p.keys.extract(b)
        out.append(b)
    p.close()
    return out


def labels(seed: int = SEED, rate: float = RATE, duration_s: float = DURATION_S) -> dict[str, Any]:
    return Generator(seed=seed, rate=rate).labels(duration_s)
