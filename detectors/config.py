"""Detector configuration: one validated spec per detector kind (a discriminated union on ``type``).

PLACEHOLDER owned by the detectors work: replace freely, keeping the names ``DetectorSpec``
(the union) and ``StateConfig``; every spec derives from ``detectors.spec_base.Strict``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from detectors.spec_base import Strict


class StateConfig(Strict):
    max_keys: int = Field(1_000_000, gt=0)
    idle_timeout_s: int = Field(86_400, gt=0)
    allowed_lateness_s: int = Field(60, ge=0)


class RuleSpec(Strict):
    type: Literal["rule"] = "rule"
    name: str
    key: str
    metric: str
    window: str = "1m"
    threshold: float = Field(gt=0)
    mode: Literal["block", "alert", "shadow"] = "alert"


DetectorSpec = Annotated[RuleSpec, Field(discriminator="type")]
