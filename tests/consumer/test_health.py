"""``cfguard health`` against status files written by the processors' own StatusWriter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.health import DAEMON_FILE, check, pid_alive, record_daemon
from consumer.kcl.status import StatusWriter

STATS = {"records": 10, "millis_behind_latest": 0, "closed": False}


def write_shard(root: Path, shard: str, at: float, **extra: object) -> None:
    StatusWriter(root, shard, clock=lambda: at).update({**STATS, **extra}, force=True)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    return proc.pid


def run_health(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], root: Path, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("CFGUARD__KCL__STATUS_DIR", str(root))
    code = main(["health", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_healthy_when_every_shard_reported_recently(monkeypatch, capsys, tmp_path: Path) -> None:
    now = time.time()
    record_daemon(tmp_path, pid=os.getpid(), clock=lambda: now - 600)
    write_shard(tmp_path, "shardId-000000000000", now - 1)
    write_shard(tmp_path, "shardId-000000000001", now - 30)
    code, out, err = run_health(monkeypatch, capsys, tmp_path, "--max-age", "60")
    assert code == 0, err
    assert out.startswith("healthy: 2 shard processor(s), oldest update 3")


def test_a_stale_shard_is_unhealthy_with_its_age(monkeypatch, capsys, tmp_path: Path) -> None:
    now = time.time()
    record_daemon(tmp_path, pid=os.getpid(), clock=lambda: now - 3600)
    write_shard(tmp_path, "shardId-000000000000", now - 2)
    write_shard(tmp_path, "shardId-000000000001", now - 300)
    code, out, err = run_health(monkeypatch, capsys, tmp_path, "--max-age", "120")
    assert code == 1 and out == ""
    assert "shard shardId-000000000001: no progress for 300 s (max 120 s)" in err
    assert "000000000000" not in err
    # Given more slack the same files are healthy.
    code, out, _ = run_health(monkeypatch, capsys, tmp_path, "--max-age", "400")
    assert code == 0 and out.startswith("healthy: 2 shard")


def test_closed_processors_and_earlier_runs_are_not_counted(tmp_path: Path) -> None:
    now = 10_000.0
    write_shard(tmp_path, "old-run", now - 900)  # left by a run before this daemon started
    write_shard(tmp_path, "ended", now - 400, closed=True)  # lease lost: finished, not stuck
    record_daemon(tmp_path, pid=os.getpid(), clock=lambda: now - 500)
    write_shard(tmp_path, "live", now - 5)
    report = check(tmp_path, max_age_s=60, start_grace_s=180, now=now)
    assert report.healthy and report.shard_ages == {"live": 5.0}
    # Without the live one nothing of this run has reported, long after the start grace.
    (tmp_path / "shard-live.json").unlink()
    report = check(tmp_path, max_age_s=60, start_grace_s=180, now=now)
    assert not report.healthy
    assert report.reasons == (
        f"no shard processor has reported in {tmp_path} since the consumer started 500 s ago"
        " (start grace 180 s)",
    )
    assert check(tmp_path, max_age_s=60, start_grace_s=180, now=now, allow_no_shards=True).healthy


def test_start_grace_then_unhealthy_without_status(monkeypatch, capsys, tmp_path: Path) -> None:
    now = time.time()
    record_daemon(tmp_path, pid=os.getpid(), clock=lambda: now - 20)
    code, out, _ = run_health(monkeypatch, capsys, tmp_path, "--start-grace", "60")
    assert code == 0 and out.strip() == "healthy: starting (no shard processor has reported yet)"
    code, _, err = run_health(monkeypatch, capsys, tmp_path, "--start-grace", "10")
    assert code == 1 and "no shard processor has reported" in err and "started 20 s ago" in err
    # No daemon record at all (cfguard run never started here): nothing to wait for.
    (tmp_path / DAEMON_FILE).unlink()
    code, _, err = run_health(monkeypatch, capsys, tmp_path)
    assert code == 1 and "no shard processor has reported in" in err


def test_dead_consumer_process_is_unhealthy_even_with_fresh_files(
    monkeypatch, capsys, tmp_path: Path
) -> None:
    now = time.time()
    pid = dead_pid()
    record_daemon(tmp_path, pid=pid, clock=lambda: now - 100)
    write_shard(tmp_path, "shardId-000000000000", now)
    code, _, err = run_health(monkeypatch, capsys, tmp_path)
    assert code == 1
    assert f"the consumer process (pid {pid}) is not running" in err


def test_pid_alive_sees_running_dead_and_zombie_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while pid_alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # exits, but stays a zombie until waited for
        assert not pid_alive(child.pid)
        assert Path(f"/proc/{child.pid}").exists()  # it is a zombie, not gone
    finally:
        child.wait()


def test_unreadable_records_are_reasons_not_crashes(tmp_path: Path) -> None:
    (tmp_path / DAEMON_FILE).write_text("{not json")
    report = check(tmp_path, max_age_s=60, start_grace_s=0, now=0.0)
    assert not report.healthy and "daemon.json" in report.reasons[0] and "unreadable" in report.reasons[0]
    (tmp_path / DAEMON_FILE).write_text(json.dumps({"pid": "1", "started_at": 0}))
    report = check(tmp_path, max_age_s=60, start_grace_s=0, now=0.0)
    assert not report.healthy and "lacks an integer pid" in report.reasons[0]
    (tmp_path / DAEMON_FILE).unlink()
    (tmp_path / "shard-x.json").write_text(json.dumps({"shard_id": "x", "updated_at": "yesterday"}))
    report = check(tmp_path, max_age_s=60, start_grace_s=0, now=0.0)
    assert report.reasons == ("shard x: status file has no updated_at time",)


def test_without_a_status_dir_there_is_nothing_to_check(monkeypatch, capsys) -> None:
    monkeypatch.delenv("CFGUARD__KCL__STATUS_DIR", raising=False)
    assert main(["health"]) == 2
    assert "kcl.status_dir is not set" in capsys.readouterr().err
    assert main(["health", "--status-dir", "x", "--max-age", "0"]) == 2


def test_record_daemon_writes_pid_and_start(tmp_path: Path) -> None:
    path = record_daemon(tmp_path / "status", clock=lambda: 123.5)
    assert json.loads(path.read_text()) == {"pid": os.getpid(), "started_at": 123.5}


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
    """`cfguard run` on the KCL daemon: starting, healthy, a stopped (SIGSTOP) processor detected as
    stuck, healthy again after SIGCONT, unhealthy once the consumer has exited."""
    import signal

    from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackSpec
    from tests.kcl.harness import REPO, put_lines, tail, wait_for, write_config
    from tests.kcl.protocol import line

    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)
    spec = StackSpec(stream_name="cfguard-health", shards=1)
    with LocalStackProcess(spec, log_path=tmp_path / "stack.log") as stack:
        cfg = write_config(tmp_path, stack, "it-health", spec.stream_name)
        env = stack.env()
        env["PYTHONPATH"] = str(REPO)
        env["CFGUARD_TEST_THRESHOLD"] = str(10**9)
        log = tmp_path / "run.log"

        def health(*args: str) -> tuple[int, str]:
            code = main(["health", "--config", str(cfg), *args])
            out = capsys.readouterr()
            return code, out.out + out.err

        with open(log, "wb") as out:
            cmd = [sys.executable, "-m", "consumer.cli", "run", "--config", str(cfg)]
            run = subprocess.Popen(
                [*cmd, "--workdir", str(tmp_path / "wd")],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        stopped: list[int] = []
        try:
            wait_for(lambda: (tmp_path / "status" / DAEMON_FILE).exists(), 30, "daemon.json\n" + tail(log))
            code, text = health("--start-grace", "300")
            assert code == 0 and "starting" in text, text
            put_lines(stack, spec.stream_name, [line(1_700_000_000 + i, "10.0.0.1") for i in range(20)])
            wait_for(
                lambda: "1 shard processor(s)" in health()[1], 150, "a reporting processor\n" + tail(log)
            )
            code, text = health("--max-age", "5")
            assert code == 0 and "healthy: 1 shard processor(s)" in text, text

            stopped = _processor_pids(cfg)
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            code, text = wait_for(lambda: (r := health("--max-age", "3"))[0] == 1 and r, 30, "stall detected")
            assert "shard shardId-000000000000: no progress for" in text and "(max 3 s)" in text
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
        assert code == 1 and f"the consumer process (pid {run.pid}) is not running" in text, text
