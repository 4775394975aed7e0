"""A snapshot store that stays unreadable at restore (a wrong bucket name): the shard keeps waiting
(never starts empty), but the wait backs off to a cap, the log says it once per
``snapshots.restore_log_every_s`` and the metrics carry ``restore_pending`` / ``restore_wait_s`` /
``restore_failures`` so an alarm can fire. A fake clock advanced by the injected sleep: no real
waiting."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest

from consumer import snapshots
from consumer.kcl.config import CheckpointConfig, KclConfig, SnapshotConfig
from consumer.kcl.processor import ShardProcessor
from consumer.kcl.status import read_status
from consumer.metrics import MetricsConfig, is_gauge
from tests.kcl.counting_pipeline import CountingPipeline
from tests.kcl.protocol import checkpoint_reply, drive, initialize, line, process, record

SHARD0 = "shardId-000000000000"


class DownStore:
    """A store that fails every listing until ``failures`` tries have failed (S3 NoSuchBucket)."""

    def __init__(self, inner: snapshots.SnapshotStore, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.tries = 0

    def save(self, snap: snapshots.Snapshot) -> str:
        return self.inner.save(snap)

    def positions(self, shard_id: str) -> list[tuple[int, int]]:
        self.tries += 1
        if self.tries <= self.failures:
            raise OSError("NoSuchBucket: The specified bucket does not exist")
        return self.inner.positions(shard_id)

    def load(self, shard_id: str, position: tuple[int, int]) -> snapshots.Snapshot:
        return self.inner.load(shard_id, position)

    def delete(self, shard_id: str, position: tuple[int, int]) -> None:
        self.inner.delete(shard_id, position)


class FakeTime:
    def __init__(self) -> None:
        self.t = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def _processor(tmp_path: Path, failures: int, **snap: float) -> tuple[ShardProcessor, DownStore, FakeTime]:
    local = snapshots.LocalSnapshotStore(tmp_path / "snaps")
    seed = CountingPipeline(threshold=100)
    seed.process([line(1_700_000_000, "10.0.0.1")] * 4)
    local.save(snapshots.Snapshot(SHARD0, (1000, 0), seed.snapshot()))
    cfg = KclConfig(
        checkpoint=CheckpointConfig(every_records=100, every_s=3600),
        snapshots=SnapshotConfig(store="local", path=tmp_path / "snaps", **snap),
        status_dir=tmp_path / "status",
    )
    ft = FakeTime()
    store = DownStore(local, failures)
    proc = ShardProcessor(
        cfg,
        lambda: CountingPipeline(threshold=100),
        store,
        metrics=MetricsConfig(interval_s=60, emf_path=tmp_path / "emf.jsonl"),
        clock=ft.clock,
        sleep=ft.sleep,
        wall_clock=ft.wall,
    )
    return proc, store, ft


def test_backoff_is_capped_the_log_rate_limited_and_the_metrics_say_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = 60
    proc, _, ft = _processor(tmp_path, failures, restore_retry_max_s=30, restore_log_every_s=300)
    caplog.set_level(logging.WARNING, logger="consumer.kcl.processor")
    recs = [record(1001, line(1_700_000_001, "10.0.0.1"))]
    shutdown = [{"action": "shutdownRequested"}, checkpoint_reply("1001")]
    drive(proc, [initialize(seq="1000"), process(recs), *shutdown])

    # exponential backoff, capped
    assert ft.sleeps[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(ft.sleeps[6:]) == {30.0} and len(ft.sleeps) == failures
    waited = sum(ft.sleeps)
    assert waited == 31.5 + 30 * (failures - 6)  # 1651.5 s

    # never started empty: the checkpoint's state, then the batch
    assert proc.restored_from == f"{SHARD0}@1000.0"
    assert proc.pipeline is not None and proc.pipeline.counts["10.0.0.1"] == 5  # type: ignore[attr-defined]
    assert proc.counters["restore_failures"] == failures

    # one error line at the first failure, then at most one per 300 s of waiting
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert 2 <= len(errors) <= 1 + waited // 300 == 6
    assert "NoSuchBucket" in errors[0].getMessage() and "1 failed tries" in errors[0].getMessage()
    assert f"{failures} failed tries" not in errors[-1].getMessage()  # not the last try: rate-limited
    logged_at = [float(r.getMessage().split(" failed tries in ")[1].split(" s")[0]) for r in errors]
    assert all(b - a >= 300 for a, b in itertools.pairwise(logged_at))
    (back,) = [r for r in caplog.records if "readable again" in r.getMessage()]
    assert f"after {failures} failed tries in {waited:.0f} s" in back.getMessage()

    # metrics: pending while waiting (its wait growing), 0 once restored; the failures counted once
    rows = [json.loads(x) for x in (tmp_path / "emf.jsonl").read_text().splitlines()]
    waiting = [r for r in rows if r["restore_pending"] == 1]
    assert len(waiting) >= waited // 60 - 1  # one line per metrics interval while it waits
    assert [r["restore_wait_s"] for r in waiting] == sorted(r["restore_wait_s"] for r in waiting)
    assert waiting[-1]["restore_wait_s"] >= waited - 60
    assert sum(r["restore_failures"] for r in rows) == failures  # deltas add up to the counter
    assert (rows[-1]["restore_pending"], rows[-1]["restore_wait_s"]) == (0, 0)  # the line at shutdown
    assert is_gauge("restore_pending") and is_gauge("restore_wait_s") and not is_gauge("restore_failures")
    status = read_status(tmp_path / "status")[SHARD0]
    assert (status["restore_pending"], status["restore_failures"]) == (0, failures)


def test_the_status_shows_the_wait_while_it_lasts(tmp_path: Path) -> None:
    proc, _, ft = _processor(tmp_path, failures=3)
    seen: list[tuple[int, float]] = []
    inner_sleep = ft.sleep

    def sleep(s: float) -> None:
        st = read_status(tmp_path / "status")[SHARD0]
        seen.append((st["restore_pending"], st["restore_wait_s"]))
        inner_sleep(s)

    proc.sleep = sleep
    drive(proc, [initialize(seq="1000")])
    assert seen == [(1, 0.0), (1, 0.5), (1, 1.5)]
    assert read_status(tmp_path / "status")[SHARD0]["restore_pending"] == 0


def test_restore_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="restore_retry_max_s"):
        SnapshotConfig(restore_retry_max_s=0.1)
    with pytest.raises(ValueError, match="restore_log_every_s"):
        SnapshotConfig(restore_log_every_s=0)
