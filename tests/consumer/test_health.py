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


# ---------------------------------------------------------------- the real consumer


def _processor_pids(config: Path) -> list[int]:
    """The record processors (children of the Java daemon) started for this config."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"consumer.kcl.app" in cmd and str(config.resolve()).encode() in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.mark.integration
def test_health_of_a_real_consumer_through_start_stall_and_stop(capsys, tmp_path: Path) -> None:
    """`cfguard run` on the KCL daemon (local stack): starting, healthy, a stopped (SIGSTOP) processor
    reported stale, healthy again after SIGCONT, unhealthy once the daemon has exited."""
    import signal

    from consumer.cli import main
    from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackSpec
    from tests.kcl.harness import REPO, put_lines, tail, wait_for, write_config
    from tests.kcl.protocol import line

    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    spec = StackSpec(stream_name="cfguard-health", shards=1)
    workdir = tmp_path / "wd"  # on the daemon's classpath: tells this daemon from any other one
    status = tmp_path / "status"  # kcl.status_dir: the processors' status files count as beats
    with LocalStackProcess(spec, log_path=tmp_path / "stack.log") as stack:
        cfg = write_config(tmp_path, stack, "it-health", spec.stream_name)
        env = stack.env()
        env["PYTHONPATH"] = str(REPO)
        env["CFGUARD_TEST_THRESHOLD"] = str(10**9)
        log = tmp_path / "run.log"

        def health(*args: str) -> tuple[int, str]:
            code = main(["health", "--dir", str(status), "--daemon-marker", str(workdir), *args])
            out = capsys.readouterr()
            return code, out.out + out.err

        with open(log, "wb") as out:
            cmd = [sys.executable, "-m", "consumer.cli", "run", "--config", str(cfg)]
            run = subprocess.Popen(
                [*cmd, "--workdir", str(workdir)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        stopped: list[int] = []
        try:
            code, text = wait_for(lambda: (r := health())[0] == 0 and r, 60, "the daemon\n" + tail(log))
            assert "starting" in text, text
            put_lines(stack, spec.stream_name, [line(1_700_000_000 + i, "10.0.0.1") for i in range(20)])
            wait_for(lambda: "healthy: 1 shards" in health()[1], 150, "a reporting processor\n" + tail(log))
            stopped = _processor_pids(cfg)
            assert stopped
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            code, text = wait_for(lambda: (r := health("--max-age", "3"))[0] == 1 and r, 30, "stall detected")
            assert "1 of 1 shards stale: shardId-000000000000 last beat" in text, text
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            stopped = []
            wait_for(lambda: health("--max-age", "3")[0] == 0, 30, "healthy after SIGCONT\n" + tail(log))
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
            run.send_signal(signal.SIGTERM)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
        code, text = health()
        assert code == 1 and "the KCL MultiLangDaemon is not running" in text, text
