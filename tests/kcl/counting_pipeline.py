"""A small real pipeline for the KCL tests while the detector/action parts are built elsewhere.

It keeps per-IP request counts (c-ip is the real-time format's second field) and decides once per
IP when its count reaches THRESHOLD: stateful enough that a lost or double-applied snapshot, a
skipped or double-processed record shows up as a wrong count or a repeated decision.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from collections.abc import Sequence
from typing import Any

THRESHOLD = int(os.environ.get("CFGUARD_TEST_THRESHOLD", "50"))


class CountingPipeline:
    def __init__(self, threshold: int = THRESHOLD) -> None:
        self.threshold = threshold
        self.counts: Counter[str] = Counter()
        self.decided: set[str] = set()
        self.records = 0
        self.flushes = 0
        self.closed = False

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[dict[str, Any]]:
        out = []
        for line in lines:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
            fields = text.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            ip = fields[1]
            self.records += 1
            self.counts[ip] += 1
            if self.counts[ip] >= self.threshold and ip not in self.decided:
                self.decided.add(ip)
                out.append(
                    {
                        "key": ip,
                        "key_type": "ip",
                        "detector": "count",
                        "action": "block",
                        "score": self.counts[ip] / self.threshold,
                        "reason": f"{self.counts[ip]} requests",
                    }
                )
        return out

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def snapshot(self) -> bytes:
        return pickle.dumps({"counts": self.counts, "decided": self.decided, "records": self.records})

    def restore(self, blob: bytes) -> None:
        d = pickle.loads(blob)
        self.counts, self.decided, self.records = d["counts"], d["decided"], d["records"]

    def stats(self) -> dict[str, Any]:
        return {"records": self.records, "tracked_keys.ip": len(self.counts), "decided": len(self.decided)}


def from_config(cfg: Any) -> CountingPipeline:
    return CountingPipeline()


class NoisyPipeline(CountingPipeline):
    """Writes to stdout like a careless library would: the protocol channel must not see it."""

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[dict[str, Any]]:
        print("debug output from a library")
        os.write(1, b"raw write to fd 1\n")
        return super().process(lines, source)


def noisy_from_config(cfg: Any) -> NoisyPipeline:
    return NoisyPipeline(threshold=2)
