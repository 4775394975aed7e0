"""Where cfguard's own logs go: stderr, as text for people or JSON lines for log platforms.

``CFGUARD_LOG_FORMAT=json`` (the container image sets it) gives one JSON object per line (time,
level, logger, process, message, and an exception as type, message and a one-line traceback): a
stack trace never spans lines or breaks a collector's parsing, and JSON escaping keeps control
characters in a message from forging a line. Keys in messages are already pseudonymised or elided
by the code that logs them (see SECURITY.md). stdout is never used: in a KCL processor it is the
protocol channel.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            etype, value, tb = record.exc_info
            doc["exception"] = {
                "type": etype.__name__,
                "message": str(value),
                "traceback": "".join(traceback.format_tb(tb)).replace("\n", " | ").strip(" |"),
            }
        return json.dumps(doc, ensure_ascii=True, default=str)


def configure(verbose: bool = False, fmt: str | None = None) -> None:
    """Root logging on stderr in the configured format (``CFGUARD_LOG_FORMAT``: text or json)."""
    chosen = (fmt or os.environ.get("CFGUARD_LOG_FORMAT", "text")).lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
