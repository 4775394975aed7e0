"""Put records into a Kinesis stream the way a careful producer does: batched, paced, retried.

Used by ``replay --to-stream`` (a recording republished with its partition keys) and by the demo's
traffic feeder. PutRecords takes at most 500 records / 5 MiB per call; each shard accepts 1,000
records and 1 MiB per second, so the whole stream is paced to ``open shards x`` those limits. Records
a call reports as failed (throttled or internal error) are sent again with exponential backoff; only
after ``max_attempts`` is a record given up, and it is counted, never dropped silently.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
SHARD_RECORDS_PER_S = 1000
SHARD_BYTES_PER_S = 1024 * 1024


@dataclass
class PublishStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    calls: int = 0


class Republisher:
    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        max_attempts: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.max_attempts = max_attempts
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.stats = PublishStats()
        shards = self._open_shards()
        self.records_per_s = shards * SHARD_RECORDS_PER_S
        self.bytes_per_s = shards * SHARD_BYTES_PER_S
        self._window_start = clock()
        self._window_records = 0
        self._window_bytes = 0

    def _open_shards(self) -> int:
        summary = self.client.describe_stream_summary(StreamName=self.stream)["StreamDescriptionSummary"]
        return max(1, int(summary.get("OpenShardCount", 1)))

    def _pace(self, records: int, size: int) -> None:
        """Keep each one-second window within the stream's write limits."""
        now = self.clock()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_records, self._window_bytes = now, 0, 0
        if (
            self._window_records + records > self.records_per_s
            or self._window_bytes + size > self.bytes_per_s
        ):
            self.sleep(max(0.0, 1.0 - (now - self._window_start)))
            self._window_start, self._window_records, self._window_bytes = self.clock(), 0, 0
        self._window_records += records
        self._window_bytes += size

    def put(self, records: Iterable[tuple[str, bytes]]) -> PublishStats:
        """``(partition_key, data)`` pairs, in order; returns the running totals."""
        batch: list[dict[str, Any]] = []
        size = 0
        for key, data in records:
            entry_size = len(data) + len(key.encode())
            if batch and (len(batch) >= MAX_RECORDS_PER_CALL or size + entry_size > MAX_BYTES_PER_CALL):
                self._send(batch, size)
                batch, size = [], 0
            batch.append({"PartitionKey": key, "Data": data})
            size += entry_size
        if batch:
            self._send(batch, size)
        return self.stats

    def _send(self, batch: list[dict[str, Any]], size: int) -> None:
        pending = batch
        for attempt in range(self.max_attempts):
            self._pace(len(pending), size)
            self.stats.calls += 1
            try:
                resp = self.client.put_records(StreamName=self.stream, Records=pending)
            except self.client.exceptions.ProvisionedThroughputExceededException:
                failed = pending
            else:
                if not resp.get("FailedRecordCount"):
                    self.stats.sent += len(pending)
                    return
                failed = [
                    rec for rec, res in zip(pending, resp["Records"], strict=True) if "ErrorCode" in res
                ]
                self.stats.sent += len(pending) - len(failed)
            pending = failed
            size = sum(len(r["Data"]) + len(r["PartitionKey"]) for r in pending)
            if attempt + 1 < self.max_attempts:
                self.stats.retried += len(pending)
                self.sleep(min(5.0, 0.05 * 2**attempt) * (0.5 + self.rng.random()))
        self.stats.failed += len(pending)
        log.error("gave up on %d record(s) after %d attempts", len(pending), self.max_attempts)
