"""The record processor driven through amazon_kclpy's KCLProcess with the daemon's JSON lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer import snapshots
from consumer.kcl.config import CheckpointConfig, KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import checkpoint_reply, drive, initialize, line, process, record

SHARD = "shardId-000000000000"
BIG = 49590338271490256608559692538361571095921575989136588898  # real-sized sequence number


def make(tmp_path: Path, every_records: int = 3, every_s: float = 3600, **kw) -> tuple[ShardProcessor, list]:
    cfg = KclConfig(
        checkpoint=CheckpointConfig(
            every_records=every_records, every_s=every_s, max_retries=3, backoff_s=0.5
        ),
        snapshots=SnapshotConfig(store="local", path=tmp_path / "snaps", keep=2),
        status_dir=tmp_path / "status",
    )
    pipelines: list[CountingPipeline] = []

    def factory() -> CountingPipeline:
        pipelines.append(CountingPipeline(threshold=3))
        return pipelines[-1]

    sleeps: list[float] = []
    proc = ShardProcessor(
        cfg, factory, snapshots.LocalSnapshotStore(tmp_path / "snaps"), sleep=sleeps.append, **kw
    )
    proc.sleeps = sleeps  # type: ignore[attr-defined]
    return proc, pipelines


def recs(start: int, n: int, ip: str = "10.0.0.1") -> list[dict]:
    return [record(BIG + start + i, line(1_700_000_000 + start + i, ip)) for i in range(n)]


def actions(out: list[dict]) -> list[tuple]:
    return [(m["action"], m.get("responseFor") or m.get("sequenceNumber")) for m in out]


def test_checkpoint_after_n_records_writes_snapshot_first(tmp_path: Path) -> None:
    proc, pipes = make(tmp_path, every_records=3)
    out = drive(
        proc,
        [initialize(), process(recs(0, 2)), process(recs(2, 2)), checkpoint_reply(str(BIG + 3))],
    )
    assert actions(out) == [
        ("status", "initialize"),
        ("status", "processRecords"),  # 2 records: not due
        ("checkpoint", str(BIG + 3)),  # 4 >= 3: checkpoint at the last record delivered
        ("status", "processRecords"),
    ]
    assert out[2]["subSequenceNumber"] == 0
    store = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    assert store.positions(SHARD) == [(BIG + 3, 0)]
    assert pipes[0].flushes == 1  # actions flushed before the snapshot and checkpoint
    snap = store.load(SHARD, (BIG + 3, 0))
    restored = CountingPipeline(threshold=3)
    restored.restore(snap.blob)
    assert restored.counts["10.0.0.1"] == 4


def test_checkpoint_after_t_seconds(tmp_path: Path) -> None:
    now = [0.0]
    proc, _ = make(tmp_path, every_records=1000, every_s=10, clock=lambda: now[0])

    msgs = [initialize(), process(recs(0, 1))]
    out = drive(proc, msgs)
    assert [m["action"] for m in out] == ["status", "status"]  # 0 s elapsed, 1 record: not due
    now[0] = 11.0
    out = drive(proc, [process(recs(1, 1)), checkpoint_reply(str(BIG + 1))])
    assert actions(out) == [("checkpoint", str(BIG + 1)), ("status", "processRecords")]


def test_throttled_checkpoint_is_retried_with_backoff(tmp_path: Path) -> None:
    proc, _ = make(tmp_path, every_records=1)
    out = drive(
        proc,
        [
            initialize(),
            process(recs(0, 1)),
            checkpoint_reply(error="ThrottlingException"),
            checkpoint_reply(error="ThrottlingException"),
            checkpoint_reply(str(BIG)),
        ],
    )
    assert [m["action"] for m in out] == ["status", "checkpoint", "checkpoint", "checkpoint", "status"]
    assert proc.sleeps == [0.5, 1.0]  # type: ignore[attr-defined]
    assert proc.counters["checkpoints"] == 1


def test_throttled_past_retries_waits_for_next_due_point(tmp_path: Path) -> None:
    proc, _ = make(tmp_path, every_records=1)
    throttled = [checkpoint_reply(error="ThrottlingException")] * 4
    out = drive(proc, [initialize(), process(recs(0, 1)), *throttled])
    assert [m["action"] for m in out].count("checkpoint") == 4
    assert proc.counters["checkpoint_failures"] == 1 and proc.checkpointing
    out = drive(proc, [process(recs(1, 1)), checkpoint_reply(str(BIG + 1))])
    assert actions(out)[0] == ("checkpoint", str(BIG + 1))


@pytest.mark.parametrize("error", ["ShutdownException", "InvalidStateException"])
def test_shutdown_or_invalid_state_stops_checkpointing(tmp_path: Path, error: str) -> None:
    proc, _ = make(tmp_path, every_records=1)
    out = drive(
        proc,
        [
            initialize(),
            process(recs(0, 1)),
            checkpoint_reply(error=error),
            process(recs(1, 1)),
            {"action": "shutdownRequested"},
        ],
    )
    # One refused checkpoint, no retry, none afterwards (not even on shutdownRequested).
    assert [m["action"] for m in out] == ["status", "checkpoint", "status", "status", "status"]
    assert not proc.checkpointing


def test_lease_lost_never_checkpoints(tmp_path: Path) -> None:
    proc, pipes = make(tmp_path, every_records=1000)
    out = drive(proc, [initialize(), process(recs(0, 5)), {"action": "leaseLost"}])
    assert actions(out) == [("status", "initialize"), ("status", "processRecords"), ("status", "leaseLost")]
    assert pipes[0].closed
    assert snapshots.LocalSnapshotStore(tmp_path / "snaps").positions(SHARD) == []


def test_shutdown_requested_checkpoints(tmp_path: Path) -> None:
    proc, pipes = make(tmp_path, every_records=1000)
    out = drive(
        proc,
        [initialize(), process(recs(0, 5)), {"action": "shutdownRequested"}, checkpoint_reply(str(BIG + 4))],
    )
    assert actions(out)[-2:] == [("checkpoint", str(BIG + 4)), ("status", "shutdownRequested")]
    assert pipes[0].closed


def test_shard_ended_checkpoints_shard_end_with_final_snapshot(tmp_path: Path) -> None:
    proc, _ = make(tmp_path, every_records=1000)
    out = drive(
        proc, [initialize(), process(recs(0, 5)), {"action": "shardEnded"}, checkpoint_reply("SHARD_END")]
    )
    assert out[-2] == {"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}
    snap = snapshots.latest(snapshots.LocalSnapshotStore(tmp_path / "snaps"), SHARD)
    assert snap is not None and snap.final and snap.position == (BIG + 4, 0)


def test_restart_restores_snapshot_and_skips_redelivered_records(tmp_path: Path) -> None:
    # First life: 4 records, checkpoint at the 4th; then 2 more records and the process dies (no checkpoint).
    proc, pipes = make(tmp_path, every_records=4)
    out = drive(
        proc, [initialize(), process(recs(0, 4)), checkpoint_reply(str(BIG + 3)), process(recs(4, 2))]
    )
    first = [d for d in _decisions(tmp_path)]
    assert [d["key"] for d in first] == ["10.0.0.1"]  # threshold 3 reached once
    assert pipes[0].counts["10.0.0.1"] == 6

    # Second life resumes at the checkpoint: records 4..5 are re-delivered, state comes from the snapshot.
    proc2, pipes2 = make(tmp_path, every_records=4)
    out = drive(proc2, [initialize(seq=str(BIG + 3)), process(recs(4, 3))])
    assert proc2.restored_from == f"{SHARD}@{BIG + 3}.0"
    assert pipes2[0].counts["10.0.0.1"] == 7  # 4 from the snapshot + 3 re-delivered/new, none lost
    assert [d["key"] for d in _decisions(tmp_path)] == ["10.0.0.1"]  # no second decision
    assert out[0] == {"action": "status", "responseFor": "initialize"}


def test_snapshot_newer_than_checkpoint_skips_covered_records(tmp_path: Path) -> None:
    # A snapshot was written at BIG+5 but its checkpoint failed: the daemon re-delivers from BIG+2.
    store = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    p = CountingPipeline(threshold=3)
    p.process([line(0, "10.0.0.2")] * 6)
    store.save(snapshots.Snapshot(SHARD, (BIG + 5, 0), p.snapshot()))
    proc, pipes = make(tmp_path)
    out = drive(
        proc,
        [initialize(seq=str(BIG + 2)), process(recs(3, 5, ip="10.0.0.2")), checkpoint_reply(str(BIG + 7))],
    )
    assert actions(out)[1] == ("checkpoint", str(BIG + 7))
    assert proc.counters["skipped_redelivered"] == 3  # BIG+3..BIG+5 were in the snapshot already
    assert pipes[0].counts["10.0.0.2"] == 8


def test_child_shard_starts_from_parent_snapshot(tmp_path: Path) -> None:
    store = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    p = CountingPipeline(threshold=3)
    p.process([line(0, "10.9.9.9")] * 2)
    store.save(snapshots.Snapshot(SHARD, (BIG, 0), p.snapshot(), final=True))
    proc, pipes = make(tmp_path, parents_of=lambda s: [SHARD] if s == "shardId-000000000002" else [])
    drive(proc, [initialize(shard="shardId-000000000002"), process(recs(10, 1, ip="10.9.9.9"))])
    assert proc.restored_from == f"parent {SHARD}@{BIG}.0"
    assert pipes[0].counts["10.9.9.9"] == 3
    assert [d["key"] for d in _decisions(tmp_path)] == ["10.9.9.9"]


def test_pipeline_error_does_not_kill_the_processor(tmp_path: Path) -> None:
    proc, pipes = make(tmp_path, every_records=1000)

    def boom(lines, source=""):
        raise RuntimeError("boom")

    out = drive(proc, [initialize()])
    pipes[0].process = boom  # type: ignore[method-assign]
    out = drive(proc, [process(recs(0, 2))])
    assert out == [{"action": "status", "responseFor": "processRecords"}]
    assert proc.counters["batch_errors"] == 1


def test_snapshot_write_failure_blocks_the_checkpoint(tmp_path: Path) -> None:
    proc, _ = make(tmp_path, every_records=1)

    class Broken(snapshots.LocalSnapshotStore):
        def save(self, snap):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    proc.store = Broken(tmp_path / "snaps")
    out = drive(proc, [initialize(), process(recs(0, 1))])
    assert [m["action"] for m in out] == ["status", "status"]  # no checkpoint past unsaved state
    assert proc.counters["snapshot_failures"] == 1


def _decisions(tmp_path: Path) -> list[dict]:
    import json

    p = tmp_path / "status" / "decisions.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_processor_exits_when_its_pipeline_cannot_be_built(tmp_path: Path) -> None:
    proc, _ = make(tmp_path)

    def broken():  # type: ignore[no-untyped-def]
        raise ValueError("detectors need field(s) cs-cookie that input.fields does not include")

    proc.pipeline_factory = broken
    with pytest.raises(SystemExit) as exc:
        drive(proc, [initialize()])
    assert exc.value.code == 1


def test_snapshot_the_pipeline_rejects_starts_fresh(tmp_path: Path) -> None:
    store = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    store.save(snapshots.Snapshot(SHARD, (BIG + 3, 0), b"not a pickle of this pipeline"))
    proc, pipes = make(tmp_path)
    drive(proc, [initialize(seq=str(BIG + 3)), process(recs(4, 1))])
    assert proc.restored_from is None and proc.covered is None
    assert len(pipes) == 2 and pipes[1].counts["10.0.0.1"] == 1  # a fresh pipeline took over
