"""The demo's terminal view: records/s, lag, top keys, blocks with their reasons.

On a terminal it redraws one screen in place; otherwise (CI, a pipe) it prints one plain line every
few seconds and each block once, so a log of the demo stays readable.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class View:
    """Everything one frame shows; the demo fills it from the producer, status files and the stack."""

    elapsed_s: float = 0.0
    duration_s: float = 0.0
    phase: str = "starting"
    sent: int = 0
    processed: int = 0
    send_rate: float = 0.0
    process_rate: float = 0.0
    millis_behind: int | None = None
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_ips: list[tuple[str, int]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    lambda_calls: int = 0
    blocklist: int = 0


def _fmt_evidence(ev: Any) -> str:
    if not isinstance(ev, dict):
        return ""
    parts = []
    # Figures first (they are what made the score), then the descriptive items.
    items = sorted(ev.items(), key=lambda kv: not isinstance(kv[1], (int, float)) or isinstance(kv[1], bool))
    for k, v in items[:4]:
        if isinstance(v, float):
            v = f"{v:,.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        elif isinstance(v, int):
            v = f"{v:,}"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def decision_line(d: dict[str, Any]) -> str:
    score = d.get("score")
    score_s = f"{score:.2f}x" if isinstance(score, (int, float)) else "?"
    when = str(d.get("event_time", ""))[11:19]
    return (
        f"{when} {d.get('action', '?'):7} {d.get('key_type', '?')}={d.get('key', '?')!s:<22} "
        f"{d.get('detector', '?'):26} {score_s:>6}  {d.get('reason', '')} {_fmt_evidence(d.get('evidence'))}"
    )


class Dashboard:
    def __init__(
        self, out: TextIO | None = None, tty: bool | None = None, plain_every_s: float = 5.0
    ) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._printed = 0

    def frame(self, v: View) -> str:
        lag = f"{v.millis_behind / 1000:.1f} s" if v.millis_behind is not None else "-"
        backlog = max(0, v.sent - v.processed)
        lines = [
            f"cfguard demo  [{v.phase}]  {v.elapsed_s:5.0f} / {v.duration_s:.0f} s   "
            "(generated traffic on a local stack; keys are synthetic)",
            "",
            f"  sent to Kinesis   {v.sent:>10,}   {v.send_rate:8,.0f} rec/s",
            f"  processed (KCL)   {v.processed:>10,}   {v.process_rate:8,.0f} rec/s   "
            f"lag {lag}  backlog {backlog:,}",
            "  shards            "
            + (
                ", ".join(f"{s}: {d.get('records', 0):,}" for s, d in sorted(v.shards.items()))
                or "waiting for leases"
            ),
            f"  block Lambda      {v.lambda_calls:,} invocations, {v.blocklist:,} entries in the blocklist",
            "",
            "  top client IPs (sent, last 30 s)",
        ]
        lines += [f"    {ip:<40} {n:>7,}" for ip, n in v.top_ips[:5]] or ["    -"]
        lines += ["", "  decisions (block / alert / refused, newest last)"]
        shown = [d for d in v.decisions if d.get("action") != "shadow"][-12:]
        lines += [f"    {decision_line(d)}" for d in shown] or ["    none yet"]
        return "\n".join(lines)

    def show(self, v: View, now: float | None = None) -> None:
        if self.tty:
            self.out.write("\x1b[H\x1b[2J" + self.frame(v) + "\n")
            self.out.flush()
            return
        for d in v.decisions[self._printed :]:
            self.out.write(f"decision: {decision_line(d)}\n")
        self._printed = len(v.decisions)
        now = time.monotonic() if now is None else now
        if now - self._last_plain >= self.plain_every_s:
            self._last_plain = now
            lag = f"{v.millis_behind / 1000:.1f}s" if v.millis_behind is not None else "-"
            self.out.write(
                f"[{v.elapsed_s:5.0f}s {v.phase}] sent {v.sent:,} ({v.send_rate:,.0f}/s) "
                f"processed {v.processed:,} ({v.process_rate:,.0f}/s) lag {lag} "
                f"decisions {len(v.decisions)} lambda {v.lambda_calls}\n"
            )
        self.out.flush()


class TopKeys:
    """Client IPs of the lines sent, over a sliding window of ticks (the second real-time field)."""

    def __init__(self, ticks: int = 60) -> None:
        self.ticks: list[Counter[str]] = []
        self.max_ticks = ticks

    def add(self, lines: list[bytes]) -> None:
        c: Counter[str] = Counter()
        for line in lines:
            parts = line.split(b"\t", 2)
            if len(parts) > 1:
                c[parts[1].decode("ascii", "replace")] += 1
        self.ticks.append(c)
        del self.ticks[: -self.max_ticks]

    def top(self, n: int = 5) -> list[tuple[str, int]]:
        total: Counter[str] = Counter()
        for c in self.ticks:
            total.update(c)
        return total.most_common(n)
