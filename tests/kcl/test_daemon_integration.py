"""The real KCL MultiLangDaemon (Java) against the local stack, with the record processor as its child.

One test per scenario; each uses its own application name (lease table) so they are independent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer import snapshots
from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo, boto_client
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.harness import daemon, leases, put_lines, tail, wait_for, write_config
from tests.kcl.protocol import line

pytestmark = pytest.mark.integration
SHARD0 = "shardId-000000000000"
SIGTERM_EXIT = 143  # the JVM's status after its shutdown hooks ran on SIGTERM (graceful)


def _decisions(status: Path) -> list[dict]:
    p = status / "decisions.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_process_checkpoint_sigterm_restart(local_stack: StackInfo, tmp_path: Path) -> None:
    stream, app = local_stack.spec.stream_name, "it-restart"
    status = tmp_path / "status"
    cfg = write_config(tmp_path, local_stack, app, stream)
    # 60 requests from the abuser (threshold 50), 30 from a slow one, 110 from 110 others.
    first = [line(1_700_000_000 + i, "10.6.6.6") for i in range(60)]
    first += [line(1_700_000_100 + i, "10.3.3.3") for i in range(30)]
    first += [line(1_700_000_200 + i, f"10.1.{i // 100}.{i % 100}") for i in range(110)]
    seqs = put_lines(local_stack, stream, first)

    d = daemon(cfg, local_stack, tmp_path, "first")
    d.start()
    try:
        wait_for(lambda: _decisions(status), 120, "the abuser's decision\n" + tail(d.log_path))
        # Checkpoints land in the lease table (every 50 records or 2 s).
        wait_for(
            lambda: leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seqs[-1],
            30,
            "the checkpoint of the last record in the lease table",
        )
        assert [x["key"] for x in _decisions(status)] == ["10.6.6.6"]
        more = [line(1_700_001_000 + i, "10.6.6.6") for i in range(5)]
        seqs += put_lines(local_stack, stream, more)
        wait_for(lambda: read_status(status)[SHARD0]["records"] == 205, 30, "the 5 new records")
    finally:
        code = d.stop()  # SIGTERM -> shutdownRequested -> checkpoint
    log_first = tail(d.log_path)
    assert code == SIGTERM_EXIT, log_first
    assert "Writing ShutdownRequestedMessage" in d.log_path.read_text()
    assert leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1]

    # While stopped: 25 more from the slow one (55 in all: only a restored state knows the first 30)
    # and more from the abuser (already decided: must not be decided twice).
    later = [line(1_700_002_000 + i, "10.3.3.3") for i in range(25)]
    later += [line(1_700_002_100 + i, "10.6.6.6") for i in range(20)]
    seqs += put_lines(local_stack, stream, later)
    d2 = daemon(cfg, local_stack, tmp_path, "second")
    d2.start()
    try:
        wait_for(lambda: len(_decisions(status)) >= 2, 90, "the second decision\n" + tail(d2.log_path))
        st = wait_for(
            lambda: (s := read_status(status)[SHARD0]).get("records") == 45 and s,
            30,
            "the 45 new records in the restarted processor",
        )
        assert st["restored_from"] == f"{SHARD0}@{int(seqs[204])}.0"
        assert st["skipped_redelivered"] == 0
        assert st["pipeline"]["records"] == 250  # 205 from the snapshot + 45: none lost, none twice
    finally:
        assert d2.stop() == SIGTERM_EXIT, tail(d2.log_path)
    assert [x["key"] for x in _decisions(status)] == ["10.6.6.6", "10.3.3.3"]
    assert leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1]


def test_two_workers_split_shards_and_survive_sigkill(local_stack: StackInfo, tmp_path: Path) -> None:
    stream, app = "it-four-shards", "it-two-workers"
    kinesis = boto_client("kinesis", local_stack.endpoint, local_stack.spec.region)
    kinesis.create_stream(StreamName=stream, ShardCount=4)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    common = {"checkpoint": {"every_records": 40, "every_s": 1}}
    cfg_a = write_config(tmp_path, local_stack, app, stream, worker_id="worker-a", **common)
    cfg_b = write_config(tmp_path, local_stack, app, stream, worker_id="worker-b", **common)
    lines = [line(1_700_000_000 + i, f"10.2.{i % 7}.{i % 11}") for i in range(400)]
    put_lines(local_stack, stream, lines)

    a = daemon(cfg_a, local_stack, tmp_path, "a", threshold=10**9)
    b = daemon(cfg_b, local_stack, tmp_path, "b", threshold=10**9)
    a.start()
    b.start()
    try:
        owners = wait_for(
            lambda: (
                (ls := leases(local_stack, app))
                and len({v["owner"] for v in ls.values()} - {None}) == 2
                and len(ls) == 4
                and all(v["owner"] for v in ls.values())
                and ls
            ),
            150,
            "both workers holding leases\n" + tail(a.log_path) + tail(b.log_path),
        )
        held_by_b = sorted(k for k, v in owners.items() if v["owner"] == "worker-b")
        assert 1 <= len(held_by_b) <= 3
        wait_for(
            lambda: sum(s.get("records", 0) for s in read_status(tmp_path / "status").values()) >= 400,
            60,
            "all 400 records processed",
        )
        # More records, then worker b dies without any shutdown (its last batches are not checkpointed).
        put_lines(local_stack, stream, [line(1_700_001_000 + i, f"10.4.0.{i % 50}") for i in range(200)])
        b.kill()
        wait_for(
            lambda: all(v["owner"] == "worker-a" for v in leases(local_stack, app).values()),
            120,
            "worker a taking over b's leases\n" + tail(a.log_path),
        )

        def live_total() -> int:
            st = read_status(tmp_path / "status")
            if set(st) != set(owners) or any(x["closed"] for x in st.values()):
                return 0
            return sum(x["pipeline"]["records"] for x in st.values())

        wait_for(lambda: live_total() == 600, 90, "a's processors covering all 600 records")
        final = read_status(tmp_path / "status")
    finally:
        code = a.stop()
        b.kill()
    assert code == SIGTERM_EXIT, tail(a.log_path)
    # Every shard's final snapshot (written on shutdownRequested) counts each record exactly once.
    store = snapshots.S3SnapshotStore(
        local_stack.spec.snapshot_bucket,
        f"{app}/",
        client=boto_client("s3", local_stack.endpoint, "us-east-1"),
    )
    total = 0
    for shard in owners:
        snap = snapshots.latest(store, shard)
        assert snap is not None, shard
        p = CountingPipeline()
        p.restore(snap.blob)
        total += p.records
    assert total == 600
    assert any(final[s]["restored_from"] for s in held_by_b)  # b's shards resumed from its snapshots

