"""The alert action: one structured JSON line per block/alert decision (when, where, who, what, evidence)."""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from actions.decision import Decision, iso8601
from actions.pseudonym import Pseudonymiser

# Evidence fields copied into "where" when a detector provides them.
_WHERE_FIELDS = ("host", "distribution", "x-host-header", "cs-host", "edge_location", "x-edge-location")


class AlertSink:
    """Writes alert lines to stderr or appends them to a file (line-buffered, one write per line)."""

    def __init__(self, path: Path | None, pseudo: Pseudonymiser, stream: TextIO | None = None) -> None:
        self.pseudo = pseudo
        self.path = path
        self._own = path is not None
        self._out: TextIO = open(path, "a", encoding="utf-8", buffering=1) if path else (stream or sys.stderr)
        self._lock = threading.Lock()
        self.instance = socket.gethostname()
        self.written = 0

    def line(self, d: Decision) -> dict[str, Any]:
        where: dict[str, Any] = {"detector": d.detector, "window": d.window, "instance": self.instance}
        for name in _WHERE_FIELDS:
            if name in d.evidence:
                where[name] = d.evidence[name]
        return {
            "type": "cfguard.alert",
            "when": {"event_time": iso8601(d.event_time), "decided_at": iso8601(d.decided_at)},
            "where": where,
            "who": {
                "key_type": d.key_type,
                "key": self.pseudo.show(d.key),
                "pseudonymised": self.pseudo.enabled,
            },
            "what": {
                "action": d.action,
                "reason": d.reason,
                "score": d.score,
                "threshold": d.threshold,
                "block_duration_s": d.block_duration_s,
                "offence": d.offence,
                "dry_run": d.dry_run,
            },
            "evidence": d.evidence,
            "idempotency_key": d.idempotency_key,
        }

    def emit(self, d: Decision) -> None:
        text = json.dumps(self.line(d), sort_keys=True, default=str) + "\n"
        with self._lock:
            self._out.write(text)
            self._out.flush()
            self.written += 1

    def close(self) -> None:
        if self._own:
            self._out.close()
