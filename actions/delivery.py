"""Delivery of block payloads off the record-processing thread: a bounded queue, one worker, the spool.

``enqueue`` never waits: when the queue is full the payload goes straight to the durable spool. The
worker delivers queued payloads (with the action's retries); a payload whose retries are exhausted
is spooled. When the queue is idle the worker drains the spool every ``retry_interval_s``, one
attempt per entry, stopping at the first failure (the outage is not over). When an SQS dead-letter
queue is configured, an entry the Lambda rejects as invalid, or one that failed ``max_attempts``
drains, moves there; without one, failed entries are retried indefinitely and rejected ones stay
in the local spool (counted in ``spool.pending``) for an operator.

Every payload handed to ``enqueue`` is counted exactly once as ``delivered`` or ``spooled.<why>``;
spooled entries are later counted once as ``spool.redelivered`` or ``spool.dead_lettered``. The
runner's snapshot carries the spooled entries; restoring it elsewhere ``adopt``s those the local
spool lacks (counted as ``adopted``, then settled like any spooled entry).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from actions.dead_letter import DeadLetterQueue
from actions.lambda_action import LambdaAction, Outcome
from actions.spool import Spool

log = logging.getLogger(__name__)

_STOP = object()


class Delivery:
    def __init__(
        self,
        action: LambdaAction,
        spool: Spool,
        *,
        dead_letter: DeadLetterQueue | None = None,
        queue_size: int = 1000,
        retry_interval_s: float = 30.0,
        spool_max_attempts: int = 20,
        flush_timeout_s: float = 10.0,
        wall: Callable[[], float] = time.time,  # for spooled_at only; scheduling is monotonic
    ) -> None:
        self.action = action
        self.spool = spool
        self.dead_letter = dead_letter
        self.retry_interval_s = retry_interval_s
        self.spool_max_attempts = spool_max_attempts
        self.flush_timeout_s = flush_timeout_s
        self.wall = wall
        self.q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inflight: dict[str, Any] | None = None
        self._spooled_inflight: set[str] = set()
        self._next_drain = 0.0  # monotonic; drain at once on start: entries left by a previous run
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- producer side (record-processing thread) ------------------------------------------------
    def enqueue(self, payload: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("delivery is closed")
        self._ensure_thread()
        try:
            self.q.put_nowait(payload)
            self.counts["enqueued"] += 1
        except queue.Full:
            self._spool(payload, "queue_full", "delivery queue full")

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cfguard-delivery", daemon=True)
            self._thread.start()

    def _spool(self, payload: dict[str, Any], why: str, error: str, attempts: int = 0) -> None:
        self.spool.append(
            {
                "idempotency_key": payload["idempotency_key"],
                "payload": payload,
                "reason": why,
                "last_error": error,
                "attempts": attempts,
                "spooled_at": self.wall(),
            }
        )
        with self._lock:
            self.counts[f"spooled.{why}"] += 1
            self.counts["spooled"] += 1
        log.warning("block %s spooled (%s: %s)", payload["idempotency_key"], why, error)

    # -- worker thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = max(0.05, min(self.retry_interval_s, self._next_drain - time.monotonic()))
            try:
                item = self.q.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self.q.task_done()
                return
            if item is not None:
                try:
                    self._deliver(item)
                except Exception:  # never let the worker die: spool and carry on
                    log.exception("unexpected error delivering a block; spooled")
                    self._spool(item, "error", "unexpected error")
                finally:
                    self.q.task_done()
                continue
            if time.monotonic() >= self._next_drain:
                try:
                    self.drain_spool()
                except Exception:
                    log.exception("spool drain failed; will retry")
                self._next_drain = time.monotonic() + self.retry_interval_s

    def _deliver(self, payload: dict[str, Any]) -> None:
        ikey = payload["idempotency_key"]
        with self._lock:
            self._inflight = payload
        out = self.action.deliver(payload)
        with self._lock:
            self._inflight = None
            already_spooled = ikey in self._spooled_inflight
            self._spooled_inflight.discard(ikey)
        if already_spooled:  # flush() gave up waiting and spooled it: settle the spool entry instead
            if out.status == "delivered":
                self.spool.update({ikey}, {})
                self._count("spool.redelivered")
            return
        if out.status == "delivered":
            self._count("delivered")
        elif out.status == "rejected":
            self._count("rejected")
            self._spool(payload, "rejected", out.error, out.attempts)
            self.drain_spool(only={ikey})  # straight on to the dead-letter queue if there is one
        else:
            self._spool(payload, "retries_exhausted", out.error, out.attempts)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def drain_spool(self, only: set[str] | None = None) -> int:
        """Try spooled entries once each (in order); returns how many were settled."""
        entries = self.spool.entries()
        if only is not None:
            entries = [e for e in entries if e["idempotency_key"] in only]
        done: set[str] = set()
        changed: dict[str, dict[str, Any]] = {}
        for e in entries:
            ikey = e["idempotency_key"]
            # Without a dead-letter queue nothing is given up on: failed entries are retried forever.
            give_up = e.get("reason") == "rejected" or (
                self.dead_letter is not None and e.get("attempts", 0) >= self.spool_max_attempts
            )
            if not give_up:
                if only is None and (self._stopping.is_set() or not self.q.empty()):
                    break  # fresh decisions first; and a closing runner does not start new calls
                out: Outcome = self.action.deliver(e["payload"], max_attempts=1)
                if out.status == "delivered":
                    done.add(ikey)
                    self._count("spool.redelivered")
                    continue
                e = {**e, "attempts": e.get("attempts", 0) + 1, "last_error": out.error}
                if out.status == "rejected":
                    e["reason"] = "rejected"
                changed[ikey] = e
                if out.status == "failed" and (
                    self.dead_letter is None or e["attempts"] < self.spool_max_attempts
                ):
                    break  # still failing: the outage is not over
            if self.dead_letter is not None:
                err = self.dead_letter.send(e)
                if err is None:
                    done.add(ikey)
                    changed.pop(ikey, None)
                    self._count("spool.dead_lettered")
                    log.error("block %s moved to the dead-letter queue (%s)", ikey, e.get("last_error"))
                else:
                    log.error("dead-letter queue unavailable (%s); block %s stays spooled", err, ikey)
        if done or changed:
            self.spool.update(done, changed)
        return len(done)

    # -- control ----------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Wait for the queue to empty; whatever is still waiting after ``timeout`` goes to the spool."""
        if self._thread is None:
            return
        deadline = time.monotonic() + (self.flush_timeout_s if timeout is None else timeout)
        while self.q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        if not self.q.unfinished_tasks:
            return
        while True:
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self._spool(item, "flush_timeout", "not delivered within the flush timeout")
            self.q.task_done()
        with self._lock:
            inflight = self._inflight
            if inflight is not None:
                self._spooled_inflight.add(inflight["idempotency_key"])
        if inflight is not None:
            self._spool(inflight, "flush_timeout", "still being delivered at the flush timeout")

    def pending(self) -> list[dict[str, Any]]:
        """Spooled entries still to be delivered (not those the Lambda rejected), for a snapshot."""
        return [e for e in self.spool.entries() if e.get("reason") != "rejected"]

    def adopt(self, entries: list[dict[str, Any]]) -> int:
        """Spool the entries (from a restored snapshot) this spool lacks, and drain them soon.

        Their first spool may be gone with its worker's disk. One already delivered meanwhile is
        answered ``duplicate`` by the block Lambda (idempotent on the key).
        """
        have = {e["idempotency_key"] for e in self.spool.entries()}
        new = [
            e
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("payload"), dict)
            and e.get("idempotency_key") not in have
        ]
        for e in new:
            self.spool.append(e)
        if new:
            with self._lock:
                self.counts["adopted"] += len(new)
            self.wake_drain()
        return len(new)

    def wake_drain(self) -> None:
        """Drain the spool at the worker's next idle moment (e.g. after an operator fixed the function)."""
        self._next_drain = 0.0
        self._ensure_thread()

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self.q.put(_STOP)
            self._thread.join(timeout=self.action.cfg.read_timeout_s + 5)

    def stats(self) -> dict[str, int]:
        with self._lock:
            out = {f"delivery.{k}": v for k, v in sorted(self.counts.items())}
        out["delivery.queued"] = self.q.qsize()
        out["delivery.invocations"] = self.action.invocations
        out["delivery.retries"] = self.action.retries
        out["spool.pending"] = len(self.spool)
        out["spool.corrupt_lines"] = self.spool.corrupt_lines
        return out
