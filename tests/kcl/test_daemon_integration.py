"""The real KCL MultiLangDaemon (Java) against the local stack, with the record processor as its child.

One test per scenario; each uses its own application name (lease table) so they are independent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from consumer import snapshots
from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo, boto_client
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.harness import (
    REPO,
    daemon,
    invocations,
    leases,
    put_lines,
    real_pipeline_sections,
    tail,
    wait_for,
    write_config,
)
from tests.kcl.protocol import line, line45

pytestmark = pytest.mark.integration
SHARD0 = "shardId-000000000000"
SIGTERM_EXIT = 143  # the JVM's status after its shutdown hooks ran on SIGTERM (graceful)


class RunCommand:
    """``cfguard run --config FILE`` as a child process (what a container runs)."""

    def __init__(self, config: Path, stack: StackInfo, tmp: Path, threshold: int) -> None:
        self.config, self.tmp = config, tmp
        self.env = stack.env()
        self.env["PYTHONPATH"] = str(REPO)
        self.env["CFGUARD_TEST_THRESHOLD"] = str(threshold)
        self.log_path = tmp / "run-a.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "consumer.cli", "run", "--config", str(self.config),
                 "--workdir", str(self.tmp / "wd-run-a")],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
            )  # fmt: skip

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def _decisions(status: Path) -> list[dict]:
    p = status / "decisions.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_block_checkpoint_sigterm_restart(local_stack: StackInfo, tmp_path: Path) -> None:
    """Real pipeline: an abuser is blocked through the Lambda action, checkpoints land in the lease
    table, SIGTERM checkpoints, and after a restart the restored state still knows the abuser (no
    second block) and completes a slow one's window (blocked only because its first half is known)."""
    stream, app = local_stack.spec.stream_name, "it-restart"
    status = tmp_path / "status"
    cfg = write_config(
        tmp_path, local_stack, app, stream, sections=real_pipeline_sections(local_stack, tmp_path, 50)
    )
    t0 = 1_700_000_000.0
    # 60 requests from the abuser (threshold 50 per minute), 30 from a slow one, 110 from others.
    first = [line45(t0 + i * 0.1, "10.6.6.6") for i in range(60)]
    first += [line45(t0 + 6 + i * 0.1, "10.3.3.3") for i in range(30)]
    first += [line45(t0 + 9 + i * 0.1, f"10.1.{i // 100}.{i % 100}") for i in range(110)]
    seqs = put_lines(local_stack, stream, first)

    def blocks_for(ip: str) -> list[dict]:
        return [x for x in invocations(local_stack) if x["key"] == ip and x["op"] == "block"]

    d = daemon(cfg, local_stack, tmp_path, "first")
    d.start()
    try:
        wait_for(lambda: blocks_for("10.6.6.6"), 120, "the abuser's block Invoke\n" + tail(d.log_path))
        wait_for(
            lambda: leases(local_stack, app).get(SHARD0, {}).get("checkpoint") == seqs[-1],
            30,
            "the checkpoint of the last record in the lease table",
        )
        more = [line45(t0 + 21 + i * 0.1, "10.6.6.6") for i in range(5)]
        seqs += put_lines(local_stack, stream, more)
        wait_for(lambda: read_status(status)[SHARD0]["records"] == 205, 30, "the 5 new records")
        # 5 records are below every_records (50): the time rule (every_s 2) checkpoints them, on
        # the empty batches the daemon keeps sending while the shard is idle.
        wait_for(
            lambda: leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1],
            15,
            "the time-based checkpoint of the 5 records",
        )
        more = [line45(t0 + 22 + i * 0.1, "10.9.9.9") for i in range(3)]
        seqs += put_lines(local_stack, stream, more)
        wait_for(lambda: read_status(status)[SHARD0]["records"] == 208, 30, "3 more records")
    finally:
        code = d.stop()  # SIGTERM -> shutdownRequested -> flush, snapshot, checkpoint
    assert code == SIGTERM_EXIT, tail(d.log_path)
    daemon_log = d.log_path.read_text()
    assert "Writing ShutdownRequestedMessage" in daemon_log
    assert f"checkpoint (shutdown requested) at {seqs[-1]}" in daemon_log  # the processor's own line
    assert leases(local_stack, app)[SHARD0]["checkpoint"] == seqs[-1]
    assert [(x["key"], x["action"]) for x in _decisions(status) if x["action"] == "block"] == [
        ("10.6.6.6", "block")
    ]

    # While stopped: 25 more from the slow one (55 within the minute: only a restored window
    # reaches 50) and 60 more from the abuser: enough for a block on their own, so only the restored
    # state (detector window, guard cooldown) keeps a second block from being sent.
    later = [line45(t0 + 30 + i * 0.1, "10.3.3.3") for i in range(25)]
    later += [line45(t0 + 33 + i * 0.1, "10.6.6.6") for i in range(60)]
    seqs += put_lines(local_stack, stream, later)
    d2 = daemon(cfg, local_stack, tmp_path, "second")
    d2.start()
    try:
        wait_for(lambda: blocks_for("10.3.3.3"), 90, "the slow one's block\n" + tail(d2.log_path))
        st = wait_for(
            lambda: (s := read_status(status)[SHARD0]).get("records") == 85 and s,
            30,
            "the 85 new records in the restarted processor",
        )
        assert st["restored_from"] == f"{SHARD0}@{int(seqs[207])}.0"  # the shutdown snapshot
        assert st["skipped_redelivered"] == 0
    finally:
        assert d2.stop() == SIGTERM_EXIT, tail(d2.log_path)
    assert len(blocks_for("10.6.6.6")) == 1  # no block sent twice
    assert len(blocks_for("10.3.3.3")) == 1
    after = [(x["key"], x["action"], x["reason"]) for x in _decisions(status)][1:]
    assert ("10.3.3.3", "block", "threshold") in after
    assert ("10.6.6.6", "refused", "cooldown") in after  # the restored guard remembers the block
    assert all(a != "block" for k, a, _ in after if k == "10.6.6.6")
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

    # Worker a runs through `cfguard run` (its SIGTERM is forwarded to the daemon), b directly.
    a = RunCommand(cfg_a, local_stack, tmp_path, threshold=10**9)
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


def test_efo_option_registers_the_named_consumer(local_stack: StackInfo, tmp_path: Path) -> None:
    """retrieval_mode FANOUT + efo_consumer_name reach the daemon: it registers that stream consumer."""
    stream, app = "it-efo", "it-efo"
    kinesis = boto_client("kinesis", local_stack.endpoint, local_stack.spec.region)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2})
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    cfg = write_config(
        tmp_path, local_stack, app, stream, retrieval_mode="FANOUT", efo_consumer_name="cfguard-efo-test"
    )
    d = daemon(cfg, local_stack, tmp_path, "efo")
    d.start()
    try:
        names = wait_for(
            lambda: [
                c["ConsumerName"] for c in kinesis.list_stream_consumers(StreamARN=arn).get("Consumers", [])
            ],
            120,
            "a registered stream consumer\n" + tail(d.log_path),
        )
    finally:
        d.kill()
    assert names == ["cfguard-efo-test"]  # not the application name, the KCL's default
