"""The real pipeline for the fault tests, plus what they need to see inside a processor.

``from_config`` (a ``kcl.pipeline_factory``) builds ``consumer.pipeline.Pipeline`` and wraps it:

- an exact per-client-IP count of the lines applied to the state travels in the snapshot, so a lost
  or double-applied snapshot, or a record skipped or applied twice, shows up as a wrong count;
- a pause inside one batch, only when ``CFGUARD_TEST_PAUSE_DIR`` is set (inert otherwise): the
  first batch holding a line from client IP ``CFGUARD_TEST_PAUSE_MARK`` writes
  ``<dir>/paused-<shard>`` and waits (before applying the batch) until ``<dir>/resume`` exists, so a
  test can take the lease while that batch is in flight.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from consumer.pipeline import Pipeline

PAUSE_DIR = "CFGUARD_TEST_PAUSE_DIR"
PAUSE_MARK = "CFGUARD_TEST_PAUSE_MARK"
PAUSE_MAX_S = 180.0


def client_ip(line: bytes | str) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    fields = text.split("\t", 2)
    return fields[1] if len(fields) > 1 else ""


class CountedPipeline:
    def __init__(self, inner: Pipeline) -> None:
        self.inner = inner
        self.applied: Counter[str] = Counter()
        pause_dir = os.environ.get(PAUSE_DIR)
        self.pause_dir = Path(pause_dir) if pause_dir else None
        self.pause_mark = os.environ.get(PAUSE_MARK, "")
        self.paused = False

    def _maybe_pause(self, ips: list[str], source: str) -> None:
        if self.pause_dir is None or self.paused or self.pause_mark not in ips:
            return
        self.paused = True
        (self.pause_dir / f"paused-{source}").write_text(str(os.getpid()))
        deadline = time.monotonic() + PAUSE_MAX_S
        while not (self.pause_dir / "resume").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Any]:
        ips = [client_ip(x) for x in lines]
        self._maybe_pause(ips, source)
        decisions = self.inner.process(lines, source)
        self.applied.update(ips)
        return decisions

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()

    def snapshot(self) -> bytes:
        return pickle.dumps({"inner": self.inner.snapshot(), "applied": self.applied})

    def restore(self, blob: bytes) -> None:
        d = pickle.loads(blob)
        self.inner.restore(d["inner"])
        self.applied = d["applied"]

    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats(), "applied": sum(self.applied.values())}


def applied_counts(blob: bytes) -> Counter[str]:
    """The per-IP counts inside a snapshot written by this pipeline."""
    return Counter(pickle.loads(blob)["applied"])


def from_config(cfg: Any) -> CountedPipeline:
    return CountedPipeline(Pipeline.from_config(cfg))
