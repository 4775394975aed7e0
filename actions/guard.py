"""The decision guard: turns a finding into a safe decision (or a refusal that says why).

Order of checks for a ``block`` finding: allowlist -> cooldown (one abuser is blocked once, not a
thousand times) -> escalation (the n-th block lasts longer, capped) -> circuit breaker (a burst of
blocks downgrades to alerts). ``alert`` findings get the allowlist and a per-detector cooldown;
``shadow`` findings are only recorded. All of it runs in event time so a replay decides the same.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from actions.allowlist import Allowlist
from actions.breaker import CircuitBreaker
from actions.config import GuardConfig
from actions.decision import Decision
from actions.idempotency import idempotency_key
from actions.key_state import AlertMemory, KeyStates
from detectors.finding import Finding

log = logging.getLogger(__name__)

_KEY_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _deliverable(f: Finding) -> bool:
    """What the block payload model will accept: checked here so a bad finding is refused, counted."""
    return (
        0 < len(f.key) <= 4096
        and bool(_KEY_TYPE.match(f.key_type))
        and 0 < len(f.detector) <= 128
        and 0 < len(f.window) <= 32
        and math.isfinite(f.score)
        and f.score >= 0
        and math.isfinite(f.threshold)
        and math.isfinite(f.event_time)
    )


class Guard:
    def __init__(
        self, cfg: GuardConfig, *, wall: Callable[[], float] = time.time, dry_run: bool = False
    ) -> None:
        self.cfg = cfg
        self.wall = wall
        self.dry_run = dry_run
        self.allowlist = Allowlist(cfg.allowlist)
        self.breaker = CircuitBreaker(cfg.breaker, wall)
        self.keys = KeyStates(cfg.max_tracked_keys)
        self.alerted = AlertMemory(cfg.max_tracked_keys)
        self.counts: Counter[str] = Counter()  # "action" and "action.reason"
        self._last_reminder = float("-inf")

    def decide(self, f: Finding) -> Decision:
        d = self._decide(f)
        self.counts[d.action] += 1
        self.counts[f"{d.action}.{d.reason}"] += 1
        return d

    def _make(self, f: Finding, action: str, reason: str, **kw: Any) -> Decision:
        offence = kw.pop("offence", 0)
        ikey = kw.pop("ikey", None) or idempotency_key(
            f.key_type, f.key, f.detector, f.event_time, f.window_s, offence
        )
        return Decision(
            key=f.key,
            key_type=f.key_type,
            detector=f.detector,
            score=float(f.score),
            threshold=float(f.threshold),
            window=f.window,
            window_s=int(f.window_s),
            event_time=float(f.event_time),
            evidence=dict(f.evidence),
            action=action,  # type: ignore[arg-type]
            reason=reason,
            idempotency_key=ikey,
            decided_at=self.wall(),
            mode=f.mode,
            offence=offence,
            dry_run=self.dry_run,
            **kw,
        )

    def _decide(self, f: Finding) -> Decision:
        if f.mode == "shadow":
            return self._make(f, "shadow", "shadow_mode")
        if f.mode not in ("block", "alert"):
            return self._make(f, "refused", "unknown_mode")
        if not _deliverable(f):
            return self._make(f, "refused", "invalid_finding")
        why = self.allowlist.match(f.key_type, f.key)
        if why is not None:
            return self._make(f, "refused", why)
        if f.mode == "alert":
            return self._alert(f, "alert_mode")
        return self._block(f)

    def _alert(self, f: Finding, reason: str) -> Decision:
        k = (f.key_type, f.key, f.detector)
        if f.event_time < self.alerted.until(k):
            return self._make(f, "refused", "cooldown")
        self.alerted.set(k, f.event_time + self.cfg.cooldown_s)
        return self._make(f, "alert", reason)

    def _block(self, f: Finding) -> Decision:
        t = f.event_time
        st = self.keys.get(f.key_type, f.key)
        if st is not None and t < st.blocked_until:
            return self._make(f, "refused", "cooldown")
        if not self.breaker.allow(t):
            self._remind()
            return self._alert(f, "circuit_breaker_open")
        st = self.keys.touch(f.key_type, f.key)
        if t - st.last_block > self.cfg.escalation.memory_s:
            st.offences = 0
        offence = st.offences + 1
        ikey = idempotency_key(f.key_type, f.key, f.detector, t, f.window_s, offence)
        duration = self.cfg.escalation.duration(offence)
        st.offences = offence
        st.last_block = t
        st.blocked_until = t + max(duration, self.cfg.cooldown_s)
        st.last_idempotency_key = ikey
        self.breaker.record_block(t)
        return self._make(f, "block", "threshold", offence=offence, ikey=ikey, block_duration_s=duration)

    def _remind(self) -> None:
        """While the breaker is open, say so again at most once a minute (wall clock)."""
        self.counts["breaker_downgraded"] += 1
        now = self.wall()
        if now - self._last_reminder >= 60.0:
            self._last_reminder = now
            log.error(
                "circuit breaker still open: %d block(s) downgraded to alerts so far; reset with "
                "`cfguard blocks reset-breaker` or wait for the timeout",
                self.counts["breaker_downgraded"],
            )

    def snapshot(self) -> dict[str, Any]:
        return {
            "keys": self.keys.snapshot(),
            "alerted": self.alerted.snapshot(),
            "breaker": self.breaker.snapshot(),
        }

    def restore(self, obj: dict[str, Any]) -> None:
        self.keys.restore(obj["keys"])
        self.alerted.restore(obj["alerted"])
        self.breaker.restore(obj["breaker"])

    def stats(self) -> dict[str, int]:
        out = {f"guard.{k}": v for k, v in sorted(self.counts.items())}
        out["guard.tracked_keys"] = len(self.keys)
        out["guard.evicted_keys"] = self.keys.evicted
        out["breaker_open"] = int(self.breaker.is_open)
        out["breaker_trips"] = self.breaker.trips
        out["breaker_resets"] = self.breaker.resets
        return out
