"""``cfguard record`` against a moto server: every shard, resharding, throttling, expired iterators."""

from __future__ import annotations

import base64
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from consumer.cli import main
from consumer.recording import RecordingWriter, StreamRecorder
from consumer.sources import open_input


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture
def kinesis(endpoint: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for k, v in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(k, v)
    return boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")


def _stream(kinesis, name: str, shards: int) -> None:  # type: ignore[no-untyped-def]
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)


def _put(kinesis, name: str, n: int, tag: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    sent = [f"{tag}-{i}\tline\n".encode() for i in range(n)]
    for i, data in enumerate(sent):
        kinesis.put_record(StreamName=name, Data=data, PartitionKey=f"user-{i % 5}")
    return sent


def test_record_cli_captures_every_shard_with_metadata(kinesis, endpoint: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _stream(kinesis, "rec-a", 3)
    sent = _put(kinesis, "rec-a", 60, "a")
    out = tmp_path / "a.jsonl.gz"
    rc = main(["record", "--stream", "rec-a", "--out", str(out), "--endpoint-url", endpoint, "-q"])
    assert rc == 0
    src = open_input(out)
    assert src.kind == "recorded"
    recs = list(src.records())
    assert sorted(r.data for r in recs) == sorted(sent)
    assert {r.shard_id for r in recs} <= {f"shardId-00000000000{i}" for i in range(3)}
    assert len({r.shard_id for r in recs}) > 1
    assert all(r.partition_key and r.partition_key.startswith("user-") for r in recs)
    assert all(r.sequence_number and r.arrival_time for r in recs)
    # Per partition key, order is kept (one key lives on one shard).
    for k in range(5):
        got = [r.data for r in recs if r.partition_key == f"user-{k}"]
        assert got == [d for i, d in enumerate(sent) if i % 5 == k]


def test_record_with_a_count_stops_there(kinesis, endpoint: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _stream(kinesis, "rec-b", 1)
    _put(kinesis, "rec-b", 30, "b")
    out = tmp_path / "b.jsonl"
    assert (
        main(
            [
                "record",
                "--stream",
                "rec-b",
                "--out",
                str(out),
                "--count",
                "12",
                "--endpoint-url",
                endpoint,
                "-q",
            ]
        )
        == 0
    )
    assert len(out.read_text().splitlines()) == 12


def _put_on_shard(stream: str, shard_id: str, tag: str, n: int) -> list[bytes]:
    """Write straight onto one shard of the in-process moto backend.

    moto 5 keeps routing puts to a closed parent after a split (it matches hash ranges over every
    shard, closed ones first), so the child shards of a real resharding are filled here instead.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.kinesis.models import kinesis_backends

    shard = kinesis_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].streams[stream].shards[shard_id]
    sent = [f"{tag}-{i}\tline\n".encode() for i in range(n)]
    for data in sent:
        shard.put_record("pk", base64.b64encode(data).decode(), None)  # type: ignore[arg-type]
    return sent


def test_children_are_read_after_their_parents(kinesis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _stream(kinesis, "rec-c", 1)
    kinesis.split_shard(
        StreamName="rec-c", ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127)
    )
    parent = _put_on_shard("rec-c", "shardId-000000000000", "parent", 10)
    left = _put_on_shard("rec-c", "shardId-000000000001", "left", 6)
    right = _put_on_shard("rec-c", "shardId-000000000002", "right", 4)
    writer = RecordingWriter(tmp_path / "c.jsonl")
    recorder = StreamRecorder(kinesis, "rec-c", writer, sleep=lambda s: None)
    stats = recorder.run(until_idle=True)
    writer.close()
    recs = list(open_input(tmp_path / "c.jsonl").records())
    assert [r.data for r in recs if r.shard_id == "shardId-000000000000"] == parent
    assert [r.data for r in recs if r.shard_id == "shardId-000000000001"] == left
    assert [r.data for r in recs if r.shard_id == "shardId-000000000002"] == right
    assert stats.shards_finished[0] == "shardId-000000000000"
    # Nothing from a child shard is written before its parent is finished.
    assert [r.shard_id for r in recs[:10]] == ["shardId-000000000000"] * 10


def test_throttling_and_expired_iterators_lose_nothing(kinesis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _stream(kinesis, "rec-d", 1)
    sent = _put(kinesis, "rec-d", 25, "d")
    faults = iter(["ProvisionedThroughputExceededException", None, "ExpiredIteratorException", None])
    calls = {"n": 0}

    def inject(**_kwargs) -> None:  # type: ignore[no-untyped-def]
        calls["n"] += 1
        code = next(faults, None)
        if code:
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "GetRecords")

    kinesis.meta.events.register("before-call.kinesis.GetRecords", inject)
    writer = RecordingWriter(tmp_path / "d.jsonl")
    clock = {"t": 0.0}

    def fake_sleep(s: float) -> None:
        clock["t"] += max(s, 0.01)

    recorder = StreamRecorder(kinesis, "rec-d", writer, clock=lambda: clock["t"], sleep=fake_sleep)
    # Small reads so the expired iterator hits mid-stream.
    original = recorder._poll
    recorder._poll = lambda shard, limit: original(shard, min(limit, 7))  # type: ignore[method-assign]
    stats = recorder.run(until_idle=True)
    writer.close()
    kinesis.meta.events.unregister("before-call.kinesis.GetRecords", inject)
    data = [r.data for r in open_input(tmp_path / "d.jsonl").records()]
    assert data == sent  # in order, no gap, no duplicate
    assert (stats.throttled, stats.expired_iterators) == (1, 1)


def test_record_of_a_missing_stream_is_a_usage_error(endpoint: str, tmp_path: Path, kinesis, capsys) -> None:  # type: ignore[no-untyped-def]
    rc = main(["record", "--stream", "nope", "--out", str(tmp_path / "x.jsonl"), "--endpoint-url", endpoint])
    assert rc == 2
    assert "stream not found: nope" in capsys.readouterr().err


def test_recording_republished_with_replay_to_stream_round_trips(
    kinesis, endpoint: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _stream(kinesis, "rt-src", 2)
    sent = _put(kinesis, "rt-src", 40, "rt")
    first = tmp_path / "first.jsonl.gz"
    assert main(["record", "--stream", "rt-src", "--out", str(first), "--endpoint-url", endpoint, "-q"]) == 0
    _stream(kinesis, "rt-dst", 3)
    rc = main(
        ["replay", str(first), "--to-stream", "rt-dst", "--endpoint-url", endpoint, "--speed", "1000", "-q"]
    )
    assert rc == 0
    second = tmp_path / "second.jsonl"
    assert main(["record", "--stream", "rt-dst", "--out", str(second), "--endpoint-url", endpoint, "-q"]) == 0
    a = sorted((r.partition_key, r.data) for r in open_input(first).records())
    b = sorted((r.partition_key, r.data) for r in open_input(second).records())
    assert a == b and len(a) == len(sent)
