"""The labels file: which key of which key type is abusive (and since when), and the hard negatives.

Format ``cfguard-traffic-labels/1`` (documented in docs/traffic.md)::

    {"format": "cfguard-traffic-labels/1",
     "generator": {...how the traffic was made...},
     "user": {"<uid>": "<scenario>"}, "ip": {"<ip or v6 /64>": "<scenario>"}, "api_key": {...},
     "hard_negatives": {"user": {...}, "ip": {...}},
     "accomplices": {"ip": {"<proxy ip>": "<scenario>"}, "user": {...}},
     "scenarios": [{"name", "abuse", "start", "end", "params", "keys": {"<key type>": [...]}}]}

IP keys are written the way the default ``ip`` key type extracts them (IPv4 as is, IPv6 as its /64).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consumer.traffic.base import Scenario

FORMAT = "cfguard-traffic-labels/1"


def build(scenarios: Sequence[Scenario], generator: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"format": FORMAT, "generator": generator}
    negatives: dict[str, dict[str, str]] = {}
    accomplices: dict[str, dict[str, str]] = {}
    entries = []
    for s in scenarios:
        target = out if s.abuse else negatives
        for key_type, keys in s.keys.items():
            bucket = target.setdefault(key_type, {})
            for k in keys:
                bucket.setdefault(k, s.name)
        for key_type, keys_set in s.accomplices.items():
            bucket = accomplices.setdefault(key_type, {})
            for k in sorted(keys_set):
                bucket.setdefault(k, s.name)
        entries.append(
            {
                "name": s.name,
                "abuse": s.abuse,
                "start": round(s.t_start, 3),
                "end": None if s.t_end is None else round(s.t_end, 3),
                "params": s.params(),
                "keys": {kt: list(ks) for kt, ks in s.keys.items()},
            }
        )
    for key_type in ("user", "ip"):
        out.setdefault(key_type, {})
    out["hard_negatives"] = negatives
    out["accomplices"] = accomplices
    out["scenarios"] = entries
    return out


def write(path: str | Path, labels: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(labels, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def load(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cfguard traffic labels file (format {data.get('format')!r})")
    return data
