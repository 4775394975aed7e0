"""``cfguard health`` and the heartbeat files the shard processors write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.health import Heartbeat, check, daemon_started_at, read_beats


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_beat_writes_at_most_every_interval_and_counts_progress(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    hb = Heartbeat(tmp_path, "shardId-000000000001", interval_s=5, clock=clock)
    hb.beat(records=10)
    first = json.loads(hb.path.read_text())
    assert first == {
        "shard_id": "shardId-000000000001",
        "updated_at": 1000.0,
        "records": 10,
        "beats": 1,
        "pid": os.getpid(),
    }
    clock.t = 1004.9
    hb.beat(records=5)  # within the interval: counted, not written
    assert json.loads(hb.path.read_text())["records"] == 10
    clock.t = 1005.0
    hb.beat(records=0)
    doc = json.loads(hb.path.read_text())
    assert (doc["updated_at"], doc["records"], doc["beats"]) == (1005.0, 15, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["heartbeat-shardId-000000000001.json"]  # no temp left
    hb.close()
    assert not hb.path.exists()


def test_shard_id_cannot_escape_the_directory(tmp_path: Path) -> None:
    hb = Heartbeat(tmp_path / "hb", "../../etc/x", clock=Clock(1.0))
    hb.beat()
    assert hb.path.parent == tmp_path / "hb"
    assert read_beats(tmp_path / "hb")["../../etc/x"]["updated_at"] == 1.0


def _beat(d: Path, shard: str, at: float) -> None:
    Heartbeat(d, shard, clock=Clock(at)).beat(records=1)


def test_healthy_when_every_shard_beat_recently(tmp_path: Path) -> None:
    _beat(tmp_path, "s1", 990.0)
    _beat(tmp_path, "s2", 960.0)
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=500.0, now=1000.0)
    assert r.healthy, r.reason
    assert r.shards == {"s1": 10.0, "s2": 40.0}
    assert r.reason == "2 shards, newest beat 10s ago, oldest 40s ago"


def test_one_stale_shard_is_unhealthy_and_named(tmp_path: Path) -> None:
    _beat(tmp_path, "s1", 990.0)
    _beat(tmp_path, "s2", 900.0)
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=500.0, now=1000.0)
    assert not r.healthy
    assert r.reason == "1 of 2 shards stale: s2 last beat 100s ago (max 60s)"


def test_status_files_count_as_beats(tmp_path: Path) -> None:
    (tmp_path / "shard-s9.json").write_text(json.dumps({"shard_id": "s9", "updated_at": 995.0, "records": 3}))
    (tmp_path / "shard-broken.json").write_text("{not json")
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=500.0, now=1000.0)
    assert r.healthy and r.shards == {"s9": 5.0}


def test_closed_status_files_are_not_watched(tmp_path: Path) -> None:
    """The KCL processor's StatusWriter, as the processor writes it on close (lease lost, shard ended)."""
    from consumer.kcl.status import StatusWriter

    StatusWriter(tmp_path, "gone", clock=Clock(700.0)).update({"closed": True}, force=True)
    StatusWriter(tmp_path, "live", clock=Clock(990.0)).update({"closed": False}, force=True)
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=500.0, now=1000.0)
    assert r.healthy and r.shards == {"live": 10.0}


def test_no_shards_healthy_within_start_grace_then_unhealthy(tmp_path: Path) -> None:
    starting = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=950.0, now=1000.0)
    assert starting.healthy and starting.reason.startswith("starting: no shard processor yet (50s")
    late = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=850.0, now=1000.0)
    assert not late.healthy and "no shard processor has written a heartbeat" in late.reason


def test_beats_from_before_the_daemon_started_are_ignored(tmp_path: Path) -> None:
    _beat(tmp_path, "old", 400.0)  # a previous run's leftovers
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=950.0, now=1000.0)
    assert r.healthy and r.shards == {}
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=800.0, now=1000.0)
    assert not r.healthy


def test_no_daemon_is_unhealthy_even_with_fresh_beats(tmp_path: Path) -> None:
    _beat(tmp_path, "s1", 999.0)
    r = check(tmp_path, max_age_s=60, start_grace_s=100, daemon_started=None, now=1000.0)
    assert not r.healthy and r.reason == "the KCL MultiLangDaemon is not running"


@pytest.fixture()
def fake_daemon() -> Iterator[str]:
    """A live process whose command line carries a marker unique to this test (not a real daemon)."""
    marker = f"cfguard-test-daemon-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    while marker.encode() not in cmdline.read_bytes():  # between fork and exec it shows our cmdline
        assert time.monotonic() < deadline, "the fake daemon did not start"
        time.sleep(0.01)
    try:
        yield marker
    finally:
        proc.kill()
        proc.wait()


def test_daemon_start_time_from_proc(fake_daemon: str) -> None:
    started = daemon_started_at(fake_daemon)
    assert started is not None and abs(time.time() - started) < 30
    assert daemon_started_at(f"absent-{uuid.uuid4().hex}") is None


def _cli(tmp_path: Path, marker: str, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cfguard")
    return subprocess.run(
        [str(exe), "health", "--dir", str(tmp_path), "--daemon-marker", marker, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_healthy_and_unhealthy(tmp_path: Path, fake_daemon: str) -> None:
    # No shard yet, but within the start grace.
    r = _cli(tmp_path, fake_daemon, "--start-grace", "300")
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr.startswith("healthy: starting")
    # Past the grace with no shard.
    r = _cli(tmp_path, fake_daemon, "--start-grace", "0")
    assert r.returncode == 1 and r.stderr.startswith("unhealthy: no shard processor")
    # A processor beats: healthy.
    hb = Heartbeat(tmp_path, "shardId-000000000000")
    hb.beat(records=100)
    r = _cli(tmp_path, fake_daemon, "--start-grace", "0")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("healthy: 1 shards")
    # It stops beating: stale after max-age.
    time.sleep(1.2)
    r = _cli(tmp_path, fake_daemon, "--start-grace", "0", "--max-age", "1")
    assert r.returncode == 1 and "shardId-000000000000 last beat" in r.stderr
    # Shard handed over: its file is gone, no shards again.
    hb.close()
    r = _cli(tmp_path, fake_daemon, "--start-grace", "300")
    assert r.returncode == 0
    # No daemon process at all.
    r = _cli(tmp_path, f"absent-{uuid.uuid4().hex}")
    assert r.returncode == 1 and r.stderr == "unhealthy: the KCL MultiLangDaemon is not running\n"
