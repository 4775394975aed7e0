"""Per-shard state snapshots, tagged with the stream position they cover.

Written before every checkpoint (so a checkpoint never points past the state that saw its records),
atomically (local: temp file + rename; S3: one PutObject), the newest ``keep`` kept per shard.
Object names sort by position: ``<prefix><shard_id>/<sequence:40 digits>-<sub:10 digits>.snap``.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from consumer.kcl.config import SnapshotConfig

log = logging.getLogger(__name__)

Position = tuple[int, int]
FORMAT_VERSION = 1
SUFFIX = ".snap"


@dataclass(frozen=True)
class Snapshot:
    shard_id: str
    position: Position
    blob: bytes  # Pipeline.snapshot()
    final: bool = False  # written at the shard's end (what child shards start from)
    written_at: float = 0.0


def name_for(position: Position) -> str:
    seq, sub = position
    return f"{seq:040d}-{sub:010d}{SUFFIX}"


def position_of(name: str) -> Position | None:
    if not name.endswith(SUFFIX):
        return None
    seq, _, sub = name[: -len(SUFFIX)].partition("-")
    if not (seq.isdigit() and sub.isdigit()):
        return None
    return int(seq), int(sub)


def encode(snap: Snapshot) -> bytes:
    return pickle.dumps(
        {
            "version": FORMAT_VERSION,
            "shard_id": snap.shard_id,
            "position": snap.position,
            "final": snap.final,
            "written_at": snap.written_at,
            "blob": snap.blob,
        },
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def decode(data: bytes, where: str) -> Snapshot:
    try:
        d = pickle.loads(data)
    except Exception as exc:
        raise ValueError(f"snapshot {where} is unreadable: {exc}") from None
    if not isinstance(d, dict) or d.get("version") != FORMAT_VERSION:
        raise ValueError(f"snapshot {where} has an unknown format")
    try:
        return Snapshot(d["shard_id"], tuple(d["position"]), d["blob"], d["final"], d["written_at"])  # type: ignore[arg-type]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"snapshot {where} lacks {exc}") from None


class SnapshotStore(Protocol):
    def save(self, snap: Snapshot) -> str: ...
    def positions(self, shard_id: str) -> list[Position]: ...
    def load(self, shard_id: str, position: Position) -> Snapshot: ...
    def delete(self, shard_id: str, position: Position) -> None: ...


def _check_shard(shard_id: str) -> str:
    if not shard_id or "/" in shard_id or shard_id.startswith("."):
        raise ValueError(f"invalid shard id for a snapshot name: {shard_id!r}")
    return shard_id


class LocalSnapshotStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, shard_id: str) -> Path:
        return self.root / _check_shard(shard_id)

    def save(self, snap: Snapshot) -> str:
        d = self._dir(snap.shard_id)
        d.mkdir(parents=True, exist_ok=True)
        final = d / name_for(snap.position)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(encode(snap))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(final)

    def positions(self, shard_id: str) -> list[Position]:
        d = self._dir(shard_id)
        if not d.is_dir():
            return []
        found = (position_of(p.name) for p in d.iterdir() if not p.name.startswith("."))
        return sorted(p for p in found if p is not None)

    def load(self, shard_id: str, position: Position) -> Snapshot:
        path = self._dir(shard_id) / name_for(position)
        return decode(path.read_bytes(), str(path))

    def delete(self, shard_id: str, position: Position) -> None:
        (self._dir(shard_id) / name_for(position)).unlink(missing_ok=True)


class S3SnapshotStore:
    def __init__(
        self, bucket: str, prefix: str = "", client: object | None = None, **client_args: object
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3", **client_args)  # type: ignore[call-overload]
        self.s3 = client
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    def _key(self, shard_id: str, position: Position) -> str:
        return f"{self.prefix}{_check_shard(shard_id)}/{name_for(position)}"

    def save(self, snap: Snapshot) -> str:
        key = self._key(snap.shard_id, snap.position)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=encode(snap))  # type: ignore[attr-defined]
        return f"s3://{self.bucket}/{key}"

    def positions(self, shard_id: str) -> list[Position]:
        base = f"{self.prefix}{_check_shard(shard_id)}/"
        out: list[Position] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base)  # type: ignore[attr-defined]
        for page in pages:
            for obj in page.get("Contents", []):
                pos = position_of(obj["Key"][len(base) :])
                if pos is not None:
                    out.append(pos)
        return sorted(out)

    def load(self, shard_id: str, position: Position) -> Snapshot:
        key = self._key(shard_id, position)
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()  # type: ignore[attr-defined]
        return decode(body, f"s3://{self.bucket}/{key}")

    def delete(self, shard_id: str, position: Position) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._key(shard_id, position))  # type: ignore[attr-defined]


def open_store(cfg: SnapshotConfig, region: str | None = None) -> SnapshotStore | None:
    if cfg.store == "none":
        return None
    if cfg.store == "local":
        return LocalSnapshotStore(cfg.path)
    from botocore.config import Config as BotoConfig

    # One quick retry only: a failed write is tried again on the checkpoint's time rule and a failed
    # restore by the processor's own loop; botocore's default (up to 5 tries, backoff up to 8 s)
    # would hold the record-processing thread for up to ~15 s per write while S3 is down.
    args: dict[str, object] = {"config": BotoConfig(retries={"mode": "standard", "total_max_attempts": 2})}
    if cfg.s3_endpoint:
        args["endpoint_url"] = cfg.s3_endpoint
    if region:
        args["region_name"] = region
    assert cfg.bucket is not None
    return S3SnapshotStore(cfg.bucket, cfg.prefix, **args)


def save_and_prune(store: SnapshotStore, snap: Snapshot, keep: int) -> str:
    """Write ``snap``, then delete all but the newest ``keep`` (a failed delete is only logged)."""
    where = store.save(
        Snapshot(snap.shard_id, snap.position, snap.blob, snap.final, snap.written_at or time.time())
    )
    old = store.positions(snap.shard_id)[:-keep]
    for pos in old:
        try:
            store.delete(snap.shard_id, pos)
        except Exception as exc:
            log.warning("could not prune snapshot %s of %s: %s", name_for(pos), snap.shard_id, exc)
    return where


def choose(positions: list[Position], checkpoint: Position | None) -> Position | None:
    """The snapshot to restore for a checkpoint.

    Exact match first. Otherwise the oldest one past the checkpoint (written, then the checkpoint
    failed: the records in between are re-delivered and skipped as covered). Otherwise the newest
    before it (a snapshot was lost: the records in between are missing from the state; logged).
    With no checkpoint (new lease at TRIM_HORIZON/LATEST) nothing of this shard is restored.
    """
    if checkpoint is None or not positions:
        return None
    if checkpoint in positions:
        return checkpoint
    after = [p for p in positions if p > checkpoint]
    if after:
        return after[0]
    return positions[-1]


def load_for(store: SnapshotStore, shard_id: str, checkpoint: Position | None) -> Snapshot | None:
    """Restore candidate for ``shard_id`` at ``checkpoint``; unreadable snapshots fall back to others.

    Only an unreadable snapshot (``ValueError`` from ``decode``) is passed over. Any other error
    means the store could not be read (S3 down, throttled, bucket missing, a snapshot pruned between
    listing and reading) and is raised: falling back then would restore an older state, or none,
    for a transient fault.
    """
    if checkpoint is None:
        return None  # nothing of this shard is restored without a checkpoint (see choose)
    positions = store.positions(shard_id)
    while positions:
        pos = choose(positions, checkpoint)
        if pos is None:
            return None
        try:
            return store.load(shard_id, pos)
        except ValueError as exc:
            log.error("snapshot %s of %s unusable (%s); trying another", name_for(pos), shard_id, exc)
            positions.remove(pos)
    return None


def latest(store: SnapshotStore, shard_id: str) -> Snapshot | None:
    """The newest readable snapshot of a shard (used for parent shards after a resharding)."""
    for pos in reversed(store.positions(shard_id)):
        try:
            return store.load(shard_id, pos)
        except Exception as exc:
            log.error("snapshot %s of %s unusable (%s)", name_for(pos), shard_id, exc)
    return None
