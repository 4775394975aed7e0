"""``cfguard replay`` honours ``topology.evaluate: bucket``: a replay of the raw lines decides exactly as
the two-stage deployment (four re-keying pipelines on randomly partitioned shards -> partial records ->
one detect pipeline, in-process) does on the same generated traffic, and not as the record-resolution
replay does."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from consumer.cli import main
from consumer.config import load_config
from consumer.rekey.factory import replay_pipeline, with_role
from consumer.rekey.stages import DetectPipeline, RekeyPipeline
from consumer.traffic import generate

DETECTORS = [
    {"name": "flood_ip", "type": "rule", "key": "ip", "metric": "requests", "window": "1m",
     "threshold": 40, "mode": "block"},
    {"name": "scan_ip", "type": "rule", "key": "ip", "metric": "not_found", "window": "1m",
     "threshold": 10, "mode": "alert"},
    {"name": "flood_user", "type": "rule", "key": "user", "metric": "requests", "window": "5m",
     "threshold": 150, "mode": "block"},
]  # fmt: skip


class Sink:
    """The partials stream: keeps what the re-keying stage publishes, acknowledges everything."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def put(self, records: Any) -> Any:
        self.records += list(records)
        return type("Stats", (), {"failed": 0})()


def _config(tmp: Path, evaluate: str) -> Path:
    doc = {
        "detectors": DETECTORS,
        "actions": {"dry_run": True},
        "topology": {"raw_input": "random", "evaluate": evaluate, "hold_s": 5},
        "input": {"batch_size": 700},  # replay batches unrelated to the stages' 1 s batches
    }
    path = tmp / f"{evaluate}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [x for b in generate(seed=5, duration_s=600, rate=20, batch_size=4096) for x in b]


def _key(d: dict[str, Any]) -> tuple[Any, ...]:
    return (
        d["event_time"], d["key_type"], d["key"], d["detector"], d["action"], d["window"],
        round(d["score"], 9), json.dumps(d["evidence"], sort_keys=True),
    )  # fmt: skip


def _two_stage(cfg_path: Path, lines: list[bytes], shards: int = 4) -> list[tuple[Any, ...]]:
    """Each line to a random raw shard; each shard's re-keying pipeline gets 1 s of event time per
    batch; the detect pipeline gets every round's partial records in a shuffled order."""
    cfg = load_config(cfg_path, environ={})
    sink = Sink()
    rekeys = [RekeyPipeline.from_config(with_role(cfg, "rekey"), publisher=sink) for _ in range(shards)]
    detect = DetectPipeline.from_config(with_role(cfg, "detect"), dry_run=True)
    t = np.array([float(x[: x.index(b"\t")]) for x in lines])
    second = np.floor(t - t.min()).astype(np.int64)
    shard = np.random.default_rng(11).integers(0, shards, len(lines))
    order = random.Random(2)
    out = []
    for s in np.unique(second).tolist():
        idx = np.flatnonzero(second == s)
        for k in range(shards):
            chunk = [lines[i] for i in idx[shard[idx] == k].tolist()]
            if chunk:
                rekeys[k].process(chunk, f"shard-{k}")
        records = [d for _, d in sink.records]
        sink.records.clear()
        order.shuffle(records)
        out += detect.process(records, "partials")
    out += detect.drain()
    assert detect.stats()["topology"]["partial_records"] > 0
    return sorted(_key(d.to_record()) for d in out)


def _replay(tmp: Path, cfg_path: Path, src: Path, name: str) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    out, summary = tmp / f"{name}.jsonl", tmp / f"{name}.json"
    rc = main(["replay", str(src), "--config", str(cfg_path), "--decisions-out", str(out),
               "--summary-out", str(summary), "-q"])  # fmt: skip
    assert rc == 0
    decisions = sorted(_key(json.loads(x)) for x in out.read_text().splitlines())
    return decisions, json.loads(summary.read_text())


def test_replay_at_bucket_resolution_decides_as_the_two_stage_deployment(
    tmp_path: Path, lines: list[bytes]
) -> None:
    src = tmp_path / "raw.tsv"
    src.write_bytes(b"".join(lines))
    bucket_cfg = _config(tmp_path, "bucket")
    got, summary = _replay(tmp_path, bucket_cfg, src, "bucket")
    expected = _two_stage(bucket_cfg, lines)
    assert len(expected) >= 20
    assert {d[3] for d in expected} == {"flood_ip", "scan_ip", "flood_user"}
    assert got == expected
    assert summary["evaluate"]["resolution"] == "bucket" and summary["evaluate"]["bucket_s"] == 1
    assert summary["parsed"] == len(lines)

    # The flag matters: at record resolution the same replay reports crossings at the request, so the
    # decisions differ (same keys and detectors, earlier or equal event times).
    record, summary = _replay(tmp_path, _config(tmp_path, "record"), src, "record")
    assert summary["evaluate"] == {"resolution": "record"}
    assert record != got
    assert {(d[1], d[2], d[3]) for d in record} == {(d[1], d[2], d[3]) for d in got}


def test_replay_pipeline_per_role(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, "record"), environ={})
    assert type(replay_pipeline(cfg, dry_run=True)).__name__ == "Pipeline"
    for role in ("rekey", "detect"):  # a raw recording gets the detect stage's decisions
        p = replay_pipeline(with_role(cfg, role), dry_run=True)
        assert isinstance(p, DetectPipeline) and p.cfg.topology.role == "detect"
    bucket = load_config(_config(tmp_path, "bucket"), environ={})
    assert isinstance(replay_pipeline(bucket, dry_run=True), DetectPipeline)


def test_tune_replays_at_the_configured_resolution(tmp_path: Path, lines: list[bytes]) -> None:
    """``cfguard tune`` scores what the deployment would decide: with ``evaluate: bucket`` each key's
    first decision is the bucket replay's, not the record-resolution one."""
    from consumer.tuning.run import replay_outcome

    src = tmp_path / "raw.tsv"
    src.write_bytes(b"".join(lines))
    firsts = {}
    for evaluate in ("bucket", "record"):
        cfg_path = _config(tmp_path, evaluate)
        decided, _ = _replay(tmp_path, cfg_path, src, evaluate)
        first: dict[str, dict[tuple[str, str], float]] = {}
        for d in decided:  # sorted by event time
            first.setdefault(d[3], {}).setdefault((d[1], d[2]), d[0])
        outcome = replay_outcome(load_config(cfg_path, environ={}), [str(src)])
        got = {det: {k: _iso(t) for k, t in per.items()} for det, per in outcome.first_acted.items()}
        assert got == first
        firsts[evaluate] = got
    assert firsts["bucket"] != firsts["record"]


def _iso(t: float) -> str:
    from actions.decision import iso8601

    return iso8601(t)
