"""A small generated recording with labels: three IP floods of different rates, and an office NAT
(a hard negative) that is busy but below the slowest flood."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from consumer.traffic import labels as L
from consumer.traffic.generator import Generator

CONFIG = """\
keys:
  - {name: ip, source: c-ip}
  - {name: user, source: cookie, param: uid}
detectors:
  - {name: request_flood_ip, type: rule, key: ip, metric: requests, window: 1m, threshold: 6000, mode: block}
  - {name: scanner_ip, type: rule, key: ip, metric: distinct_uris, status: [403, 404], window: 5m,
     threshold: 150, min_requests: 150, mode: block}
  - {name: ip_surge, type: baseline, key: ip, metric: requests, window: 1m, k: 3, min_history: 1,
     min_value: 100, mode: alert}
actions:
  dry_run: true
quarantine: {path: null}
"""

SCENARIOS = "request_flood:rate=20,request_flood:rate=40,request_flood:rate=80"
NEGATIVES = "nat_office:users=400,monitor"
DURATION_S = 240.0


def make(tmp: Path) -> tuple[Path, Path, Path]:
    """(recording, labels, config) in ``tmp``."""
    gen = Generator(7, 1_764_158_400.0, 20.0, scenarios=SCENARIOS, negatives=NEGATIVES)
    rec = tmp / "rec.tsv.gz"
    with gzip.open(rec, "wb") as f:
        for batch in gen.batches(DURATION_S):
            f.writelines(batch)
    labels = tmp / "labels.json"
    L.write(labels, gen.labels(DURATION_S))
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CONFIG)
    return rec, labels, cfg


def load_labels(path: Path) -> dict:
    return json.loads(path.read_text())
