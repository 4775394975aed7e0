"""The record processor one KCL child process runs for one shard lease (amazon_kclpy v3 interface).

Per batch: decode and de-aggregate the records, drop those already covered by the restored snapshot,
run the lines through the pipeline. Checkpoints (every N records or T seconds, and always on
shutdownRequested and shardEnded, never on leaseLost) go: flush actions -> write the snapshot
tagged with the last position -> checkpoint at that position. A checkpoint therefore never points
past state that is not saved, and a restart resumes from the checkpoint with the state that saw it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from amazon_kclpy.v3 import processor as kcl_processor

from consumer import snapshots
from consumer.kcl.checkpoint import CheckpointPolicy, Outcome, checkpoint_with_retry
from consumer.kcl.config import KclConfig
from consumer.kcl.records import Position, decode, parse_position
from consumer.kcl.status import StatusWriter
from consumer.metrics import MetricsConfig, MetricsEmitter

log = logging.getLogger(__name__)

RESTORE_RETRY_FIRST_S = 0.5  # first wait when the snapshot store can't be read at restore


class PipelineLike(Protocol):
    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Any]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def snapshot(self) -> bytes: ...
    def restore(self, blob: bytes) -> None: ...
    def stats(self) -> dict[str, Any]: ...


class ShardProcessor(kcl_processor.RecordProcessorBase):
    def __init__(
        self,
        cfg: KclConfig,
        pipeline_factory: Callable[[], PipelineLike],
        store: snapshots.SnapshotStore | None,
        *,
        parents_of: Callable[[str], list[str]] | None = None,
        reconfigure: Callable[[PipelineLike], PipelineLike | None] | None = None,
        metrics: MetricsConfig | None = None,
        role: str = "single",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.pipeline_factory = pipeline_factory
        self.store = store
        self.parents_of = parents_of
        self.reconfigure = reconfigure  # a new pipeline carrying the state when the config changed
        self.metrics_cfg = metrics
        self.metrics_emitter: MetricsEmitter | None = None
        self.role = role  # topology.role: the metrics' Role dimension (both stages share names)
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock  # metrics timestamps
        self.policy = CheckpointPolicy(cfg.checkpoint, clock)
        self.shard_id = ""
        self.pipeline: PipelineLike | None = None
        self.covered: Position | None = None  # user records at or before this are in the restored state
        self.last_user: Position | None = None  # last user record processed (snapshot tag)
        self.last_delivered: tuple[str, int] | None = None  # last record as the daemon sent it (checkpoint)
        self.checkpointing = True
        self.status: StatusWriter | None = None
        self.counters = {
            "records": 0,
            "skipped_redelivered": 0,
            "undecodable": 0,
            "batch_errors": 0,
            "decisions": 0,
            "checkpoints": 0,
            "checkpoint_failures": 0,
            "snapshot_failures": 0,
            "restore_failures": 0,
        }
        self.restore_waiting_since: float | None = None  # the snapshot store is unreadable at restore
        self.millis_behind_latest: int | None = None
        self.restored_from: str | None = None
        self.started = clock()

    # -- lifecycle -----------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        checkpoint = parse_position(initialize_input.sequence_number, initialize_input.sub_sequence_number)
        try:
            self.pipeline = self.pipeline_factory()
        except Exception:
            # Nothing can be processed without it: exit so the daemon sees a failed processor.
            log.critical("shard %s: cannot build the pipeline; exiting", self.shard_id, exc_info=True)
            raise SystemExit(1) from None
        if self.cfg.status_dir is not None:
            self.status = StatusWriter(
                self.cfg.status_dir,
                self.shard_id,
                decisions_max_bytes=self.cfg.status_decisions_max_bytes,
                decisions_keep=self.cfg.status_decisions_keep,
            )
        if self.metrics_cfg is not None and self.metrics_cfg.enabled:
            self.metrics_emitter = MetricsEmitter(
                self.metrics_cfg, self.shard_id, role=self.role, clock=self.wall_clock
            )
        self._restore(checkpoint, initialize_input.sequence_number)
        log.info(
            "shard %s: starting at %s%s",
            self.shard_id,
            initialize_input.sequence_number,
            f", state restored from {self.restored_from}" if self.restored_from else "",
        )
        self._publish(force=True)

    def _restore(self, checkpoint: Position | None, raw: str | None) -> None:
        assert self.pipeline is not None
        if self.store is None:
            return
        snap = self._load_snapshot(checkpoint)
        if snap is not None:
            if not self._apply(snap.blob, f"{self.shard_id}@{snap.position[0]}"):
                return
            self.covered = snap.position
            self.restored_from = f"{self.shard_id}@{snap.position[0]}.{snap.position[1]}"
            if checkpoint is not None and snap.position < checkpoint:
                log.warning(
                    "shard %s: newest snapshot is before the checkpoint: records in between are not in "
                    "the restored state",
                    self.shard_id,
                )
            return
        if checkpoint is None and raw in (None, "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP") and self.parents_of:
            self._restore_from_parents()

    def _load_snapshot(self, checkpoint: Position | None) -> snapshots.Snapshot | None:
        """The snapshot for ``checkpoint``; while the store cannot be read, wait and try again.

        Starting without it would apply the records after the checkpoint to an empty state and then
        checkpoint past them: the state would be lost for good. Meanwhile the records wait in the
        stream (and, decisions being in event time, are decided the same when they are read).
        A store that stays unreadable (a wrong bucket name, missing permissions) must be seen, not
        drown the log: the wait doubles up to ``snapshots.restore_retry_max_s``, one error line is
        logged at the first failure and then at most every ``snapshots.restore_log_every_s``, and the
        ``restore_pending`` (1/0) and ``restore_wait_s`` gauges plus the ``restore_failures`` counter
        go out with the metrics (the template's restore alarm watches ``restore_wait_s``).
        """
        assert self.store is not None
        snap_cfg = self.cfg.snapshots
        delay = RESTORE_RETRY_FIRST_S
        daemon_pid = os.getppid()
        failures = 0
        logged_at: float | None = None
        while True:
            try:
                snap = snapshots.load_for(self.store, self.shard_id, checkpoint)
            except Exception as exc:
                if os.getppid() != daemon_pid:  # the daemon is gone (stopped while we waited)
                    log.error("shard %s: the KCL daemon exited during the restore; exiting", self.shard_id)
                    raise SystemExit(1) from None
                now = self.clock()
                if self.restore_waiting_since is None:
                    self.restore_waiting_since = now
                failures += 1
                self.counters["restore_failures"] += 1
                if logged_at is None or now - logged_at >= snap_cfg.restore_log_every_s:
                    logged_at = now
                    log.error(
                        "shard %s: snapshot store unavailable at restore (%s: %s); %d failed tries in "
                        "%.0f s, retrying with backoff up to %.0f s (next in %.1f s, logged again in "
                        "%.0f s); the shard's records wait in the stream",
                        self.shard_id,
                        type(exc).__name__,
                        exc,
                        failures,
                        now - self.restore_waiting_since,
                        snap_cfg.restore_retry_max_s,
                        delay,
                        snap_cfg.restore_log_every_s,
                    )
                self._publish(force=True)
                self.sleep(delay)
                delay = min(delay * 2, snap_cfg.restore_retry_max_s)
                continue
            if self.restore_waiting_since is not None:
                log.warning(
                    "shard %s: snapshot store readable again after %d failed tries in %.0f s",
                    self.shard_id,
                    failures,
                    self.clock() - self.restore_waiting_since,
                )
                self.restore_waiting_since = None
            return snap

    def _apply(self, blob: bytes, what: str) -> bool:
        """Restore a snapshot; one the pipeline rejects (e.g. an older format) leaves a fresh state."""
        assert self.pipeline is not None
        try:
            self.pipeline.restore(blob)
            return True
        except Exception as exc:
            log.error(
                "shard %s: snapshot %s rejected (%s); starting with empty state", self.shard_id, what, exc
            )
            self.pipeline = self.pipeline_factory()
            return False

    def _restore_from_parents(self) -> None:
        assert self.pipeline is not None and self.store is not None and self.parents_of is not None
        try:
            parents = self.parents_of(self.shard_id)
        except Exception as exc:
            log.warning("shard %s: cannot look up parent shards (%s)", self.shard_id, exc)
            return
        found = [(p, s) for p in parents if (s := snapshots.latest(self.store, p)) is not None]
        if not found:
            return
        parent, snap = found[0]
        if not self._apply(snap.blob, f"{parent}@{snap.position[0]}"):
            return
        self.restored_from = f"parent {parent}@{snap.position[0]}.{snap.position[1]}"
        if len(found) > 1:
            log.warning(
                "shard %s: merged from %s; state of %s is not merged (one snapshot is restored)",
                self.shard_id,
                ", ".join(p for p, _ in found),
                ", ".join(p for p, _ in found[1:]),
            )

    def process_records(self, process_records_input: Any) -> None:
        assert self.pipeline is not None
        records = process_records_input.records
        self.millis_behind_latest = process_records_input.millis_behind_latest
        if records:
            last = records[-1]
            self.last_delivered = (str(last.get("sequenceNumber")), int(last.get("subSequenceNumber") or 0))
        if self.reconfigure is not None:
            self._maybe_reconfigure()
        d = decode(records, self.covered)
        c = self.counters
        c["undecodable"] += d.undecodable
        c["skipped_redelivered"] += d.skipped
        if d.lines:
            try:
                positioned = getattr(self.pipeline, "process_positioned", None)  # re-keying stage
                if positioned is not None:
                    decisions = positioned(d.lines, d.positions, self.shard_id)
                else:
                    decisions = self.pipeline.process(d.lines, self.shard_id)
            except Exception:
                c["batch_errors"] += 1
                log.exception(
                    "shard %s: pipeline failed on a batch of %d records (%s..%s); batch counted as failed",
                    self.shard_id,
                    len(d.lines),
                    d.positions[0][0],
                    d.positions[-1][0],
                )
                decisions = []
            c["records"] += len(d.lines)
            self.last_user = d.positions[-1]
            if decisions:
                c["decisions"] += len(decisions)
                if self.status is not None:
                    self.status.decisions(decisions, {"shard_id": self.shard_id})
        self.policy.record(len(d.lines) + d.skipped)
        if self.policy.due():
            self._checkpoint(process_records_input.checkpointer, "periodic")
        self._publish(force=bool(d.lines))

    def _maybe_reconfigure(self) -> None:
        assert self.pipeline is not None and self.reconfigure is not None
        try:
            new = self.reconfigure(self.pipeline)
        except Exception:
            self.counters["reconfigure_failures"] = self.counters.get("reconfigure_failures", 0) + 1
            log.exception(
                "shard %s: the new config could not be applied; the current one stays", self.shard_id
            )
            return
        if new is not None:
            self.pipeline = new
            self.counters["reconfigured"] = self.counters.get("reconfigured", 0) + 1
            log.info("shard %s: new config applied, detector and guard state kept", self.shard_id)

    def lease_lost(self, lease_lost_input: Any) -> None:
        """Another worker owns the shard now: deliver pending actions, never checkpoint."""
        log.info("shard %s: lease lost; not checkpointing", self.shard_id)
        self.checkpointing = False
        self._close()

    def shard_ended(self, shard_ended_input: Any) -> None:
        """Resharding: save the final state for the children, then checkpoint SHARD_END (required)."""
        end = getattr(self.pipeline, "end_of_shard", None)  # re-keying stage: publish what it holds
        if end is not None:
            end()
        self._checkpoint(shard_ended_input.checkpointer, "shard end", shard_end=True)
        self._close()

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        self._checkpoint(shutdown_requested_input.checkpointer, "shutdown requested")
        self._close()

    # -- checkpointing -------------------------------------------------------------------------

    def _checkpoint(self, checkpointer: Any, why: str, shard_end: bool = False) -> bool:
        assert self.pipeline is not None
        if not self.checkpointing:
            return False
        try:
            self.pipeline.flush()
        except Exception:
            log.exception("shard %s: flushing actions failed before a checkpoint", self.shard_id)
        tag = self.last_user or self.covered
        if self.store is not None and tag is not None and (tag != self.covered or shard_end):
            snap = snapshots.Snapshot(self.shard_id, tag, self.pipeline.snapshot(), final=shard_end)
            try:
                snapshots.save_and_prune(self.store, snap, self.cfg.snapshots.keep)
                self.covered = tag
            except Exception as exc:
                self.counters["snapshot_failures"] += 1
                if not shard_end:
                    self.policy.failed()
                    log.error(
                        "shard %s: snapshot write failed (%s); not checkpointing, next try in %.0f s",
                        self.shard_id,
                        exc,
                        self.cfg.checkpoint.every_s,
                    )
                    return False
                log.error("shard %s: final snapshot write failed (%s)", self.shard_id, exc)
        if shard_end:
            seq, sub = None, None  # no argument: SHARD_END
        elif self.last_delivered is None:
            return True  # nothing delivered since start: nothing to checkpoint
        else:
            seq, sub = self.last_delivered
            durable = getattr(self.pipeline, "durable_position", None)  # re-keying stage holds a run
            held = durable() if durable is not None else None
            if held is False:
                return True  # nothing published since start: nothing to checkpoint
            if isinstance(held, tuple):
                seq, sub = str(held[0]), held[1]
        outcome = checkpoint_with_retry(checkpointer, seq, sub, self.cfg.checkpoint, self.sleep)
        if outcome is Outcome.DONE:
            self.counters["checkpoints"] += 1
            self.policy.done()
            log.info("shard %s: checkpoint (%s) at %s", self.shard_id, why, seq or "SHARD_END")
            self._publish(force=True)
            return True
        self.counters["checkpoint_failures"] += 1
        if outcome is Outcome.STOPPED:
            self.checkpointing = False
        return False

    def _close(self) -> None:
        if self.pipeline is None:
            return
        try:
            self.pipeline.close()
        except Exception:
            log.exception("shard %s: closing the pipeline failed", self.shard_id)
        self._publish(force=True, closed=True)

    def _publish(self, force: bool = False, closed: bool = False) -> None:
        if self.pipeline is None or (self.status is None and self.metrics_emitter is None):
            return
        try:
            pstats = self.pipeline.stats()
        except Exception:
            pstats = {}
        waiting = self.restore_waiting_since
        figures = {
            **self.counters,
            "restore_pending": int(waiting is not None),
            "restore_wait_s": round(self.clock() - waiting, 3) if waiting is not None else 0.0,
            "millis_behind_latest": self.millis_behind_latest,
            "restored_from": self.restored_from,
            "covered": list(self.covered) if self.covered else None,
            "uptime_s": round(self.clock() - self.started, 3),
            "closed": closed,
            "pipeline": pstats,
        }
        if self.status is not None:
            self.status.update(figures, force=force)
        if self.metrics_emitter is not None:
            try:
                self.metrics_emitter.observe(figures, force=closed)
            except OSError:
                log.warning("shard %s: cannot write metrics", self.shard_id, exc_info=True)
