"""The action runner: findings in, decisions out; blocks delivered in the background, alerts written.

``submit`` runs the guard on the calling (record-processing) thread, which only costs dictionary
look-ups, writes alert lines and hands block payloads to the bounded delivery queue; it never waits
for the network. In dry-run nothing leaves the process: no invocation, no alert line, no spool, but
the guard runs exactly as live (so a dry-run replay shows the live decisions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from actions.alert import AlertSink
from actions.config import ActionsConfig
from actions.dead_letter import DeadLetterQueue
from actions.decision import Decision
from actions.delivery import Delivery
from actions.guard import Guard
from actions.lambda_action import LambdaAction, build_payload
from actions.pseudonym import Pseudonymiser
from actions.spool import Spool
from detectors.finding import Finding

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1


class ActionRunner:
    def __init__(
        self,
        cfg: ActionsConfig,
        *,
        dry_run: bool | None = None,
        clock: Callable[[], float] = time.time,
        lambda_client: Any = None,
        sqs_client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        alert_stream: Any = None,
    ) -> None:
        self.cfg = cfg
        self.dry_run = cfg.dry_run if dry_run is None else dry_run
        self.clock = clock
        self.pseudo = Pseudonymiser(cfg.alert)
        self.guard = Guard(cfg.guard, wall=clock, dry_run=self.dry_run)
        self.alerts: AlertSink | None = None
        self.delivery: Delivery | None = None
        self.invalid_payloads = 0
        if self.dry_run:
            return
        if cfg.alert.enabled:
            self.alerts = AlertSink(cfg.alert.path, self.pseudo, stream=alert_stream)
        action = LambdaAction(cfg.block, client=lambda_client, sleep=sleep)
        dlq = DeadLetterQueue(cfg.spool, sqs_client) if cfg.spool.dead_letter_queue_url else None
        self.delivery = Delivery(
            action,
            Spool(cfg.spool.path),
            dead_letter=dlq,
            queue_size=cfg.block.queue_size,
            retry_interval_s=cfg.spool.retry_interval_s,
            spool_max_attempts=cfg.spool.max_attempts,
            flush_timeout_s=cfg.block.flush_timeout_s,
            wall=clock,
        )
        if len(self.delivery.spool):
            # Left by a previous run: the worker drains them at once.
            self.delivery.wake_drain()

    def submit(self, findings: Iterable[Finding]) -> list[Decision]:
        out = []
        for f in findings:
            d = self.guard.decide(f)
            out.append(d)
            if d.action == "block":
                if self.delivery is not None:
                    try:
                        payload = build_payload(d)
                    except ValueError:  # the guard checks findings; this is the last line of defence
                        log.exception("block %s: payload invalid, not delivered", d.idempotency_key)
                        self.invalid_payloads += 1
                    else:
                        self.delivery.enqueue(payload)
                if d.offence > 1 and log.isEnabledFor(logging.INFO):
                    log.info(
                        "repeat block of %s %s (offence %d, %d s)",
                        d.key_type,
                        self.pseudo.log(d.key),
                        d.offence,
                        d.block_duration_s,
                    )
            if self.alerts is not None and d.action in ("block", "alert"):
                self.alerts.emit(d)
        return out

    def flush(self) -> None:
        """Everything submitted so far is delivered or durably spooled when this returns."""
        if self.delivery is not None:
            self.delivery.flush()

    def close(self) -> None:
        if self.delivery is not None:
            self.delivery.close()
        if self.alerts is not None:
            self.alerts.close()

    def reset_breaker(self) -> None:
        self.guard.breaker.reset("operator")

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": SNAPSHOT_VERSION, "guard": self.guard.snapshot()}
        if self.delivery is not None:
            # The guard state counts these blocks as done: whoever restores this snapshot (another
            # worker, with its own disk and spool) must deliver them, or they are lost with this disk.
            out["pending"] = self.delivery.pending()
        return out

    def restore(self, obj: Any) -> None:
        if not isinstance(obj, dict) or obj.get("version") != SNAPSHOT_VERSION:
            raise ValueError("actions snapshot has an unknown format or version")
        self.guard.restore(obj["guard"])
        pending = obj.get("pending") or []
        if self.delivery is not None and pending:
            adopted = self.delivery.adopt(pending)
            if adopted:
                log.info("%d undelivered block(s) from the snapshot added to the spool", adopted)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dry_run": int(self.dry_run), **self.guard.stats()}
        if self.alerts is not None:
            out["alerts.written"] = self.alerts.written
        if self.delivery is not None:
            out.update(self.delivery.stats())
            out["delivery.invalid_payload"] = self.invalid_payloads
        return out
