"""JSON log lines: one object per line, a traceback kept on that line, hostile text escaped."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from consumer.logs import JsonFormatter


def test_json_lines_keep_exceptions_and_hostile_text_on_one_line() -> None:
    log = logging.getLogger("cfguard.test")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys as _sys

        rec = log.makeRecord(
            "cfguard.test",
            logging.ERROR,
            __file__,
            1,
            'key %s\r\n{"forged": 1}\x1b[2J',
            ("x",),
            _sys.exc_info(),
        )
    line = JsonFormatter().format(rec)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    doc = json.loads(line)
    assert doc["level"] == "ERROR" and doc["message"].startswith("key x\r\n")
    assert doc["exception"]["type"] == "ValueError" and "test_logs.py" in doc["exception"]["traceback"]


def test_the_cli_logs_json_on_stderr_and_nothing_else_when_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"garbage\n" * 3)
    code = "from consumer.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    env = {"CFGUARD_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", code, "replay", str(bad), "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout == ""
    docs = [json.loads(line) for line in proc.stderr.splitlines()]
    assert any(d["logger"] == "consumer.quarantine" and "field_count=3" in d["message"] for d in docs)
