"""Build RecordBatch columns directly (no parser) for detector tests."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.batch import RecordBatch
from detectors.finding import Finding

NUMBER_FIELDS = ("sc-status", "sc-bytes", "cs-bytes", "time-taken", "sc-range-start")
TEXT_FIELDS = ("cs-uri-stem", "cs-user-agent", "x-edge-result-type")


def batch(rows: Sequence[dict[str, Any]], key_types: Sequence[str] = ("ip", "user")) -> RecordBatch:
    """Rows like ``{"t": 60.0, "ip": "1.2.3.4", "status": 404, "bytes": 10, "uri": "/a"}``."""
    defaults = {
        "sc-status": 200,
        "sc-bytes": 1000,
        "cs-bytes": 100,
        "time-taken": 0.01,
        "sc-range-start": np.nan,
    }
    alias = {
        "status": "sc-status",
        "bytes": "sc-bytes",
        "uri": "cs-uri-stem",
        "ua": "cs-user-agent",
        "result": "x-edge-result-type",
        "range": "sc-range-start",
    }
    norm = [{alias.get(k, k): v for k, v in r.items()} for r in rows]
    b = RecordBatch(time=np.array([r["t"] for r in norm], dtype=np.float64))
    for f in NUMBER_FIELDS:
        b.numbers[f] = np.array([r.get(f, defaults[f]) for r in norm], dtype=np.float64)
    text_defaults = {
        "cs-uri-stem": "/index.html",
        "cs-user-agent": "Mozilla/5.0",
        "x-edge-result-type": "Hit",
    }
    for f in TEXT_FIELDS:
        b.texts[f] = [r.get(f, text_defaults[f]) for r in norm]
    for kt in key_types:
        b.keys[kt] = [r.get(kt) for r in norm]
    return b


def as_json(findings: Sequence[Finding]) -> str:
    """Byte-for-byte comparable form of a list of findings."""
    return json.dumps([dataclasses.asdict(f) for f in findings], sort_keys=True)
