"""What a detector says about one key: the score, and the figures that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["block", "alert", "shadow"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's verdict on one key at one event time.

    ``score`` is value / threshold, so 1.0 is exactly the threshold; a finding is only emitted at
    ``score >= 1.0``. ``evidence`` holds plain JSON-able figures (numbers, strings, small lists):
    what an operator needs to see to agree with the verdict, and for ML the top contributing features.
    """

    key: str
    key_type: str
    detector: str  # the detector's configured name
    score: float
    threshold: float
    window: str  # e.g. "1h", "5m"
    window_s: int
    event_time: float  # epoch seconds of the record that completed the verdict
    mode: Mode
    evidence: dict[str, Any] = field(default_factory=dict)
