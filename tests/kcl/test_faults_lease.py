"""Fault: a shard's lease is taken from its worker while a batch is in flight (real KCL daemons).

Worker a's processor is held inside a batch (``fault_pipeline``'s pause, after the daemon delivered
the batch and before the state saw it); meanwhile the lease item is rewritten in the DynamoDB lease
table the way the KCL's lease taker does it (owner changed, ``leaseCounter`` + 1, conditional on the
counter it read), and worker b, whose id is the new owner, starts and picks the lease up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo
from tests.kcl.faults_common import (
    SHARD0,
    T0,
    blocklist_items,
    blocks,
    create_stream,
    decisions,
    expected_counts,
    fault_config,
    latest_counts,
    save_figures,
    steal_lease,
)
from tests.kcl.harness import daemon, leases, put_lines, tail, wait_for
from tests.kcl.protocol import line45

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SIGTERM_EXIT = 143
ABUSER = "10.77.0.1"
MARK = "10.77.9.9"  # the batch holding this client's line is the one paused in flight


def test_lease_stolen_mid_batch_new_owner_replays_from_checkpoint_block_once(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """Worker a checkpoints batch 1 (snapshot C), then holds batch 2 in flight while its lease moves
    to worker b. b restores snapshot C, re-processes batch 2 from checkpoint C and blocks the abuser
    (its 50th request is in batch 2). Released, a finishes the batch, decides the same block, and its
    checkpoint is refused (ShutdownException: the lease is gone): it stops checkpointing and the
    daemon ends it with leaseLost. b goes on with batch 3.

    Guards: (1) block idempotency: the key is made of event-time facts only
    (``actions/idempotency.py``), so a's and b's decisions carry the same key and the block Lambda
    applies it once; (2) restore on lease move: b restores the snapshot at the lease's checkpoint
    (``ShardProcessor._restore`` / ``snapshots.load_for``). Verified failing without each: with
    ``decided_at`` added to the idempotency key both invocations were ``applied`` (two idempotency
    items); with ``_restore`` returning at once b's state lacked batch 1, its abuser count stayed
    under 50 and b never sent the block (timed out waiting for it).
    """
    app = "flt-lease-steal"
    create_stream(local_stack, app)
    cfg_a = fault_config(tmp_path, local_stack, app, "worker-a")
    cfg_b = fault_config(tmp_path, local_stack, app, "worker-b")
    status_a, status_b = tmp_path / "status-worker-a", tmp_path / "status-worker-b"
    pause = tmp_path / "pause"
    pause.mkdir()

    # Batch 1: 30 of the abuser's requests (threshold 50 per minute), 90 from others.
    batch1 = [line45(T0 + 1 + i * 0.2, ABUSER) for i in range(30)]
    batch1 += [line45(T0 + 2 + i * 0.1, f"10.78.{i // 50}.{i % 50}") for i in range(90)]
    # Batch 2: the marker, 30 more from the abuser (the block falls in this batch), 20 others.
    batch2 = [line45(T0 + 10, MARK)] + [line45(T0 + 11 + i * 0.2, ABUSER) for i in range(30)]
    batch2 += [line45(T0 + 12 + i * 0.1, f"10.79.0.{i}") for i in range(20)]
    batch3 = [line45(T0 + 20 + i * 0.1, f"10.79.1.{i}") for i in range(25)]

    seqs = put_lines(local_stack, app, batch1)
    a = daemon(cfg_a, local_stack, tmp_path, "a")
    a.env.update({"CFGUARD_TEST_PAUSE_DIR": str(pause), "CFGUARD_TEST_PAUSE_MARK": MARK})
    b = daemon(cfg_b, local_stack, tmp_path, "b")
    a.start()
    try:
        wait_for(
            lambda: leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seqs[-1],
            120,
            "worker a's checkpoint of batch 1\n" + tail(a.log_path),
        )
        checkpoint_c = seqs[-1]
        seqs += put_lines(local_stack, app, batch2)
        wait_for(lambda: (pause / f"paused-{SHARD0}").exists(), 30, "batch 2 in flight in worker a")
        assert read_status(status_a)[SHARD0]["records"] == len(batch1)

        steal_lease(local_stack, app, SHARD0, "worker-b")
        b.start()
        first = wait_for(lambda: blocks(local_stack, ABUSER), 90, "b's block\n" + tail(b.log_path))
        wait_for(
            lambda: read_status(status_b).get(SHARD0, {}).get("records") == len(batch2),
            30,
            "b re-processing batch 2",
        )
        (pause / "resume").touch()  # a finishes its batch
        st_a = wait_for(
            lambda: (s := read_status(status_a)[SHARD0])["closed"] and s,
            60,
            "worker a's processor ending with leaseLost\n" + tail(a.log_path),
        )
        seqs += put_lines(local_stack, app, batch3)
        wait_for(
            lambda: leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1],
            30,
            "b's checkpoint of batch 3",
        )
        st_b = read_status(status_b)[SHARD0]
    finally:
        (pause / "resume").touch()
        code_b = b.stop()
        code_a = a.stop()
    assert code_b == SIGTERM_EXIT, tail(b.log_path)
    assert code_a == SIGTERM_EXIT, tail(a.log_path)
    log_a = a.log_path.read_text()

    # The old owner: batch 1 checkpointed, batch 2 applied to its own state, its checkpoint refused.
    assert st_a["records"] == len(batch1) + len(batch2)
    assert st_a["checkpoints"] == 1 and st_a["checkpoint_failures"] == 1
    assert "checkpoint refused (ShutdownException)" in log_a
    # The new owner: restored at checkpoint C, re-processed batch 2 (nothing skipped), then batch 3.
    assert st_b["restored_from"] == f"{SHARD0}@{checkpoint_c}.0"
    assert st_b["skipped_redelivered"] == 0
    assert st_b["records"] == len(batch2) + len(batch3)
    assert leases(local_stack, app)[SHARD0] == {"checkpoint": seqs[-1], "owner": "worker-b"}
    # Every record is in the final state exactly once.
    position, counts = latest_counts(local_stack, app)
    assert position == (int(seqs[-1]), 0)
    assert counts == expected_counts(batch1 + batch2 + batch3)

    # Both owners decided the block, with one idempotency key; the Lambda applied it once.
    calls = blocks(local_stack, ABUSER)
    assert [c["status"] for c in calls] == ["applied", "duplicate"], calls
    block, idem = blocklist_items(local_stack, ABUSER)
    assert len(idem) == 1
    ikeys = {d["idempotency_key"] for d in decisions(status_a) + decisions(status_b) if d["key"] == ABUSER}
    assert [d["action"] for d in decisions(status_a) if d["key"] == ABUSER] == ["block"]
    assert [d["action"] for d in decisions(status_b) if d["key"] == ABUSER] == ["block"]
    assert len(ikeys) == 1
    assert {c["idempotency_key"] for c in calls} == ikeys
    assert first[0]["received"] == calls[0]["received"]  # b's, sent while a was held
    assert block is not None and block["status"]["S"] == "active"
    assert block["idempotency_key"]["S"] in ikeys
    save_figures(
        tmp_path,
        records_put=len(batch1) + len(batch2) + len(batch3),
        old_owner={k: st_a[k] for k in ("records", "checkpoints", "checkpoint_failures")},
        new_owner={k: st_b[k] for k in ("records", "restored_from", "skipped_redelivered", "checkpoints")},
        final_snapshot_records=sum(counts.values()),
        block_invocations=[c["status"] for c in calls],
        idempotency_items=len(idem),
    )


def test_lease_stolen_mid_batch_old_owner_snapshot_past_checkpoint_is_used_once(
    local_stack: StackInfo, tmp_path: Path
) -> None:
    """The other order: the lease is taken while batch 2 is in flight in worker a, and a finishes the
    batch before worker b starts. a blocks the abuser, writes the snapshot of batch 2 (P) and then
    its checkpoint is refused (ShutdownException): the lease checkpoint stays at C. With
    ``snapshots.keep: 1`` a's write of P pruned C's snapshot, so the only one is past the checkpoint
    (with more kept, b restores C's exact snapshot and re-processes batch 2, as in the test above).
    b starts at C, restores P and skips the re-delivered batch 2 as covered: nothing applied twice,
    the block not decided again.

    Guards the skip of re-delivered records covered by the restored snapshot
    (``consumer/kcl/records.decode``'s ``after``, ``snapshots.choose``). Verified failing without it:
    with ``decode`` given no position, b applied batch 2 a second time (every batch-2 client counted
    twice in the final snapshot).
    """
    app = "flt-lease-steal-2"
    create_stream(local_stack, app)
    store = {"store": "s3", "bucket": local_stack.spec.snapshot_bucket, "prefix": f"{app}/", "keep": 1}
    store["s3_endpoint"] = local_stack.endpoint
    cfg_a = fault_config(tmp_path, local_stack, app, "worker-a", snapshots=store)
    cfg_b = fault_config(tmp_path, local_stack, app, "worker-b", snapshots=store)
    status_a, status_b = tmp_path / "status-worker-a", tmp_path / "status-worker-b"
    pause = tmp_path / "pause"
    pause.mkdir()
    abuser = "10.77.1.1"
    batch1 = [line45(T0 + 1 + i * 0.2, abuser) for i in range(30)]
    batch1 += [line45(T0 + 2 + i * 0.1, f"10.78.2.{i}") for i in range(40)]
    batch2 = [line45(T0 + 10, MARK)] + [line45(T0 + 11 + i * 0.2, abuser) for i in range(30)]
    batch2 += [line45(T0 + 12 + i * 0.1, f"10.79.2.{i}") for i in range(20)]
    batch3 = [line45(T0 + 20 + i * 0.1, f"10.79.3.{i}") for i in range(25)]

    seqs = put_lines(local_stack, app, batch1)
    a = daemon(cfg_a, local_stack, tmp_path, "a")
    a.env.update({"CFGUARD_TEST_PAUSE_DIR": str(pause), "CFGUARD_TEST_PAUSE_MARK": MARK})
    b = daemon(cfg_b, local_stack, tmp_path, "b")
    a.start()
    try:
        wait_for(
            lambda: leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seqs[-1],
            120,
            "worker a's checkpoint of batch 1\n" + tail(a.log_path),
        )
        checkpoint_c = seqs[-1]
        seqs += put_lines(local_stack, app, batch2)
        wait_for(lambda: (pause / f"paused-{SHARD0}").exists(), 30, "batch 2 in flight in worker a")
        steal_lease(local_stack, app, SHARD0, "worker-b")
        (pause / "resume").touch()
        st_a = wait_for(
            lambda: (s := read_status(status_a)[SHARD0])["closed"] and s,
            60,
            "worker a's processor ending with leaseLost\n" + tail(a.log_path),
        )
        assert leases(local_stack, app)[SHARD0]["checkpoint"] == checkpoint_c
        b.start()
        seqs += put_lines(local_stack, app, batch3)
        wait_for(
            lambda: leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1],
            60,
            "b's checkpoint of batch 3\n" + tail(b.log_path),
        )
        st_b = read_status(status_b)[SHARD0]
    finally:
        (pause / "resume").touch()
        code_b = b.stop()
        code_a = a.stop()
    assert code_b == SIGTERM_EXIT, tail(b.log_path)
    assert code_a == SIGTERM_EXIT, tail(a.log_path)
    assert "checkpoint refused (ShutdownException)" in a.log_path.read_text()
    assert st_a["records"] == len(batch1) + len(batch2) and st_a["checkpoint_failures"] == 1
    position, counts = latest_counts(local_stack, app)
    assert position == (int(seqs[-1]), 0)
    assert counts == expected_counts(batch1 + batch2 + batch3)
    p = seqs[len(batch1) + len(batch2) - 1]
    assert st_b["restored_from"] == f"{SHARD0}@{p}.0"  # a's snapshot, past the lease's checkpoint
    assert st_b["skipped_redelivered"] == len(batch2)
    assert st_b["records"] == len(batch3)
    calls = blocks(local_stack, abuser)
    assert [c["status"] for c in calls] == ["applied"]
    assert [d["action"] for d in decisions(status_a) if d["key"] == abuser] == ["block"]
    assert [d for d in decisions(status_b) if d["key"] == abuser] == []
    block, idem = blocklist_items(local_stack, abuser)
    assert block is not None and len(idem) == 1
    save_figures(
        tmp_path,
        records_put=len(batch1) + len(batch2) + len(batch3),
        old_owner={k: st_a[k] for k in ("records", "checkpoints", "checkpoint_failures")},
        new_owner={k: st_b[k] for k in ("records", "restored_from", "skipped_redelivered", "checkpoints")},
        final_snapshot_records=sum(counts.values()),
        block_invocations=[c["status"] for c in calls],
    )
