"""Live stats and decisions of each shard's processor, as files another process can follow.

The processors are children of the Java daemon, so the demo's terminal view (and an operator) reads
their progress from ``kcl.status_dir``: ``shard-<id>.json`` (rewritten atomically about once a
second) and ``decisions.jsonl`` (one line per decision, appended by every shard), rotated by size to
``decisions.jsonl.1`` (newest) ... ``decisions.jsonl.<keep>`` (oldest) so the directory stays bounded
(``kcl.status_decisions_max_bytes`` x (1 + ``kcl.status_decisions_keep``)).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

DECISIONS_FILE = "decisions.jsonl"
LOCK_FILE = "decisions.lock"
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_KEEP = 4
_ROTATED = re.compile(re.escape(DECISIONS_FILE) + r"\.(\d+)$")

FileId = tuple[int, int]  # (st_dev, st_ino)


def decision_record(d: Any) -> dict[str, Any]:
    if hasattr(d, "to_record"):
        return dict(d.to_record())
    if isinstance(d, dict):
        return dict(d)
    raise TypeError(f"cannot serialise decision of type {type(d).__name__}")


@contextmanager
def _locked(root: Path, kind: int) -> Iterator[None]:
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        if kind != fcntl.LOCK_SH:
            raise
        fd = os.open(root / LOCK_FILE, os.O_RDONLY)  # a reader without write access to the dir
    try:
        fcntl.flock(fd, kind)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class DecisionLog:
    """Appends decision lines to ``decisions.jsonl``, rotating it by size and keeping ``keep`` rotated
    files (``.1`` newest ... ``.keep`` oldest; the one before is deleted).

    Every shard's processor is a separate process appending to the same file, so appends and
    rotations are serialised by an exclusive ``flock`` on ``decisions.lock`` beside it: a writer takes
    the lock, rotates if its lines would take the file past ``max_bytes``, opens the file (after the
    rotation, so it never writes into a file that was just renamed away), writes its lines whole and
    releases the lock. ``O_APPEND`` alone keeps lines whole but cannot make "check the size, rename"
    atomic: two processes could both find the file full and rotate twice (dropping a file of
    decisions), or one could append to a file the other had already renamed and the reader passed.
    Per-process files were the alternative; not taken because every reader would have to merge a
    set of files that grows with shards and restarts, and bounding their total size would need the
    same cross-process coordination. Decisions are rare (a batch has a few at most), so one lock per
    batch with decisions costs nothing measurable. ``flock`` needs a local file system; the status
    dir is local by design (files another process on the host follows).

    A file exceeds ``max_bytes`` only when one batch's lines alone are larger.
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("decisions log: max_bytes and keep must be at least 1")
        self.root = Path(root)
        self.path = self.root / DECISIONS_FILE
        self.max_bytes = max_bytes
        self.keep = keep
        self.rotations = 0  # done by this process

    def append(self, lines: Iterable[str]) -> None:
        data = "".join(lines).encode("utf-8")
        if not data:
            return
        with _locked(self.root, fcntl.LOCK_EX):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)

    def _rotate(self) -> None:
        """decisions.jsonl -> .1 -> .2 ... -> .keep (the old .keep is replaced); under the lock."""
        for i in range(self.keep - 1, 0, -1):
            older = self.root / f"{DECISIONS_FILE}.{i}"
            if older.exists():
                os.replace(older, self.root / f"{DECISIONS_FILE}.{i + 1}")
        os.replace(self.path, self.root / f"{DECISIONS_FILE}.1")
        self.rotations += 1


def decision_files(root: Path) -> list[Path]:
    """The decision files in ``root``, oldest first: the rotated ones, then ``decisions.jsonl``."""
    root = Path(root)
    rotated = sorted(
        ((int(m[1]), p) for p in root.glob(DECISIONS_FILE + ".*") if (m := _ROTATED.match(p.name))),
        reverse=True,
    )
    current = root / DECISIONS_FILE
    return [p for _, p in rotated] + ([current] if current.exists() else [])


def read_decisions(root: Path) -> list[dict[str, Any]]:
    """Every decision the status dir still holds (the rotated files included), oldest first."""
    return DecisionTail(root).read()


class StatusWriter:
    def __init__(
        self,
        root: Path,
        shard_id: str,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        *,
        decisions_max_bytes: int = DEFAULT_MAX_BYTES,
        decisions_keep: int = DEFAULT_KEEP,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.decision_log = DecisionLog(self.root, decisions_max_bytes, decisions_keep)
        self.shard_id = shard_id
        self.interval_s = interval_s
        self.clock = clock
        self._last = 0.0
        self.path = self.root / f"shard-{shard_id}.json"

    def decisions(self, decisions: Iterable[Any], extra: dict[str, Any]) -> None:
        self.decision_log.append(
            json.dumps({**decision_record(d), **extra}, sort_keys=True, default=str) + "\n" for d in decisions
        )

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
    """Reads the decisions appended since the last call, across rotations.

    It keeps the file it follows open, so it follows that file (not the name) and the file's inode
    cannot be reused while it is followed: when ``decisions.jsonl`` was rotated since the last call,
    the rest of the followed file is read (even if a rotation deleted it meanwhile), then every newer
    file whole, and the new ``decisions.jsonl`` is followed. The list of files is taken under a
    shared lock (so no rotation is half done) and read after it is released: a rotated file gets no
    more writes. A reader that fell so far behind that files between its own and the oldest kept
    one were deleted counts ``missed_rotations`` (their decisions are not read). The first call
    returns everything kept (the history).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / DECISIONS_FILE
        self.missed_rotations = 0
        self._file: IO[bytes] | None = None  # the followed file
        self._id: FileId | None = None
        self.offset = 0  # in the followed file
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        newer = self._open_if_rotated()
        chunks: list[bytes] = []
        if self._file is not None:
            self._file.seek(self.offset)
            chunks.append(self._file.read())
            self.offset += len(chunks[-1])
        if newer is not None:
            ids = [ident for ident, _ in newer]
            if self._id in ids:
                start = ids.index(self._id) + 1
            else:
                start = 0
                if self._id is not None:
                    self.missed_rotations += 1
                    log.warning(
                        "decisions: the reader fell behind the rotation; some decisions were not read"
                    )
            for _, f in newer[start:]:
                chunks.append(f.read())
            if newer[start:]:
                self._follow(*newer[-1], offset=len(chunks[-1]))
            for _, f in newer:
                if f is not self._file:
                    f.close()
        data = self._partial + b"".join(chunks)
        *complete, self._partial = data.split(b"\n")
        return [json.loads(line) for line in complete if line.strip()]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _follow(self, ident: FileId, f: IO[bytes], offset: int) -> None:
        if self._file is not None and self._file is not f:
            self._file.close()
        self._file, self._id, self.offset = f, ident, offset

    def _open_if_rotated(self) -> list[tuple[FileId, IO[bytes]]] | None:
        """None while the followed file is still ``decisions.jsonl``; else every kept file, open,
        oldest first."""
        out: list[tuple[FileId, IO[bytes]]] = []
        with _locked(self.root, fcntl.LOCK_SH):
            try:
                st = self.path.stat()
                if (st.st_dev, st.st_ino) == self._id:
                    return None
            except FileNotFoundError:
                pass
            for p in decision_files(self.root):
                try:
                    f = open(p, "rb")  # closed by read(), or kept as the followed file
                except FileNotFoundError:
                    continue
                st = os.fstat(f.fileno())
                out.append(((st.st_dev, st.st_ino), f))
        return out
