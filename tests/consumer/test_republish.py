"""Republishing into a stream: partition keys kept, limits respected, failed records retried."""

from __future__ import annotations

import json

import boto3
import pytest

from consumer.republish import Republisher


@pytest.fixture(scope="module")
def kinesis(moto_endpoint: str) -> object:
    return boto3.client(
        "kinesis",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _read_all(kinesis, stream: str) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        recs = kinesis.get_records(ShardIterator=it, Limit=10_000)["Records"]
        out += [(r["PartitionKey"], r["Data"]) for r in recs]
    return out


def test_records_arrive_with_their_partition_keys_in_per_key_order(kinesis) -> None:  # type: ignore[no-untyped-def]
    kinesis.create_stream(StreamName="pub-a", ShardCount=2)
    records = [(f"k{i % 9}", f"line {i}\n".encode()) for i in range(1234)]
    stats = Republisher(kinesis, "pub-a", sleep=lambda s: None).put(records)
    assert (stats.sent, stats.failed) == (1234, 0)
    assert stats.calls == 3  # 500 + 500 + 234
    got = _read_all(kinesis, "pub-a")
    assert sorted(got) == sorted(records)
    for k in range(9):
        assert [d for key, d in got if key == f"k{k}"] == [d for key, d in records if key == f"k{k}"]


def test_partial_failures_are_retried_until_delivered(kinesis) -> None:  # type: ignore[no-untyped-def]
    kinesis.create_stream(StreamName="pub-b", ShardCount=1)
    rounds = {"n": 0}

    def fail_some(parsed, **_kwargs) -> None:  # type: ignore[no-untyped-def]
        # Emulate Kinesis reporting the first two records of the first two calls as throttled.
        rounds["n"] += 1
        if rounds["n"] <= 2:
            parsed["FailedRecordCount"] = 2
            for res in parsed["Records"][:2]:
                res.clear()
                res.update(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow down"}
                )

    kinesis.meta.events.register("after-call.kinesis.PutRecords", fail_some)
    try:
        records = [("k", json.dumps({"i": i}).encode()) for i in range(10)]
        stats = Republisher(kinesis, "pub-b", sleep=lambda s: None).put(records)
    finally:
        kinesis.meta.events.unregister("after-call.kinesis.PutRecords", fail_some)
    assert (stats.sent, stats.retried, stats.failed) == (10, 4, 0)
    # Kinesis did store the "failed" ones too (the hook only rewrote the answer): 4 extra copies.
    assert len(_read_all(kinesis, "pub-b")) == 14


def test_pacing_respects_the_shard_write_limit(kinesis) -> None:  # type: ignore[no-untyped-def]
    kinesis.create_stream(StreamName="pub-c", ShardCount=1)
    clock = {"t": 0.0}
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock["t"] += s

    pub = Republisher(kinesis, "pub-c", clock=lambda: clock["t"], sleep=sleep)
    stats = pub.put([("k", b"x") for _ in range(2500)])
    assert stats.sent == 2500
    # 1 shard = 1,000 records/s: 2,500 records need two one-second waits.
    assert sum(sleeps) == pytest.approx(2.0)
