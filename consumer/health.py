"""Liveness of a running consumer, for the container health check (``cfguard health``).

Each shard's record processor owns a :class:`Heartbeat` and calls ``beat(records=n)`` on every
``processRecords`` (the KCL calls it on empty reads too, so an idle shard still beats). ``beat`` costs
one clock read unless ``interval_s`` has passed, when it rewrites ``heartbeat-<shard>.json``
atomically (``updated_at``, ``records``, ``beats``, ``pid``). ``close()`` (shutdown, lease lost,
shard ended) removes the file, so a shard that moved to another worker is not reported stale.

:func:`check` decides health from the files plus whether the MultiLangDaemon process is alive:
stale, missing or no shards after a start grace are unhealthy, each with a one-line reason. The
status files of ``kcl.status_dir`` (``shard-<id>.json`` with ``updated_at``) count as heartbeats too;
one marked ``closed`` (the processor shut down) is not watched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(os.environ.get("CFGUARD_HEARTBEAT_DIR", "/tmp/cfguard/heartbeats"))
DAEMON_MARKER = "software.amazon.kinesis.multilang.MultiLangDaemon"
PATTERNS = ("heartbeat-*.json", "shard-*.json")


class Heartbeat:
    """One shard processor's heartbeat file."""

    def __init__(
        self,
        directory: Path | str,
        shard_id: str,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shard_id = shard_id
        self.interval_s = interval_s
        self.clock = clock
        self.path = self.dir / f"heartbeat-{_safe(shard_id)}.json"
        self.records = 0
        self.beats = 0
        self._last = float("-inf")

    def beat(self, records: int = 0, force: bool = False) -> None:
        """Count ``records`` more processed; write the file at most every ``interval_s``."""
        self.records += records
        self.beats += 1
        now = self.clock()
        if force or now - self._last >= self.interval_s:
            self._last = now
            self._write(now)

    def _write(self, now: float) -> None:
        doc = {
            "shard_id": self.shard_id,
            "updated_at": now,
            "records": self.records,
            "beats": self.beats,
            "pid": os.getpid(),
        }
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self.path)

    def close(self) -> None:
        """The shard is no longer ours: remove its heartbeat."""
        self.path.unlink(missing_ok=True)


def _safe(shard_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in shard_id)[:200]


@dataclass
class HealthReport:
    healthy: bool
    reason: str
    shards: dict[str, float] = field(default_factory=dict)  # shard -> age of its last beat (s)


def read_beats(directory: Path) -> dict[str, dict[str, Any]]:
    """The newest beat per shard from both file kinds (unreadable files: being replaced, skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for pattern in PATTERNS:
        for p in directory.glob(pattern):
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
                shard, at = str(doc["shard_id"]), float(doc["updated_at"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if doc.get("closed"):
                continue  # the processor shut down (lease lost, shard ended): not ours to watch
            if shard not in out or at > out[shard]["updated_at"]:
                out[shard] = {**doc, "updated_at": at}
    return out


def daemon_started_at(marker: str = DAEMON_MARKER, proc: Path = Path("/proc")) -> float | None:
    """Start time (epoch s) of the oldest live process whose command line holds ``marker``, else None."""
    try:
        boot = next(
            float(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    ticks, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    found: list[float] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue  # not a process, or this health check (its own arguments may hold the marker)
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            if marker not in cmdline:
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # zombie: exited, not reaped
            start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        except (OSError, ValueError, IndexError):
            continue  # exited while we looked
        found.append(boot + start_ticks / ticks)
    return min(found) if found else None


def check(
    directory: Path,
    *,
    max_age_s: float,
    start_grace_s: float,
    daemon_started: float | None,
    now: float,
) -> HealthReport:
    """Healthy when the daemon runs and every shard it owns beat within ``max_age_s``."""
    if daemon_started is None:
        return HealthReport(False, "the KCL MultiLangDaemon is not running")
    beats = {s: b for s, b in read_beats(directory).items() if b["updated_at"] >= daemon_started - 1}
    ages = {s: max(0.0, now - b["updated_at"]) for s, b in beats.items()}
    in_grace = now - daemon_started < start_grace_s
    if not ages:
        if in_grace:
            return HealthReport(
                True,
                f"starting: no shard processor yet ({now - daemon_started:.0f}s "
                f"of {start_grace_s:.0f}s start grace)",
            )
        return HealthReport(
            False,
            f"no shard processor has written a heartbeat in {directory} "
            f"{now - daemon_started:.0f}s after the daemon started",
        )
    stale = sorted((s for s, a in ages.items() if a > max_age_s), key=lambda s: -ages[s])
    if stale:
        worst = stale[0]
        return HealthReport(
            False,
            f"{len(stale)} of {len(ages)} shards stale: {worst} last beat "
            f"{ages[worst]:.0f}s ago (max {max_age_s:.0f}s)",
            ages,
        )
    return HealthReport(
        True,
        f"{len(ages)} shards, newest beat {min(ages.values()):.0f}s ago, oldest "
        f"{max(ages.values()):.0f}s ago",
        ages,
    )
