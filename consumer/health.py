"""Liveness of a running consumer, judged from the files its processes leave in ``kcl.status_dir``.

The shard processors are children of the Java daemon and rewrite ``shard-<id>.json`` about once a
second while the daemon calls them (also on empty reads, with ``kcl.call_on_empty_batches``), so a
file's ``updated_at`` is a heartbeat. ``cfguard run`` records itself in ``daemon.json`` (pid, start
time): that separates "still starting" from "stuck", and status files of an earlier run from this one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.kcl.status import read_status

DAEMON_FILE = "daemon.json"


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    reasons: tuple[str, ...] = ()
    shard_ages: dict[str, float] = field(default_factory=dict)  # open processors: seconds since update
    starting: bool = False

    def summary(self) -> str:
        if not self.healthy:
            return "unhealthy: " + "; ".join(self.reasons)
        if self.starting:
            return "healthy: starting (no shard processor has reported yet)"
        if not self.shard_ages:
            return "healthy: no shard leases held"
        oldest = max(self.shard_ages.values())
        return f"healthy: {len(self.shard_ages)} shard processor(s), oldest update {oldest:.1f} s ago"


def record_daemon(status_dir: Path, pid: int | None = None, clock: Callable[[], float] = time.time) -> Path:
    """Write ``daemon.json`` (atomically) for the health check: who runs the daemon, since when."""
    root = Path(status_dir)
    root.mkdir(parents=True, exist_ok=True)
    path = root / DAEMON_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid() if pid is None else pid, "started_at": clock()}))
    os.replace(tmp, path)
    return path


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie (signal 0 checks existence only)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: existence is all we can tell
    return stat.rpartition(")")[2].split()[0] != "Z"


def read_daemon(status_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(status_dir) / DAEMON_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{DAEMON_FILE} in {status_dir} is unreadable: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("pid"), int)
        or not _number(data.get("started_at"))
    ):
        raise ValueError(f"{DAEMON_FILE} in {status_dir} lacks an integer pid and a started_at time")
    return data


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check(
    status_dir: Path,
    *,
    max_age_s: float,
    start_grace_s: float,
    now: float | None = None,
    alive: Callable[[int], bool] = pid_alive,
    allow_no_shards: bool = False,
) -> HealthReport:
    """Healthy when the recorded daemon runs and every open shard processor updated within ``max_age_s``.

    Without any open processor the consumer is healthy only within ``start_grace_s`` of the daemon's
    start (or always with ``allow_no_shards``: more workers than shards leaves some without a lease).
    """
    now = time.time() if now is None else now
    root = Path(status_dir)
    reasons: list[str] = []
    try:
        daemon = read_daemon(root)
    except ValueError as exc:
        return HealthReport(False, (str(exc),))
    started = float(daemon["started_at"]) if daemon else None
    if daemon and not alive(daemon["pid"]):
        reasons.append(f"the consumer process (pid {daemon['pid']}) is not running")

    ages: dict[str, float] = {}
    for shard, st in read_status(root).items() if root.is_dir() else ():
        if st.get("closed"):
            continue  # lease lost or shard ended: that processor is finished, not stuck
        updated = st.get("updated_at")
        if not _number(updated):
            reasons.append(f"shard {shard}: status file has no updated_at time")
            continue
        if started is not None and updated < started:
            continue  # left by an earlier run
        age = max(0.0, now - float(updated))
        ages[shard] = age
        if age > max_age_s:
            reasons.append(f"shard {shard}: no progress for {age:.0f} s (max {max_age_s:g} s)")

    starting = False
    if not ages and not reasons:
        if started is not None and now - started <= start_grace_s:
            starting = True
        elif not allow_no_shards:
            since = f" since the consumer started {now - started:.0f} s ago" if started is not None else ""
            reasons.append(
                f"no shard processor has reported in {root}{since} (start grace {start_grace_s:g} s)"
            )
    return HealthReport(not reasons, tuple(reasons), ages, starting)
