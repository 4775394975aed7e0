"""Metrics: EMF lines CloudWatch can read, counter deltas, Prometheus text, and the processor's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer import snapshots
from consumer.config import Config
from consumer.kcl.app import build_processor
from consumer.kcl.config import KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from consumer.metrics import MetricsConfig, MetricsEmitter, flatten, is_gauge, prometheus_text
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import checkpoint_reply, drive, initialize, line, process, record

BIG = 49590338271490256608559692538361571095921575989136588898


def test_flatten_and_kinds() -> None:
    stats = {
        "records": 5,
        "pipeline": {"engine": {"tracked_keys.ip": 3, "watermark": 1.5}, "ok": True},
        "restored_from": "x",
        "nan": float("nan"),
    }
    assert flatten(stats) == {
        "records": 5.0,
        "pipeline.engine.tracked_keys.ip": 3.0,
        "pipeline.engine.watermark": 1.5,
        "pipeline.ok": 1.0,
    }
    assert is_gauge("pipeline.engine.tracked_keys.ip") and is_gauge("millis_behind_latest")
    assert not is_gauge("records") and not is_gauge("pipeline.decisions.flood")


def test_emf_lines_carry_deltas_for_counters_and_levels_for_gauges(tmp_path: Path) -> None:
    clock = {"t": 1000.0}
    cfg = MetricsConfig(
        namespace="cfguard-test",
        interval_s=60,
        emf_path=tmp_path / "emf.jsonl",
        prometheus_dir=tmp_path / "prom",
    )
    m = MetricsEmitter(cfg, "shardId-1", clock=lambda: clock["t"])
    assert m.observe({"records": 100, "millis_behind_latest": 2500})
    clock["t"] += 10
    assert not m.observe({"records": 150, "millis_behind_latest": 100})  # within the interval
    clock["t"] += 60
    assert m.observe({"records": 180, "millis_behind_latest": 0})
    first, second = (json.loads(x) for x in (tmp_path / "emf.jsonl").read_text().splitlines())
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "cfguard-test" and directive["Dimensions"] == [["Role", "Shard"]]
    assert {x["Name"] for x in directive["Metrics"]} == {"records", "millis_behind_latest"}
    assert first["_aws"]["Timestamp"] == 1_000_000 and first["Shard"] == "shardId-1"
    assert first["Role"] == "single"  # the default role: a single-stage processor
    assert (first["records"], second["records"]) == (100, 80)  # deltas
    assert second["millis_behind_latest"] == 0  # a level
    prom = (tmp_path / "prom" / "single-shardId-1.prom").read_text()
    assert 'cfguard_records_total{role="single",shard="shardId-1"} 180' in prom
    assert "# TYPE cfguard_millis_behind_latest gauge" in prom


def test_the_processor_emits_its_figures_and_a_last_line_at_shutdown(tmp_path: Path) -> None:
    cfg = KclConfig(snapshots=SnapshotConfig(store="local", path=tmp_path / "s"))
    emf = tmp_path / "emf.jsonl"
    proc = ShardProcessor(
        cfg,
        lambda: CountingPipeline(threshold=2),
        snapshots.LocalSnapshotStore(tmp_path / "s"),
        metrics=MetricsConfig(interval_s=3600, emf_path=emf),
    )
    recs = [record(BIG + i, line(1_700_000_000 + i, "10.0.0.1")) for i in range(3)]
    drive(
        proc, [initialize(), process(recs), {"action": "shutdownRequested"}, checkpoint_reply(str(BIG + 2))]
    )
    rows = [json.loads(x) for x in emf.read_text().splitlines()]
    assert len(rows) == 2  # at start, then the one forced at shutdown (the batch fell in between)
    assert rows[0]["records"] == 0
    assert (rows[1]["records"], rows[1]["decisions"]) == (3, 1)  # the interval's deltas
    assert rows[1]["Shard"] == "shardId-000000000000"
    assert {r["Role"] for r in rows} == {"single"}


def test_both_stages_on_one_shard_id_stay_apart(tmp_path: Path) -> None:
    """The rekey stage reads raw shardId-0 and the detect stage partials shardId-0: same shard id,
    same metric names; the Role dimension/label (and the .prom file name) keep them apart."""
    cfg = MetricsConfig(emf_path=tmp_path / "emf.jsonl", prometheus_dir=tmp_path / "prom")
    shard = "shardId-000000000000"
    MetricsEmitter(cfg, shard, role="rekey", clock=lambda: 5.0).observe({"pipeline": {"records": 1000}})
    MetricsEmitter(cfg, shard, role="detect", clock=lambda: 5.0).observe({"pipeline": {"records": 40}})
    rows = [json.loads(x) for x in (tmp_path / "emf.jsonl").read_text().splitlines()]
    assert [(r["Role"], r["Shard"], r["pipeline.records"]) for r in rows] == [
        ("rekey", shard, 1000),
        ("detect", shard, 40),
    ]
    for r in rows:
        (directive,) = r["_aws"]["CloudWatchMetrics"]
        assert directive["Dimensions"] == [["Role", "Shard"]]
        assert all(dim in r for dim in directive["Dimensions"][0])  # EMF: every dimension has a value
    assert sorted(p.name for p in (tmp_path / "prom").iterdir()) == [
        f"detect-{shard}.prom",
        f"rekey-{shard}.prom",
    ]
    rekey = (tmp_path / "prom" / f"rekey-{shard}.prom").read_text()
    assert f'cfguard_pipeline_records_total{{role="rekey",shard="{shard}"}} 1000' in rekey
    detect = (tmp_path / "prom" / f"detect-{shard}.prom").read_text()
    assert f'cfguard_pipeline_records_total{{role="detect",shard="{shard}"}} 40' in detect


def test_prometheus_labels_are_escaped() -> None:
    text = prometheus_text('a"b', {"records": 1}, role="x\\y")
    assert 'cfguard_records_total{role="x\\\\y",shard="a\\"b"} 1' in text


@pytest.mark.parametrize("role", ["single", "rekey", "detect"])
def test_the_processor_built_for_a_role_emits_that_role(
    tmp_path: Path, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``consumer.kcl.app.build_processor`` (what the daemon's child runs) passes topology.role on."""
    from consumer.rekey import stages
    from consumer.rekey.streams import StaticView

    monkeypatch.setattr(stages, "kinesis_publisher", lambda cfg: object())  # nothing is published here
    monkeypatch.setattr(stages, "kinesis_view", lambda cfg: StaticView())
    data = {
        "kcl": {"snapshots": {"store": "none"}},
        "metrics": {"emf_path": str(tmp_path / "emf.jsonl")},
        "topology": {"role": role},
    }
    cfg = Config.model_validate(data)
    proc = build_processor(cfg, None)
    assert proc.role == role
    drive(proc, [initialize(shard="shardId-7")])
    rows = [json.loads(x) for x in (tmp_path / "emf.jsonl").read_text().splitlines()]
    assert rows and {(r["Role"], r["Shard"]) for r in rows} == {(role, "shardId-7")}
