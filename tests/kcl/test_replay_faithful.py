"""Replay is faithful: the recording of a live run, replayed, makes the live run's decisions; and
republished into a fresh stream (``replay --to-stream``) and consumed again, the same decisions.

Live: generated traffic put into a stream on the local stack, consumed by the real KCL daemon with
the real pipeline (default detectors, dry-run actions). Then ``cfguard record`` captures the stream
and ``cfguard replay`` runs the recording with the same config file. Both sides must decide the same
blocks, alerts and refusals for the same keys at the same event times with the same idempotency keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.kcl.status import read_status
from consumer.local_stack import StackInfo, boto_client
from consumer.traffic.generator import generate
from tests.kcl.harness import daemon, put_lines, tail, wait_for, write_config

SHARD0 = "shardId-000000000000"
FIELDS = ("key_type", "key", "detector", "action", "reason", "event_time", "idempotency_key", "score")


def _decisions(path: Path) -> list[tuple]:
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return sorted(tuple(r[f] for f in FIELDS) for r in rows)


@pytest.mark.integration
def test_replay_of_a_recorded_live_run_decides_the_same(local_stack: StackInfo, tmp_path: Path) -> None:
    stream, app = "faithful", "it-faithful"
    kinesis = boto_client("kinesis", local_stack.endpoint, local_stack.spec.region)
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream)
    lines = [
        line
        for batch in generate(
            seed=3,
            duration_s=240,
            rate=20,
            scenarios="scanner,credential_stuffing:mode=one_ip,bandwidth_hog",
            negatives="nat_office,monitor",
        )
        for line in batch
    ]
    put_lines(local_stack, stream, lines)
    sections = {
        "actions": {"dry_run": True, "spool": {"path": str(tmp_path / "spool.jsonl")}},
        "quarantine": {"path": str(tmp_path / "quarantine.jsonl")},
    }
    cfg = write_config(tmp_path, local_stack, app, stream, sections=sections)
    d = daemon(cfg, local_stack, tmp_path, "faithful")
    d.start()
    try:
        wait_for(
            lambda: read_status(tmp_path / "status").get(SHARD0, {}).get("records") == len(lines),
            150,
            f"all {len(lines)} records processed\n" + tail(d.log_path),
        )
    finally:
        d.stop()
    live = _decisions(tmp_path / "status" / "decisions.jsonl")
    assert len(live) >= 3, live  # the traffic has abuse the default detectors act on

    recording = tmp_path / "recording.jsonl.gz"
    endpoint = ["--endpoint-url", local_stack.endpoint, "--region", local_stack.spec.region]
    assert main(["record", "--stream", stream, "--out", str(recording), "-q", *endpoint]) == 0
    replayed = tmp_path / "replayed.jsonl"
    assert main(["replay", str(recording), "--config", str(cfg), "--decisions-out", str(replayed), "-q"]) == 0
    assert _decisions(replayed) == live

    # Round trip: the recording republished into a fresh stream and consumed live again.
    kinesis.create_stream(StreamName="faithful-again", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName="faithful-again")
    assert main(["replay", str(recording), "--to-stream", "faithful-again", "-q", *endpoint]) == 0
    again = tmp_path / "again"
    again.mkdir()
    cfg2 = write_config(again, local_stack, "it-faithful-again", "faithful-again", sections=sections)
    d2 = daemon(cfg2, local_stack, again, "faithful-again")
    d2.start()
    try:
        wait_for(
            lambda: read_status(again / "status").get(SHARD0, {}).get("records") == len(lines),
            150,
            "all records of the republished stream processed\n" + tail(d2.log_path),
        )
    finally:
        d2.stop()
    assert _decisions(again / "status" / "decisions.jsonl") == live
