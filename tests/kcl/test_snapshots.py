"""Snapshot stores: naming, ordering as numbers, atomic writes, pruning, choice for a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer import snapshots
from consumer.local_stack import StackInfo, boto_client
from consumer.snapshots import LocalSnapshotStore, S3SnapshotStore, Snapshot

SHARD = "shardId-000000000001"


def _exercise(store: snapshots.SnapshotStore) -> None:
    # 9 < 10 < 10.1 < 10**40: string order would get these wrong.
    for pos in [(10, 0), (9, 0), (10, 1), (10**38, 0)]:
        snapshots.save_and_prune(store, Snapshot(SHARD, pos, f"state@{pos}".encode()), keep=3)
    assert store.positions(SHARD) == [(10, 0), (10, 1), (10**38, 0)]  # (9,0) pruned: oldest
    snap = store.load(SHARD, (10, 1))
    assert snap.blob == b"state@(10, 1)" and snap.shard_id == SHARD and snap.written_at > 0
    assert store.positions("shardId-000000000999") == []
    assert snapshots.load_for(store, SHARD, (10, 1)).position == (10, 1)  # exact
    assert snapshots.load_for(store, SHARD, (10, 0)).position == (10, 0)
    assert snapshots.load_for(store, SHARD, (11, 0)).position == (10**38, 0)  # first one past it
    assert snapshots.load_for(store, SHARD, (10**39, 0)).position == (10**38, 0)  # newest before (gap)
    assert snapshots.load_for(store, SHARD, None) is None  # no checkpoint: nothing of this shard
    assert snapshots.latest(store, SHARD).position == (10**38, 0)


def test_local_store(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    _exercise(store)
    names = sorted(p.name for p in (tmp_path / SHARD).iterdir())
    assert names == [
        f"{10:040d}-{0:010d}.snap",
        f"{10:040d}-{1:010d}.snap",
        f"{10**38:040d}-{0:010d}.snap",
    ]  # no temp files left behind


def test_local_store_skips_unreadable_snapshot(tmp_path: Path) -> None:
    store = LocalSnapshotStore(tmp_path)
    store.save(Snapshot(SHARD, (5, 0), b"good"))
    (tmp_path / SHARD / snapshots.name_for((7, 0))).write_bytes(b"truncated garbage")
    snap = snapshots.load_for(store, SHARD, (7, 0))
    assert snap is not None and snap.position == (5, 0) and snap.blob == b"good"


def test_invalid_shard_id_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid shard id"):
        LocalSnapshotStore(tmp_path).save(Snapshot("../etc", (1, 0), b""))


@pytest.mark.integration
def test_s3_store_on_moto(local_stack: StackInfo) -> None:
    client = boto_client("s3", local_stack.endpoint, local_stack.spec.region)
    store = S3SnapshotStore(local_stack.spec.snapshot_bucket, "t/snapshots", client=client)
    _exercise(store)
    # The stack is shared with the daemon tests, whose snapshots live under other prefixes.
    listing = client.list_objects_v2(Bucket=local_stack.spec.snapshot_bucket, Prefix="t/snapshots/")
    keys = [o["Key"] for o in listing["Contents"]]
    assert sorted(keys) == [
        f"t/snapshots/{SHARD}/{snapshots.name_for(p)}" for p in [(10, 0), (10, 1), (10**38, 0)]
    ]
