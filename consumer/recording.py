"""``cfguard record``: capture every shard of a live stream into the recorded format.

One JSON object per Kinesis record: ``shard_id``, ``sequence_number``, ``partition_key``,
``approximate_arrival_time`` (epoch seconds) and base64 ``data`` (the record exactly as stored, KPL
aggregation included). ``consumer.sources`` reads it back for ``replay``.

Resharding: a child shard is read only once its parents are finished (read to their end), so each
partition key's records keep their order in the recording. Throttling backs off; an expired
iterator is renewed after the last sequence number read, so nothing is skipped or duplicated.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

THROTTLED = {"ProvisionedThroughputExceededException", "ThrottlingException", "LimitExceededException"}
GET_RECORDS_INTERVAL_S = 0.2  # Kinesis allows 5 GetRecords per second per shard


class RecordingWriter:
    """Appends records in the recorded format; gzip when the name ends in ``.gz``."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self._out: TextIO = (
            gzip.open(p, "wt", encoding="utf-8") if p.suffix == ".gz" else open(p, "w", encoding="utf-8")
        )
        self.count = 0

    def write(self, shard_id: str, record: dict[str, Any]) -> None:
        arrival = record.get("ApproximateArrivalTimestamp")
        obj = {
            "shard_id": shard_id,
            "sequence_number": record["SequenceNumber"],
            "partition_key": record.get("PartitionKey"),
            "approximate_arrival_time": arrival.timestamp() if isinstance(arrival, datetime) else arrival,
            "data": base64.b64encode(record["Data"]).decode("ascii"),
        }
        self._out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.count += 1

    def close(self) -> None:
        self._out.close()


@dataclass
class _Shard:
    shard_id: str
    parents: tuple[str, ...]
    closed: bool
    iterator: str | None = None
    last_sequence: str | None = None
    finished: bool = False
    next_poll: float = 0.0
    backoff_s: float = 0.0


@dataclass
class RecordStats:
    records: int = 0
    shards_finished: list[str] = field(default_factory=list)
    throttled: int = 0
    expired_iterators: int = 0
    millis_behind: dict[str, int] = field(default_factory=dict)


class StreamRecorder:
    """Reads all shards round-robin until a count, a duration, or (optionally) the stream is idle."""

    def __init__(
        self,
        client: Any,
        stream: str,
        writer: RecordingWriter,
        *,
        start: str | datetime = "TRIM_HORIZON",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[RecordStats], None] | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.writer = writer
        self.start = start
        self.clock = clock
        self.sleep = sleep
        self.on_progress = on_progress
        self.shards: dict[str, _Shard] = {}
        self.stats = RecordStats()
        self._relist = True

    def _list_shards(self) -> None:
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            resp = self.client.list_shards(**kwargs)
            for s in resp["Shards"]:
                sid = s["ShardId"]
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                if sid in self.shards:
                    self.shards[sid].closed = closed
                    continue
                parents = tuple(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)
                self.shards[sid] = _Shard(sid, parents, closed)
            token = resp.get("NextToken")
            if not token:
                return
            kwargs = {"NextToken": token}

    def _ready(self, shard: _Shard) -> bool:
        # Parents that are not (or no longer) listed have expired: nothing left to read from them.
        return all(p not in self.shards or self.shards[p].finished for p in shard.parents)

    def _iterator(self, shard: _Shard) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard.shard_id}
        if shard.last_sequence is not None:
            kwargs |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": shard.last_sequence,
            }
        elif shard.parents and any(p in self.shards for p in shard.parents):
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"  # a child continues where its parents ended
        elif isinstance(self.start, datetime):
            kwargs |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": self.start}
        else:
            kwargs["ShardIteratorType"] = self.start
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def _poll(self, shard: _Shard, limit: int) -> int:
        if shard.iterator is None:
            shard.iterator = self._iterator(shard)
        try:
            resp = self.client.get_records(ShardIterator=shard.iterator, Limit=limit)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExpiredIteratorException":
                self.stats.expired_iterators += 1
                shard.iterator = None
                return 0
            if code in THROTTLED:
                self.stats.throttled += 1
                shard.backoff_s = min(max(shard.backoff_s * 2, 0.5), 10.0)
                shard.next_poll = self.clock() + shard.backoff_s
                return 0
            raise
        shard.backoff_s = 0.0
        records = resp.get("Records", [])
        for rec in records:
            self.writer.write(shard.shard_id, rec)
            shard.last_sequence = rec["SequenceNumber"]
        if "MillisBehindLatest" in resp:
            self.stats.millis_behind[shard.shard_id] = int(resp["MillisBehindLatest"])
        shard.iterator = resp.get("NextShardIterator")
        if shard.iterator is None or (shard.closed and not records):
            shard.finished = True
            self._relist = True  # its children may now be read
            self.stats.shards_finished.append(shard.shard_id)
        shard.next_poll = self.clock() + (0.0 if records else GET_RECORDS_INTERVAL_S)
        return len(records)

    def run(
        self, *, max_records: int | None = None, duration_s: float | None = None, until_idle: bool = False
    ) -> RecordStats:
        """Record until ``max_records``, ``duration_s``, or (``until_idle``) every shard is caught up."""
        started = self.clock()
        last_listing = -1e9
        idle_rounds = 0
        while True:
            now = self.clock()
            if duration_s is not None and now - started >= duration_s:
                break
            if now - last_listing >= 10.0 or self._relist:
                self._list_shards()
                last_listing, self._relist = now, False
            active = [s for s in self.shards.values() if not s.finished and self._ready(s)]
            if not active:
                break
            got = 0
            for shard in active:
                if shard.next_poll > self.clock():
                    continue
                left = None if max_records is None else max_records - self.stats.records
                if left is not None and left <= 0:
                    break
                n = self._poll(shard, min(10_000, left or 10_000))
                got += n
                self.stats.records += n
            if self.on_progress:
                self.on_progress(self.stats)
            if max_records is not None and self.stats.records >= max_records:
                break
            if got:
                idle_rounds = 0
                continue
            caught_up = all(self.stats.millis_behind.get(s.shard_id, 1) == 0 for s in active)
            idle_rounds = idle_rounds + 1 if caught_up else 0
            if until_idle and idle_rounds >= 3:
                break
            wake = min(s.next_poll for s in active)
            self.sleep(max(0.0, min(wake - self.clock(), GET_RECORDS_INTERVAL_S)))
        return self.stats
