"""Where malformed input goes: every bad line is counted by reason, a bounded sample is kept.

The sample file is JSON lines (``reason``, ``source``, ``length``, ``line``), so an operator can see
what was wrong without the file growing with the damage: at most ``max_samples`` lines are written,
each cut to ``SAMPLE_BYTES``. Lines are written with JSON escaping, so control characters or forged
newlines in hostile input cannot break the file's structure. The file holds raw log data (client IPs
included): it is an operator's artefact with the same sensitivity as the logs, never a log itself.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

SAMPLE_BYTES = 4096


class Quarantine:
    def __init__(self, path: str | Path | None = None, max_samples: int = 1000) -> None:
        self.path = Path(path) if path is not None else None
        self.max_samples = max_samples
        self.counts: Counter[str] = Counter()
        self.samples_written = 0
        self._out: TextIO | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, reason: str, line: bytes | str, source: str = "") -> None:
        self.counts[reason] += 1
        if self.path is None or self.samples_written >= self.max_samples:
            return
        raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
        record = {
            "reason": reason,
            "source": source,
            "length": len(raw),
            "line": raw[:SAMPLE_BYTES].decode("utf-8", "backslashreplace"),
        }
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.path, "a", encoding="utf-8")
        self._out.write(json.dumps(record, ensure_ascii=True) + "\n")
        self.samples_written += 1

    def flush(self) -> None:
        if self._out is not None:
            self._out.flush()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.total:
            log.info(
                "malformed input: %d line(s) (%s)",
                self.total,
                ", ".join(f"{r}={n}" for r, n in sorted(self.counts.items())),
            )
