"""What the actions part decided about one finding, and why: the unit that is counted and recorded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["block", "alert", "shadow", "refused"]


def iso8601(epoch_s: float) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``: what decision lines and payloads carry."""
    t = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Decision:
    """One finding after the guard.

    ``action`` is what happens: ``block`` (sent to the block Lambda unless ``dry_run``), ``alert``
    (an alert line), ``shadow`` (recorded only) or ``refused`` (the guard said no; ``reason`` says
    why: allowlisted, cooldown...). ``block_duration_s`` is set for blocks only. ``idempotency_key``
    is derived from event-time facts, never wall time, so replaying the same records gives the same
    key and the block Lambda applies the block once.
    """

    key: str
    key_type: str
    detector: str
    score: float
    threshold: float
    window: str
    window_s: int
    event_time: float
    evidence: dict[str, Any]
    action: Action
    reason: str
    idempotency_key: str
    decided_at: float  # wall clock, epoch seconds
    block_duration_s: int | None = None
    offence: int = 0  # the key's n-th block (escalation), 0 when not a block
    mode: str = "block"  # the detector's configured mode
    dry_run: bool = False

    def to_record(self) -> dict[str, Any]:
        """JSON-able, one decision line (``cfguard replay --decisions-out``)."""
        rec: dict[str, Any] = {
            "key": self.key,
            "key_type": self.key_type,
            "detector": self.detector,
            "score": round(float(self.score), 6),
            "threshold": self.threshold,
            "action": self.action,
            "reason": self.reason,
            "mode": self.mode,
            "event_time": iso8601(self.event_time),
            "window": self.window,
            "window_s": self.window_s,
            "evidence": self.evidence,
            "idempotency_key": self.idempotency_key,
            "decided_at": iso8601(self.decided_at),
            "block_duration_s": self.block_duration_s,
            "offence": self.offence,
            "dry_run": self.dry_run,
        }
        return rec
