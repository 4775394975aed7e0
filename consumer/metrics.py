"""Operational metrics of each shard processor: CloudWatch embedded metric format and Prometheus text.

The figures are the ones the processor already keeps (its counters and ``Pipeline.stats()``), so the
hot loop pays nothing: at most every ``interval_s`` they are flattened (``engine.tracked_keys.ip``),
counters turned into per-interval deltas, and written as

- one EMF JSON line (namespace configurable, dimensions ``Role`` and ``Shard``) to stderr or a file:
  on ECS the awslogs driver ships stderr to CloudWatch Logs, which turns EMF lines into metrics with
  no API call (the processor's stdout is the KCL protocol and is never used);
- a Prometheus text-format file per role and shard (written atomically), for a node-exporter
  textfile collector or a local look.

``Role`` is the process's ``topology.role`` (``single``, ``rekey`` or ``detect``). Both stages of a
two-stage deployment emit the same metric names (``pipeline.records`` counts raw lines in the rekey
stage but partial records in the detect stage), so anything that sums or alarms on them must select
one role; the shard ids of the raw and the partials streams also coincide (``shardId-000000000000``).
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field

# Figures that are levels, not running totals (everything else numeric is a counter).
GAUGE_PATTERNS = re.compile(
    r"(^|\.)(millis_behind_latest|uptime_s|state_bytes|watermark|tracked_keys(\.\w+)?|guard\.tracked_keys"
    r"|breaker_open|spool[_.]depth|pending|queue[_.]depth|restore_pending|restore_wait_s)$"
)
_PROM_NAME = re.compile(r"[^a-zA-Z0-9_]")


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    namespace: str = Field("cfguard", min_length=1, max_length=255)
    interval_s: float = Field(60.0, gt=0)
    emf_path: Path | None = Field(None, description="EMF lines go here; default: stderr")
    prometheus_dir: Path | None = Field(
        None, description="one <role>-<shard>.prom text file per shard here (role: topology.role)"
    )


def flatten(stats: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested stats as ``a.b.c`` names (booleans as 0/1; NaN and text left out)."""
    out: dict[str, float] = {}
    for k, v in stats.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        elif isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, int | float) and math.isfinite(v):
            out[name] = float(v)
    return out


def is_gauge(name: str) -> bool:
    return GAUGE_PATTERNS.search(name) is not None


def emf_line(
    namespace: str, shard: str, values: Mapping[str, float], timestamp_ms: int, role: str = "single"
) -> str:
    metrics = [
        {"Name": n, "Unit": "Milliseconds" if n.endswith("millis_behind_latest") else "None"} for n in values
    ]
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {"Namespace": namespace, "Dimensions": [["Role", "Shard"]], "Metrics": metrics}
            ],
        },
        "Role": role,
        "Shard": shard,
        **values,
    }
    return json.dumps(doc, separators=(",", ":"))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(shard: str, totals: Mapping[str, float], role: str = "single") -> str:
    lines = []
    labels = f'role="{_label(role)}",shard="{_label(shard)}"'
    for name, value in sorted(totals.items()):
        metric = "cfguard_" + _PROM_NAME.sub("_", name)
        kind = "gauge" if is_gauge(name) else "counter"
        if kind == "counter":
            metric += "_total"
        lines.append(f"# TYPE {metric} {kind}")
        lines.append(f"{metric}{{{labels}}} {value:g}")
    return "\n".join(lines) + "\n"


class MetricsEmitter:
    """Called with the processor's figures after each batch; writes at most every ``interval_s``."""

    def __init__(
        self,
        cfg: MetricsConfig,
        shard: str,
        *,
        role: str = "single",
        clock: Callable[[], float] = time.time,
        stream: TextIO | None = None,
    ) -> None:
        self.cfg = cfg
        self.shard = shard
        self.role = role
        self.clock = clock
        self.stream = stream
        self._last_emit = -math.inf
        self._last_totals: dict[str, float] = {}

    def observe(self, stats: Mapping[str, Any], force: bool = False) -> bool:
        now = self.clock()
        if not self.cfg.enabled or (not force and now - self._last_emit < self.cfg.interval_s):
            return False
        self._last_emit = now
        totals = flatten(stats)
        values: dict[str, float] = {}
        for name, v in totals.items():
            if is_gauge(name):
                values[name] = v
            else:
                # A counter that went down was reset (a new pipeline after a restart): count from 0.
                prev = self._last_totals.get(name, 0.0)
                values[name] = v - prev if v >= prev else v
        self._last_totals = totals
        self._write_emf(emf_line(self.cfg.namespace, self.shard, values, int(now * 1000), self.role))
        if self.cfg.prometheus_dir is not None:
            self._write_prometheus(prometheus_text(self.shard, totals, self.role))
        return True

    def _write_emf(self, line: str) -> None:
        if self.cfg.emf_path is not None:
            with open(self.cfg.emf_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        else:
            out = self.stream or sys.stderr
            out.write(line + "\n")
            out.flush()

    def _write_prometheus(self, text: str) -> None:
        d = self.cfg.prometheus_dir
        assert d is not None
        d.mkdir(parents=True, exist_ok=True)
        name = f"{self.role}-{self.shard}.prom"  # both stages on one host: shard ids coincide
        tmp = d / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, d / name)
