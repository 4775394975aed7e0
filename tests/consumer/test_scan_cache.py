"""The compiled kernels find a cache directory even where numba finds none (read-only package, no
home cache): they still import, compile, parse, and keep the compiled code under the temp directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from consumer.fields import ALL_45
from consumer.realtime import RealtimeParser
line = b"\\t".join([b"1700000000.5", b"10.0.0.1", b"-", b"200"] + [b"-"] * 41) + b"\\n"
r = RealtimeParser(ALL_45, ["c-ip", "sc-status"]).parse([line, b"bad\\n"])
print(r.batch.texts["c-ip"], r.batch.numbers["sc-status"].tolist(), r.malformed)
"""


def test_kernels_fall_back_to_a_temp_cache_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    # Only the locator that needs NUMBA_CACHE_DIR, which is not set: numba itself would find no place.
    env.update(
        NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator", TMPDIR=str(tmp_path), PYTHONPATH=str(REPO)
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['10.0.0.1'] [200.0] [('field_count', b'bad\\n')]"
    cached = list((tmp_path / f"cfguard-numba-{os.getuid()}").rglob("*.nbi"))
    assert {p.name.split(".")[0] for p in cached} >= {"scan"}, cached
