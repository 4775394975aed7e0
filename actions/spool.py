"""The durable spool: block payloads that could not be delivered yet, in a local fsync'ed JSONL file.

An entry is appended (and fsync'ed) before the runner counts the decision as spooled, so a crash
after that loses nothing. Draining rewrites the file atomically (temp file, fsync, rename) without
the delivered entries. Several processes (one per shard) may share one spool file: appends and
rewrites hold an exclusive ``flock`` on ``<path>.lock`` as well as the in-process lock. Entries are
keyed by ``idempotency_key``: the same block spooled twice is one entry, and redelivering it is
harmless because the block Lambda is idempotent on that key.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.corrupt_lines = 0
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def append(self, entry: dict[str, Any]) -> None:
        """Durably add one entry (``idempotency_key`` and ``payload`` required)."""
        if "idempotency_key" not in entry or "payload" not in entry:
            raise ValueError("a spool entry needs idempotency_key and payload")
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                data = line.encode("utf-8")
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a line torn by a crash must not swallow this one
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """Current entries, the last copy of each idempotency key winning."""
        with self._locked():
            return list(self._read().values())

    def __len__(self) -> int:
        return len(self.entries())

    def _read(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        try:
            f = open(self.path, encoding="utf-8")
        except FileNotFoundError:
            return out
        bad = 0
        with f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                    out[e["idempotency_key"]] = e
                except (ValueError, KeyError, TypeError):
                    bad += 1  # e.g. a line torn by a crash mid-write; kept in the counter, not fatal
        if bad and bad != self.corrupt_lines:
            log.error("spool %s: %d unreadable line(s) skipped", self.path, bad)
        self.corrupt_lines = bad
        return out

    def update(self, done: set[str], changed: dict[str, dict[str, Any]]) -> None:
        """Drop ``done`` keys, replace ``changed`` entries, atomically; keeps entries appended meanwhile."""
        with self._locked():
            current = self._read()
            for k in done:
                current.pop(k, None)
            for k, e in changed.items():
                if k in current:
                    current[k] = e
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for e in current.values():
                    f.write(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
