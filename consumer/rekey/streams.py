"""What a re-keying processor must know about the two streams to report its progress.

- the raw stream's open shards: every progress record names them, so a detect processor waits for
  a source that has not published yet (instead of releasing buckets without it);
- one partition key per open shard of the partials stream: a progress record is sent to every
  detect processor, including those that got no data from this source in this batch.

Both come from ListShards, cached for ``refresh_s`` (a reshard shows within that time). A failing
ListShards keeps the last answer (logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from detectors.partial_wire import kinesis_hash

log = logging.getLogger(__name__)


class StreamView(Protocol):
    def open_sources(self) -> list[str]: ...
    def progress_keys(self) -> list[str]: ...


class StaticView:
    """Fixed answers: tests, benchmarks, and a single detect consumer (one key reaches it)."""

    def __init__(self, sources: list[str] | None = None, keys: list[str] | None = None) -> None:
        self.sources = list(sources or [])
        self.keys = list(keys or ["w"])

    def open_sources(self) -> list[str]:
        return self.sources

    def progress_keys(self) -> list[str]:
        return self.keys


def key_for_range(start: int, end: int, limit: int = 1_000_000) -> str:
    """A partition key whose Kinesis hash falls in [start, end] (a shard's hash key range)."""
    for i in range(limit):
        k = f"w{i}"
        if start <= kinesis_hash(k) <= end:
            return k
    raise ValueError(f"no partition key found for hash range {start}..{end}")


def _open_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    args: dict[str, Any] = {"StreamName": stream}
    while True:
        resp = client.list_shards(**args)
        shards += resp["Shards"]
        token = resp.get("NextToken")
        if not token:
            break
        args = {"NextToken": token}
    return [s for s in shards if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})]


class KinesisView:
    def __init__(
        self,
        client: Any,
        raw_stream: str,
        partials_stream: str,
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.raw_stream = raw_stream
        self.partials_stream = partials_stream
        self.refresh_s = refresh_s
        self.clock = clock
        self._at: float | None = None
        self._sources: list[str] = []
        self._keys: list[str] = []
        self._ranges: dict[str, str] = {}  # "start-end" -> key (searching is not free)

    def _refresh(self) -> None:
        now = self.clock()
        if self._at is not None and now - self._at < self.refresh_s:
            return
        self._at = now
        try:
            self._sources = sorted(s["ShardId"] for s in _open_shards(self.client, self.raw_stream))
        except Exception as exc:
            log.warning("cannot list the shards of %s (%s); keeping the last answer", self.raw_stream, exc)
        try:
            keys = []
            for s in _open_shards(self.client, self.partials_stream):
                r = s["HashKeyRange"]
                rk = f"{r['StartingHashKey']}-{r['EndingHashKey']}"
                if rk not in self._ranges:
                    self._ranges[rk] = key_for_range(int(r["StartingHashKey"]), int(r["EndingHashKey"]))
                keys.append(self._ranges[rk])
            self._keys = keys
        except Exception as exc:
            log.warning(
                "cannot list the shards of %s (%s); keeping the last answer", self.partials_stream, exc
            )

    def open_sources(self) -> list[str]:
        self._refresh()
        return self._sources

    def progress_keys(self) -> list[str]:
        self._refresh()
        return self._keys or ["w"]
