"""The processor executable: only protocol lines on stdout, whatever the pipeline prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.kcl.harness import REPO
from tests.kcl.protocol import initialize, line, process, record


def test_stdout_carries_only_the_protocol(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kcl:\n  pipeline_factory: tests.kcl.counting_pipeline:noisy_from_config\n"
        f"  snapshots: {{store: local, path: {tmp_path / 'snaps'}}}\n"
        "  checkpoint: {every_records: 1000}\n"
    )
    msgs = [initialize(), process([record(1, line(1, "10.0.0.1")), record(2, line(2, "10.0.0.1"))]),
            {"action": "leaseLost"}]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "consumer.kcl.app", "--config", str(cfg)],
        input="".join(json.dumps(m) + "\n" for m in msgs),
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert replies == [
        {"action": "status", "responseFor": "initialize"},
        {"action": "status", "responseFor": "processRecords"},
        {"action": "status", "responseFor": "leaseLost"},
    ]
    assert "debug output from a library" in proc.stderr and "raw write to fd 1" in proc.stderr
