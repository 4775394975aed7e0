"""A config change reaches the running shard processor: the next batch goes through the new pipeline,
which carries the old one's state; a failure to apply it keeps the old pipeline."""

from __future__ import annotations

from pathlib import Path

from consumer import snapshots
from consumer.kcl.config import KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import drive, initialize, line, process, record

BIG = 49590338271490256608559692538361571095921575989136588898


def recs(start: int, n: int, ip: str = "10.0.0.1") -> list[dict]:
    return [record(BIG + start + i, line(1_700_000_000 + start + i, ip)) for i in range(n)]


def test_new_pipeline_takes_over_with_the_state(tmp_path: Path) -> None:
    cfg = KclConfig(snapshots=SnapshotConfig(store="local", path=tmp_path / "s"))
    built: list[CountingPipeline] = []
    plan = {"switch_after": 1, "calls": 0}

    def reconfigure(old: CountingPipeline) -> CountingPipeline | None:
        plan["calls"] += 1
        if plan["calls"] != plan["switch_after"] + 1:
            return None
        new = CountingPipeline(threshold=3)  # the "lower threshold" of a new config
        new.restore(old.snapshot())
        built.append(new)
        return new

    proc = ShardProcessor(
        cfg,
        lambda: CountingPipeline(threshold=100),
        snapshots.LocalSnapshotStore(tmp_path / "s"),
        reconfigure=reconfigure,
    )
    out = drive(proc, [initialize(), process(recs(0, 2)), process(recs(2, 1))])
    assert [m["action"] for m in out] == ["status"] * 3
    assert proc.pipeline is built[0] and proc.counters["reconfigured"] == 1
    # The 2 requests seen before the switch are in the new pipeline: the 3rd reaches its threshold.
    assert proc.counters["decisions"] == 1


def test_a_failing_reconfigure_keeps_the_old_pipeline(tmp_path: Path) -> None:
    cfg = KclConfig(snapshots=SnapshotConfig(store="local", path=tmp_path / "s"))

    def reconfigure(old: CountingPipeline) -> CountingPipeline | None:
        raise RuntimeError("cannot build")

    proc = ShardProcessor(
        cfg,
        lambda: CountingPipeline(threshold=2),
        snapshots.LocalSnapshotStore(tmp_path / "s"),
        reconfigure=reconfigure,
    )
    out = drive(proc, [initialize(), process(recs(0, 1))])
    first = proc.pipeline
    out += drive(proc, [process(recs(1, 1))])
    assert proc.pipeline is first and proc.counters["reconfigure_failures"] == 2
    assert proc.counters["decisions"] == 1 and proc.counters["records"] == 2
    assert all(m["action"] == "status" for m in out)
