"""``cfguard demo`` end to end (local stack, real KCL daemon, generated abuse), shortened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.kcl.harness import REPO

pytestmark = pytest.mark.integration


def test_demo_blocks_abusers_and_no_innocent(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "demo", "--duration", "45", "--plain",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "cfguard demo summary" in out
    assert "-> generated as abuse: credential_stuffing" in out
    assert "innocent keys blocked: 0" in out
    assert "INNOCENT" not in out
    line = next(x for x in out.splitlines() if x.strip().startswith("records sent"))
    figures = [
        int(p.strip(",").replace(",", "")) for p in line.split() if p.strip(",").replace(",", "").isdigit()
    ]
    assert figures[0] > 5000 and figures[0] == figures[1]  # everything sent was processed
    assert "block Lambda invoked" in out and (tmp_path / "kcl-daemon.log").exists()
