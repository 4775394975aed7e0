"""Fault: the snapshot store (S3) unavailable at restore and at save.

Restore: a processor that cannot read the store waits and retries (``ShardProcessor._load_snapshot``)
rather than starting empty: an empty start would apply the records after the checkpoint to no
history and then checkpoint past them, losing the state for good. Save: a failed write means no
checkpoint (``ShardProcessor._checkpoint``); processing goes on and the next due checkpoint after the
store returns saves and checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer import snapshots
from consumer.kcl.config import CheckpointConfig, KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo, boto_client
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.fault_pipeline import applied_counts
from tests.kcl.faults_common import (
    SHARD0,
    T0,
    blocklist_items,
    blocks,
    create_stream,
    expected_counts,
    fault_config,
    latest_counts,
    save_figures,
)
from tests.kcl.harness import daemon, leases, put_lines, tail, wait_for
from tests.kcl.protocol import drive, initialize, line, line45, process, record

SIGTERM_EXIT = 143


class FlakyStore:
    """A local store whose reads fail (as S3 does when unavailable) a given number of times."""

    def __init__(self, inner: snapshots.SnapshotStore, list_failures: int, load_failures: int) -> None:
        self.inner = inner
        self.list_failures = list_failures
        self.load_failures = load_failures

    def save(self, snap: snapshots.Snapshot) -> str:
        return self.inner.save(snap)

    def positions(self, shard_id: str) -> list[tuple[int, int]]:
        if self.list_failures:
            self.list_failures -= 1
            raise OSError("connection refused")
        return self.inner.positions(shard_id)

    def load(self, shard_id: str, position: tuple[int, int]) -> snapshots.Snapshot:
        if self.load_failures:
            self.load_failures -= 1
            raise OSError("read timed out")
        return self.inner.load(shard_id, position)

    def delete(self, shard_id: str, position: tuple[int, int]) -> None:
        self.inner.delete(shard_id, position)


def test_restore_waits_for_an_unavailable_store_and_restores_the_checkpointed_state(tmp_path: Path) -> None:
    """Guards ``_load_snapshot``'s retry: before it, a failed listing started the shard empty
    (``cannot list snapshots; starting with empty state``) and a failed read fell back to an older
    snapshot; this test then failed (counts 2, not 7; no sleeps)."""
    local = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    seq = 1000
    old = CountingPipeline(threshold=100)
    old.process([line(1_700_000_000, "10.0.0.1")] * 3)
    local.save(snapshots.Snapshot(SHARD0, (seq - 5, 0), old.snapshot()))
    old.process([line(1_700_000_001, "10.0.0.1")] * 2)
    local.save(snapshots.Snapshot(SHARD0, (seq, 0), old.snapshot()))  # the checkpoint's snapshot
    cfg = KclConfig(
        checkpoint=CheckpointConfig(every_records=100, every_s=3600),
        snapshots=SnapshotConfig(store="local", path=tmp_path / "snaps"),
        status_dir=tmp_path / "status",
    )
    pipes: list[CountingPipeline] = []
    sleeps: list[float] = []

    def factory() -> CountingPipeline:
        pipes.append(CountingPipeline(threshold=100))
        return pipes[-1]

    store = FlakyStore(local, list_failures=2, load_failures=1)
    proc = ShardProcessor(cfg, factory, store, sleep=sleeps.append)
    recs = [record(seq + 1 + i, line(1_700_000_002 + i, "10.0.0.1")) for i in range(2)]
    out = drive(proc, [initialize(seq=str(seq)), process(recs)])
    assert [m["action"] for m in out] == ["status", "status"]
    assert sleeps == [0.5, 1.0, 2.0]  # two failed listings, one failed read, each retried
    assert proc.counters["restore_failures"] == 3
    assert proc.restored_from == f"{SHARD0}@{seq}.0"  # the checkpoint's snapshot, not the older one
    assert pipes[-1].counts["10.0.0.1"] == 7
    assert read_status(tmp_path / "status")[SHARD0]["restore_failures"] == 3


def test_unreadable_snapshot_still_falls_back_to_an_older_one(tmp_path: Path) -> None:
    """An unreadable snapshot is not an outage: it is passed over at once (no wait)."""
    local = snapshots.LocalSnapshotStore(tmp_path)
    local.save(snapshots.Snapshot(SHARD0, (5, 0), b"good"))
    (tmp_path / SHARD0 / snapshots.name_for((7, 0))).write_bytes(b"truncated garbage")
    snap = snapshots.load_for(local, SHARD0, (7, 0))
    assert snap is not None and snap.position == (5, 0)
    with pytest.raises(OSError):
        snapshots.load_for(FlakyStore(local, 0, 1), SHARD0, (5, 0))


def _bucket(stack: StackInfo) -> Any:
    return boto_client("s3", stack.endpoint, stack.spec.region)


def _move_bucket(stack: StackInfo, src: str, dst: str) -> int:
    """Copy every object of ``src`` into ``dst`` (created), then delete ``src``: the bucket is gone."""
    s3 = _bucket(stack)
    s3.create_bucket(Bucket=dst)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=src).get("Contents", [])]
    for k in keys:
        s3.copy_object(Bucket=dst, Key=k, CopySource={"Bucket": src, "Key": k})
        s3.delete_object(Bucket=src, Key=k)
    s3.delete_bucket(Bucket=src)
    return len(keys)


@pytest.mark.integration
@pytest.mark.slow
def test_s3_bucket_missing_at_restore_then_back(local_stack: StackInfo, tmp_path: Path) -> None:
    """The worker checkpoints batch 1 and stops; its snapshot bucket disappears (NoSuchBucket); it
    starts again with batch 2 waiting. Its processor logs the error, retries, processes nothing and
    does not move the checkpoint; when the bucket is back (same objects) it restores the snapshot at
    the checkpoint and goes on: the abuser, 30 requests in each batch, is blocked once, which only the
    restored window allows, and the final snapshot counts every record once.

    Guards the restore retry (``ShardProcessor._load_snapshot``). Verified failing without it (the
    old ``starting with empty state`` path): batch 2 was processed at once with an empty state, no
    block was sent, and the final counts missed batch 1.
    """
    app = bucket = "flt-snap-restore"
    create_stream(local_stack, app)
    _bucket(local_stack).create_bucket(Bucket=bucket)
    store_cfg = {"store": "s3", "bucket": bucket, "prefix": f"{app}/", "s3_endpoint": local_stack.endpoint}
    cfg = fault_config(tmp_path, local_stack, app, "worker-a", snapshots=store_cfg)
    status = tmp_path / "status-worker-a"
    abuser = "10.84.0.1"  # unique in the session: the blocklist of the local stack is shared
    batch1 = [line45(T0 + 1 + i * 0.2, abuser) for i in range(30)]
    batch1 += [line45(T0 + 2 + i * 0.1, f"10.81.0.{i}") for i in range(60)]
    batch2 = [line45(T0 + 10 + i * 0.2, abuser) for i in range(30)]
    batch2 += [line45(T0 + 11 + i * 0.1, f"10.81.1.{i}") for i in range(20)]

    seqs = put_lines(local_stack, app, batch1)
    first = daemon(cfg, local_stack, tmp_path, "first")
    first.start()
    try:
        wait_for(
            lambda: leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seqs[-1],
            120,
            "the checkpoint of batch 1\n" + tail(first.log_path),
        )
    finally:
        assert first.stop() == SIGTERM_EXIT, tail(first.log_path)
    checkpoint_c = seqs[-1]
    assert blocks(local_stack, abuser) == []
    moved = _move_bucket(local_stack, bucket, bucket + "-away")
    assert moved >= 1

    seqs += put_lines(local_stack, app, batch2)
    second = daemon(cfg, local_stack, tmp_path, "second")
    second.start()
    try:
        st = wait_for(
            lambda: (s := read_status(status).get(SHARD0, {})).get("restore_failures", 0) >= 3 and s,
            90,
            "three failed restores\n" + tail(second.log_path),
        )
        restore_failures = st["restore_failures"]
        assert st["records"] == 0 and st["restored_from"] is None
        assert leases(local_stack, app)[SHARD0]["checkpoint"] == checkpoint_c
        _move_bucket(local_stack, bucket + "-away", bucket)
        st = wait_for(
            lambda: (s := read_status(status)[SHARD0])["records"] == len(batch2) and s,
            60,
            "batch 2 processed once the bucket is back\n" + tail(second.log_path),
        )
        wait_for(
            lambda: leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1],
            30,
            "the checkpoint of batch 2",
        )
    finally:
        assert second.stop() == SIGTERM_EXIT, tail(second.log_path)
    log2 = second.log_path.read_text()
    assert "snapshot store unavailable at restore" in log2 and "NoSuchBucket" in log2
    assert st["restored_from"] == f"{SHARD0}@{checkpoint_c}.0"
    assert st["skipped_redelivered"] == 0
    final = snapshots.latest(
        snapshots.S3SnapshotStore(bucket, f"{app}/", client=_bucket(local_stack)), SHARD0
    )
    assert final is not None and final.position == (int(seqs[-1]), 0)
    assert applied_counts(final.blob) == expected_counts(batch1 + batch2)
    calls = blocks(local_stack, abuser)
    assert [c["status"] for c in calls] == ["applied"]
    block, idem = blocklist_items(local_stack, abuser)
    assert block is not None and block["idempotency_key"]["S"] == calls[0]["idempotency_key"]
    assert len(idem) == 1
    save_figures(
        tmp_path,
        restore_failures_seen=restore_failures,
        records=st["records"],
        restored_from=st["restored_from"],
        final_snapshot_records=sum(applied_counts(final.blob).values()),
        block_invocations=[c["status"] for c in calls],
    )


@pytest.mark.integration
@pytest.mark.slow
def test_s3_errors_at_save_no_checkpoint_past_unsaved_state(local_stack: StackInfo, tmp_path: Path) -> None:
    """S3 answers ``SlowDown`` (503) to every snapshot PutObject of this application.

    Outage 1 (10 s): the processor goes on processing batch 2, logs each failed write, retries on the
    time rule (every 2 s) rather than at every batch, and does not move the checkpoint; when S3 is
    back the same process saves and checkpoints. Outage 2 (until lifted): batch 3 (the abuser's 50th
    request) is processed and its block delivered, then the worker is SIGKILLed; restarted after S3
    is back, it restores the snapshot of batch 2 (the checkpoint), re-processes batch 3 and decides the
    block again with the same idempotency key (``duplicate`` at the Lambda). Every record ends in the
    state exactly once.

    Guards (1) no checkpoint without its snapshot (``ShardProcessor._checkpoint`` returns before
    checkpointing when the write fails) and (2) the retry of a failed write on the time rule
    (``CheckpointPolicy.failed``). Verified failing without each: (1) without the early return the
    checkpoint moved during outage 1; (2) without the backoff outage 1 saw a PutObject attempt on
    every batch (17 failed writes in 10 s, bound 7).
    """
    from consumer.local_stack_faults import Faults

    app = "flt-snap-save"
    create_stream(local_stack, app)
    cfg = fault_config(tmp_path, local_stack, app, "worker-a")
    status = tmp_path / "status-worker-a"
    faults = Faults(local_stack.endpoint)
    puts = {"service": "s3", "operation": "PutObject", "error": "SlowDown"}
    puts["path_contains"] = f"/{local_stack.spec.snapshot_bucket}/{app}/"
    abuser = "10.82.0.1"
    batch1 = [line45(T0 + 1 + i * 0.1, f"10.83.0.{i}") for i in range(60)]
    batch2 = [line45(T0 + 8 + i * 0.2, abuser) for i in range(30)]
    batch2 += [line45(T0 + 9 + i * 0.1, f"10.83.1.{i}") for i in range(30)]
    batch3 = [line45(T0 + 16 + i * 0.2, abuser) for i in range(25)]
    batch3 += [line45(T0 + 17 + i * 0.1, f"10.83.2.{i}") for i in range(20)]

    def stat() -> dict[str, Any]:
        return read_status(status).get(SHARD0, {})

    def checkpoint() -> str | None:
        return leases(local_stack, app).get(SHARD0, {}).get("checkpoint")

    seqs = put_lines(local_stack, app, batch1)
    first = daemon(cfg, local_stack, tmp_path, "first")
    second = daemon(cfg, local_stack, tmp_path, "second")
    first.start()
    try:
        wait_for(lambda: checkpoint() == seqs[-1], 120, "the checkpoint of batch 1\n" + tail(first.log_path))
        checkpoint_1 = seqs[-1]
        outage1 = faults.add(**puts, seconds=10)
        seqs += put_lines(local_stack, app, batch2)
        wait_for(lambda: stat().get("snapshot_failures", 0) >= 1, 15, "a failed snapshot write")
        assert checkpoint() == checkpoint_1  # never past the unsaved state
        wait_for(lambda: stat().get("snapshot_failures", 0) >= 2, 15, "a second failed write")
        assert stat()["records"] == len(batch1) + len(batch2)  # processing goes on
        assert checkpoint() == checkpoint_1
        assert faults.rule(outage1)["active"]
        wait_for(lambda: checkpoint() == seqs[-1], 25, "the checkpoint once S3 is back")
        failures = stat()["snapshot_failures"]
        assert 2 <= failures <= 7, failures  # on the time rule (every 2 s), not at every batch
        outage1_requests = faults.rule(outage1)["injected"]
        assert outage1_requests >= failures  # (each write is one PutObject and one quick retry)
        checkpoint_2 = seqs[-1]

        outage2 = faults.add(**puts)
        seqs += put_lines(local_stack, app, batch3)
        wait_for(lambda: [c["status"] for c in blocks(local_stack, abuser)] == ["applied"], 60, "the block")
        wait_for(lambda: faults.rule(outage2)["injected"] >= 1, 10, "a failed write of batch 3's state")
        assert stat()["records"] == len(batch1) + len(batch2) + len(batch3)
        assert checkpoint() == checkpoint_2
        first.kill()
        faults.clear()
        second.start()
        wait_for(
            lambda: checkpoint() == seqs[-1],
            60,
            "the restarted worker's checkpoint\n" + tail(second.log_path),
        )
        st = stat()
    finally:
        faults.clear()
        first.kill()
        code = second.stop()
    assert code == SIGTERM_EXIT, tail(second.log_path)
    log1 = first.log_path.read_text()
    assert "snapshot write failed" in log1 and "SlowDown" in log1
    assert st["restored_from"] == f"{SHARD0}@{checkpoint_2}.0"
    assert st["records"] == len(batch3) and st["skipped_redelivered"] == 0
    position, counts = latest_counts(local_stack, app)
    assert position == (int(seqs[-1]), 0)
    assert counts == expected_counts(batch1 + batch2 + batch3)
    calls = blocks(local_stack, abuser)
    assert [c["status"] for c in calls] == ["applied", "duplicate"]
    assert len({c["idempotency_key"] for c in calls}) == 1
    block, idem = blocklist_items(local_stack, abuser)
    assert block is not None and len(idem) == 1
    save_figures(
        tmp_path,
        outage1_failed_writes=failures,
        outage1_put_requests_refused=outage1_requests,
        checkpoint_held_at=checkpoint_1,
        restarted={k: st[k] for k in ("records", "restored_from", "skipped_redelivered", "checkpoints")},
        final_snapshot_records=sum(counts.values()),
        block_invocations=[c["status"] for c in calls],
    )


def test_failed_snapshot_write_is_retried_on_the_time_rule_not_every_batch(tmp_path: Path) -> None:
    """Guards ``CheckpointPolicy.failed``: without it every batch after a failed write serialised the
    state and called the store again (this test then saw a write at each of the 3 batches, not 1)."""
    now = [0.0]
    saves: list[tuple[int, int]] = []

    class Down(snapshots.LocalSnapshotStore):
        up = False

        def save(self, snap: snapshots.Snapshot) -> str:
            saves.append(snap.position)
            if not self.up:
                raise OSError("SlowDown")
            return super().save(snap)

    cfg = KclConfig(
        checkpoint=CheckpointConfig(every_records=1, every_s=10),
        snapshots=SnapshotConfig(store="local", path=tmp_path / "snaps"),
    )
    store = Down(tmp_path / "snaps")
    proc = ShardProcessor(cfg, lambda: CountingPipeline(threshold=100), store, clock=lambda: now[0])
    recs = [record(100 + i, line(1_700_000_000 + i, "10.0.0.1")) for i in range(4)]
    out = drive(proc, [initialize(), process(recs[:1]), process(recs[1:2]), process(recs[2:3])])
    assert [m["action"] for m in out] == ["status"] * 4  # nothing checkpointed past unsaved state
    assert saves == [(100, 0)]  # one try; the next two batches wait for the time rule
    now[0] = 10.5
    store.up = True
    out = drive(
        proc,
        [process(recs[3:]), {"action": "checkpoint", "sequenceNumber": "103", "subSequenceNumber": None}],
    )
    assert [m["action"] for m in out] == ["checkpoint", "status"] and out[0]["sequenceNumber"] == "103"
    assert saves == [(100, 0), (103, 0)]
    assert proc.counters["snapshot_failures"] == 1 and proc.counters["checkpoints"] == 1
