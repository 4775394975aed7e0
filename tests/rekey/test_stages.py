"""The two stages over Kinesis (moto server): 4 raw "shards" with random partition keys, re-keyed into
a 2-shard partials stream, judged by one detect pipeline per partials shard, decide exactly as one
single-stage pipeline (bucket resolution) over the same records; raw lines and partial records go
through one detect pipeline."""

from __future__ import annotations

import boto3
import numpy as np
import pytest

from consumer.config import Config
from consumer.rekey.factory import build_pipeline
from consumer.rekey.stages import DetectPipeline, RekeyPipeline
from consumer.traffic import generate
from detectors import partial_wire

SEED = 11


@pytest.fixture
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


def _cfg(endpoint: str, role: str, stream: str) -> Config:
    return Config.model_validate(
        {
            "kcl": {"kinesis_endpoint": endpoint, "region": "us-east-1"},
            "topology": {"role": role, "evaluate": "bucket", "partials_stream": stream, "hold_s": 5},
        }
    )


@pytest.fixture(scope="module")
def batches() -> list[list[bytes]]:
    return list(generate(seed=SEED, duration_s=900, rate=40, batch_size=2000))


def _key(d) -> tuple:  # type: ignore[no-untyped-def]
    return (d.event_time, d.key_type, d.key, d.detector, d.action)


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    assert [_key(d) for d in sorted(a, key=_key)] == [_key(d) for d in sorted(b, key=_key)]
    for x, y in zip(sorted(a, key=_key), sorted(b, key=_key), strict=True):
        assert x.score == pytest.approx(y.score, rel=1e-9)
        assert x.idempotency_key == y.idempotency_key


@pytest.fixture(scope="module")
def single(batches) -> list:  # type: ignore[no-untyped-def]
    p = build_pipeline(_cfg("http://unused", "single", "unused"), dry_run=True)
    assert isinstance(p, DetectPipeline)
    out = [d for b in batches for d in p.process(b, "raw")]
    return out + p.drain()


def test_single_stage_flags_the_generated_abusers(single) -> None:  # type: ignore[no-untyped-def]
    assert len({(d.key_type, d.key) for d in single}) >= 3
    assert "block" in {d.action for d in single}


def test_two_stages_over_kinesis_decide_as_one_single_stage_run(
    endpoint, batches, single, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    kin = boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    kin.create_stream(StreamName="partials-a", ShardCount=2)
    rekey_cfg = _cfg(endpoint, "rekey", "partials-a")
    rekeyers = [RekeyPipeline.from_config(rekey_cfg) for _ in range(4)]
    detect_cfg = _cfg(endpoint, "detect", "partials-a")
    shards = [s["ShardId"] for s in kin.list_shards(StreamName="partials-a")["Shards"]]
    detectors = {s: build_pipeline(detect_cfg, dry_run=True) for s in shards}
    iters = {
        s: kin.get_shard_iterator(StreamName="partials-a", ShardId=s, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        for s in shards
    }
    rng = np.random.default_rng(5)
    got = []
    raw_bytes = 0
    for b in batches:
        to = rng.integers(0, 4, len(b))  # CloudFront's random partition key
        raw_bytes += sum(map(len, b))
        for i, rk in enumerate(rekeyers):
            rk.process([line for line, s in zip(b, to, strict=True) if s == i], f"raw-{i}")
        for s in shards:
            resp = kin.get_records(ShardIterator=iters[s], Limit=10_000)
            iters[s] = resp["NextShardIterator"]
            data = [r["Data"] for r in resp["Records"]]
            assert all(partial_wire.is_partial(d) for d in data)
            got += detectors[s].process(data, s)
    for p in detectors.values():
        got += p.drain()
        assert p.stats()["topology"]["bad_partials"] == 0
        assert p.stats()["engine"]["partial_late_rows"] == 0
        assert p.stats()["engine"]["partial_sources"] == 4  # progress reached every partials shard
    _same(single, got)
    keys = rekeyers[0].view.progress_keys()
    assert len(keys) == 2  # one partition key per partials shard, each hashing into its shard
    ranges = [s["HashKeyRange"] for s in kin.list_shards(StreamName="partials-a")["Shards"]]
    for k, r in zip(keys, ranges, strict=True):
        assert int(r["StartingHashKey"]) <= partial_wire.kinesis_hash(k) <= int(r["EndingHashKey"])
    sent = sum(r.traffic["partial_bytes"] for r in rekeyers)
    assert sum(r.traffic["raw_bytes"] for r in rekeyers) == raw_bytes
    assert sent < raw_bytes / 3  # the partials shrink the traffic


def test_one_detect_pipeline_takes_raw_lines_and_partials_alike(batches, single) -> None:  # type: ignore[no-untyped-def]
    """Half of the shards' records arrive raw (a keyed single-shard input), half as partials."""
    cfg = _cfg("http://unused", "detect", "unused")

    class Collect:
        def __init__(self) -> None:
            self.records: list[bytes] = []

        def put(self, records):  # type: ignore[no-untyped-def]
            self.records += [d for _, d in records]
            return type("S", (), {"failed": 0})()

    sink = Collect()
    rk = RekeyPipeline.from_config(cfg.model_copy(update={}), publisher=sink)
    det = build_pipeline(cfg, dry_run=True)
    rng = np.random.default_rng(9)
    got = []
    for b in batches:
        half = rng.random(len(b)) < 0.5
        sink.records.clear()
        rk.process([x for x, h in zip(b, half, strict=True) if h], "rekey")
        mixed = [x for x, h in zip(b, half, strict=True) if not h] + sink.records
        got += det.process(mixed, "mixed")
    got += det.drain()
    _same(single, got)
