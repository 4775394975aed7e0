"""Live stats and decisions of each shard's processor, as files another process can follow.

The processors are children of the Java daemon, so the demo's terminal view (and an operator) reads
their progress from ``kcl.status_dir``: ``shard-<id>.json`` (rewritten atomically about once a
second) and ``decisions.jsonl`` (one line per decision, appended by every shard).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

DECISIONS_FILE = "decisions.jsonl"


def decision_record(d: Any) -> dict[str, Any]:
    if hasattr(d, "to_record"):
        return dict(d.to_record())
    if isinstance(d, dict):
        return dict(d)
    raise TypeError(f"cannot serialise decision of type {type(d).__name__}")


class StatusWriter:
    def __init__(
        self, root: Path, shard_id: str, interval_s: float = 1.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shard_id = shard_id
        self.interval_s = interval_s
        self.clock = clock
        self._last = 0.0
        self.path = self.root / f"shard-{shard_id}.json"

    def decisions(self, decisions: Iterable[Any], extra: dict[str, Any]) -> None:
        lines = [
            json.dumps({**decision_record(d), **extra}, sort_keys=True, default=str) + "\n" for d in decisions
        ]
        if not lines:
            return
        fd = os.open(self.root / DECISIONS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for line in lines:  # one write per line: O_APPEND keeps lines of different shards whole
                os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def update(self, stats: dict[str, Any], force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**stats, "shard_id": self.shard_id, "updated_at": now}, default=str))
        os.replace(tmp, self.path)


def read_status(root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(Path(root).glob("shard-*.json")):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now
        out[str(data.get("shard_id", p.stem))] = data
    return out


class DecisionTail:
    """Reads the decisions appended since the last call."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / DECISIONS_FILE
        self.offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [json.loads(line) for line in complete if line.strip()]
