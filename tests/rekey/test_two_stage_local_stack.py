"""The whole scale-out on the local stack with the real KCL daemons: a 4-shard raw stream with random
partition keys, the rekey application writing partials to a 2-shard stream, the detect application
judging them. Its decisions equal those of a single-stage run over the same records on one shard
(the same pipeline, in-process, records in stream order)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from consumer.config import load_config
from consumer.kcl.daemon import Daemon
from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec, boto_client
from consumer.rekey.factory import build_pipeline, effective_kcl, with_role
from consumer.traffic import generate

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RAW, PARTS = "raw-4", "partials-2"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    log = Path(tmp_path_factory.mktemp("stack")) / "local-stack.log"
    with LocalStackProcess(StackSpec(stream_name="unused", shards=1), log_path=log) as info:
        yield info


def _config(tmp: Path, stack: StackInfo) -> Path:
    doc = {
        "detectors": [
            {"name": "flood_ip", "type": "rule", "key": "ip", "metric": "requests", "window": "1m",
             "threshold": 40, "mode": "block"},
            {"name": "scan_ip", "type": "rule", "key": "ip", "metric": "not_found", "window": "1m",
             "threshold": 10, "mode": "alert"},
        ],
        "actions": {"dry_run": True},
        "topology": {"raw_input": "random", "partials_stream": PARTS, "evaluate": "bucket", "hold_s": 15},
        "kcl": {
            "stream_name": RAW, "application_name": "two-stage", "region": stack.spec.region,
            "kinesis_endpoint": stack.endpoint, "dynamodb_endpoint": stack.endpoint, "worker_id": "w",
            "cbor_enabled": False, "idle_time_between_reads_ms": 200, "shard_sync_interval_ms": 3000,
            "checkpoint": {"every_records": 200, "every_s": 2}, "snapshots": {"store": "none"},
            "status_dir": str(tmp / "status"),
        },
    }  # fmt: skip
    path = tmp / "two-stage.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _traffic() -> list[bytes]:
    lines = [x for b in generate(seed=21, duration_s=240, rate=15, batch_size=5000) for x in b]
    # Trailing requests from many addresses, a minute later: every detect shard sees newer partials,
    # so the buckets before them are complete there.
    last = lines[-1].split(b"\t")
    t_end = float(last[0]) + 60
    for i in range(64):
        f = list(last)
        f[0] = f"{t_end + i * 0.01:.3f}".encode()
        f[1] = f"198.18.{i // 250}.{i % 250}".encode()
        lines.append(b"\t".join(f))
    return lines


def _feed_live(stack: StackInfo, lines: list[bytes]) -> None:
    """Like CloudFront: random partition keys, records arriving as they happen (here 4x faster than
    event time, so hold_s 15 covers ~3.7 s of wall-clock skew between the re-keying processors). The
    stages are exact while those stay within hold_s of each other (a backlog read in 10,000-record
    batches is not: see docs/scale-out.md)."""
    k = boto_client("kinesis", stack.endpoint, stack.spec.region)
    rng = np.random.default_rng(1)
    t = np.array([float(x[: x.index(b"\t")]) for x in lines])
    second = np.floor(t - t[0]).astype(np.int64)
    start = time.monotonic()
    for s in np.unique(second).tolist():
        chunk = [lines[i] for i in np.flatnonzero(second == s).tolist()]
        for a in range(0, len(chunk), 500):
            resp = k.put_records(
                StreamName=RAW,
                Records=[{"Data": d, "PartitionKey": rng.bytes(16).hex()} for d in chunk[a : a + 500]],
            )
            assert resp["FailedRecordCount"] == 0
        time.sleep(max(0.0, start + (s + 1) / 4 - time.monotonic()))


def _wait_for_leases(stack: StackInfo, app: str, n: int) -> None:
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            items = ddb.scan(TableName=app)["Items"]
        except ddb.exceptions.ResourceNotFoundException:
            items = []
        if len([i for i in items if i.get("leaseOwner")]) >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"{app}: {n} leases not taken within 90 s")


def _daemon(cfg_path: Path, stack: StackInfo, tmp: Path, role: str) -> Daemon:
    cfg = with_role(load_config(cfg_path, environ={}), role)
    env = stack.env()
    env["PYTHONPATH"] = str(REPO)
    env["CFGUARD__TOPOLOGY__ROLE"] = role
    wd = tmp / f"wd-{role}"
    wd.mkdir(exist_ok=True)
    return Daemon(effective_kcl(cfg), cfg_path, wd, env=env, log_path=tmp / f"daemon-{role}.log", name=role)


def _key(d: dict) -> tuple:
    return (d["event_time"], d["key_type"], d["key"], d["detector"], d["action"], round(d["score"], 9))


def test_two_stages_on_four_random_shards_decide_as_one_shard(stack: StackInfo, tmp_path: Path) -> None:
    k = boto_client("kinesis", stack.endpoint, stack.spec.region)
    k.create_stream(StreamName=RAW, ShardCount=4)
    k.create_stream(StreamName=PARTS, ShardCount=2)
    time.sleep(0.5)
    cfg_path = _config(tmp_path, stack)
    lines = _traffic()
    t_tick = float(lines[-64].split(b"\t")[0])

    single_cfg = with_role(load_config(cfg_path, environ={}), "single")
    single = build_pipeline(single_cfg.model_copy(update={"kcl": single_cfg.kcl.model_copy(
        update={"status_dir": None})}), dry_run=True)  # fmt: skip
    expected = sorted(_key(d.to_record()) for d in single.process(lines, "one-shard"))
    assert len(expected) >= 50 and len({e[2] for e in expected if e[4] == "block"}) >= 5

    assert len(k.list_shards(StreamName=RAW)["Shards"]) == 4
    rekey = _daemon(cfg_path, stack, tmp_path, "rekey")
    detect = _daemon(cfg_path, stack, tmp_path, "detect")
    rekey.start()
    detect.start()
    decisions = tmp_path / "status" / "decisions.jsonl"
    try:
        _wait_for_leases(stack, "two-stage-rekey", 4)
        _wait_for_leases(stack, "two-stage", 2)
        time.sleep(3)
        _feed_live(stack, lines)
        deadline = time.monotonic() + 60
        got: list[tuple] = []
        while time.monotonic() < deadline:
            if decisions.exists():
                recs = [json.loads(x) for x in decisions.read_text().splitlines()]
                got = sorted(_key(r) for r in recs)
                if len(got) >= len(expected):
                    break
            time.sleep(1)
        time.sleep(2)  # nothing more may come
        recs = [json.loads(x) for x in decisions.read_text().splitlines()] if decisions.exists() else []
        got = sorted(_key(r) for r in recs)
        assert got == expected, (
            f"{len(got)} vs {len(expected)} decisions\n"
            + (tmp_path / "daemon-detect.log").read_text(errors="replace")[-3000:]
        )
        part_shards = {s["ShardId"] for s in k.list_shards(StreamName=PARTS)["Shards"]}
        assert {r["shard_id"] for r in recs} <= part_shards  # judged by the detect application
        assert all(_ts(r["event_time"]) < t_tick for r in recs)
    finally:
        rekey.stop()
        detect.stop()


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()
