"""When to checkpoint, and what to do when the daemon answers a checkpoint with an error."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Protocol

from consumer.kcl.config import CheckpointConfig

log = logging.getLogger(__name__)

# Error names the MultiLangDaemon sends back (KCL exception class simple names).
RETRYABLE = frozenset({"ThrottlingException", "KinesisClientLibDependencyException"})
FATAL = frozenset({"ShutdownException", "InvalidStateException"})


class Checkpointer(Protocol):
    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


class Outcome(enum.Enum):
    DONE = "done"
    RETRY_LATER = "retry_later"  # throttled past the retries: keep going, try at the next due point
    STOPPED = "stopped"  # shutdown / invalid state: this processor must not checkpoint any more


class CheckpointPolicy:
    """Due every ``every_records`` records or ``every_s`` seconds of wall clock, whichever first."""

    def __init__(self, cfg: CheckpointConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_records = cfg.every_records
        self.every_s = cfg.every_s
        self.clock = clock
        self.pending = 0
        self.last = clock()
        self.backing_off = False

    def record(self, n: int) -> None:
        self.pending += n

    def due(self) -> bool:
        if self.pending == 0:
            return False
        waited = self.clock() - self.last
        if self.backing_off:  # the last one failed: the next try on the time rule only
            return waited >= self.every_s
        return self.pending >= self.every_records or waited >= self.every_s

    def done(self) -> None:
        self.pending = 0
        self.last = self.clock()
        self.backing_off = False

    def failed(self) -> None:
        """A due checkpoint could not be made (its snapshot not saved): try again ``every_s`` later,
        not at every batch; each try serialises the whole state and calls the store."""
        self.last = self.clock()
        self.backing_off = True


def error_name(exc: BaseException) -> str:
    """amazon_kclpy's CheckpointError carries the Java exception's name in ``.value``."""
    return str(getattr(exc, "value", "") or type(exc).__name__)


def checkpoint_with_retry(
    checkpointer: Checkpointer,
    sequence_number: str | None,
    sub_sequence_number: int | None,
    cfg: CheckpointConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """One checkpoint: retried with doubling backoff while throttled; fatal kinds stop checkpointing."""
    from amazon_kclpy.checkpoint_error import CheckpointError

    delay = cfg.backoff_s
    for attempt in range(cfg.max_retries + 1):
        try:
            checkpointer.checkpoint(sequence_number, sub_sequence_number)
            return Outcome.DONE
        except CheckpointError as exc:
            name = error_name(exc)
            if name in FATAL:
                log.warning("checkpoint refused (%s): this processor stops checkpointing", name)
                return Outcome.STOPPED
            if name not in RETRYABLE:
                log.error("checkpoint failed (%s): will try again at the next checkpoint", name)
                return Outcome.RETRY_LATER
            if attempt == cfg.max_retries:
                break
            log.info("checkpoint %s, retry %d in %.2f s", name, attempt + 1, delay)
            sleep(delay)
            delay *= 2
    log.warning("checkpoint still throttled after %d retries: will try again later", cfg.max_retries)
    return Outcome.RETRY_LATER
