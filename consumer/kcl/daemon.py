"""Starting the KCL MultiLangDaemon (Java) for a config, with signals forwarded to it.

The daemon starts ``python -m consumer.kcl.app --config FILE`` once per shard lease it holds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from consumer.kcl.config import KclConfig
from consumer.kcl.jars import daemon_command
from consumer.kcl.properties import write_properties

log = logging.getLogger(__name__)


def processor_command(config_path: Path | str) -> list[str]:
    """The processor's command line; a remote config source (s3://, ssm:) is passed as written."""
    source = str(config_path)
    if not source.startswith(("s3://", "ssm:")):
        source = str(Path(source).resolve())
    cmd = [sys.executable, "-m", "consumer.kcl.app", "--config", source]
    if any(" " in part for part in cmd):
        # The daemon splits executableName on spaces.
        raise ValueError(f"paths with spaces cannot be passed to the KCL daemon: {' '.join(cmd)}")
    return cmd


class Daemon:
    """One MultiLangDaemon process; ``stop()`` sends SIGTERM (graceful: processors checkpoint)."""

    def __init__(
        self,
        cfg: KclConfig,
        config_path: Path | str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        name: str = "app",
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path  # a file, or s3://bucket/key / ssm:/name as written
        self.workdir = Path(workdir)
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.properties = self.workdir / f"{name}.properties"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        write_properties(self.cfg, processor_command(self.config_path), self.properties)
        jvm: tuple[str, ...] = () if self.cfg.cbor_enabled else ("-Daws.cborEnabled=false",)
        return daemon_command(self.properties, self.cfg.java, jvm)

    def start(self) -> subprocess.Popen[bytes]:
        cmd = self.command()
        env = dict(self.env)
        if not self.cfg.cbor_enabled:
            env["CBOR_ENABLED"] = "false"
            env["AWS_CBOR_DISABLE"] = "1"
        out = open(self.log_path, "ab") if self.log_path else None
        log.debug("starting the KCL daemon: %s", " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT if out else None, env=env, cwd=self.workdir
        )
        if out is not None:
            out.close()
        return self.proc

    def send(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float | None = None, sig: int = signal.SIGTERM) -> int | None:
        """Graceful stop; killed if it outlives ``timeout`` (default: shutdown grace + 15 s)."""
        if self.proc is None:
            return None
        if timeout is None:
            timeout = self.cfg.shutdown_grace_ms / 1000 + 15
        self.send(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("KCL daemon did not stop within %.0f s; killing it", timeout)
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_forwarding_signals(daemon: Daemon) -> int:
    """Start the daemon, forward SIGTERM/SIGINT to it, and return its exit code."""
    proc = daemon.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        log.info("forwarding %s to the KCL daemon", signal.Signals(signum).name)
        daemon.send(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT handled by forward()
                daemon.send(signal.SIGINT)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
