"""The block Lambda's event: one pydantic model shared by the sender (actions) and the handler.

Self-contained (pydantic and the standard library only) because the Lambda package ships this file.
``op`` selects the operation: ``block`` (from the action), ``unblock`` (operator), ``expire``
(scheduled: remove WAF entries whose block has ended).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

PAYLOAD_VERSION = 1
MAX_EVIDENCE_BYTES = 32_768


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = PAYLOAD_VERSION


class BlockPayload(_Event):
    op: Literal["block"] = "block"
    key: str = Field(min_length=1, max_length=4096)
    key_type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    detector: str = Field(min_length=1, max_length=128)
    score: float = Field(ge=0, allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    window: str = Field(min_length=1, max_length=32)
    evidence: dict[str, Any] = Field(default_factory=dict)
    block_duration_s: int = Field(ge=1, le=366 * 86_400)
    event_time: dt.datetime
    decided_at: dt.datetime
    idempotency_key: str = Field(pattern=r"^[0-9a-f]{16,64}$")

    @field_validator("event_time", "decided_at")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("must carry a timezone (ISO-8601 with Z or an offset)")
        return v.astimezone(dt.UTC)

    @field_validator("evidence")
    @classmethod
    def _small_evidence(cls, v: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(v, default=str))
        if size > MAX_EVIDENCE_BYTES:
            raise ValueError(f"evidence is {size} bytes of JSON, more than {MAX_EVIDENCE_BYTES}")
        return v


class UnblockPayload(_Event):
    op: Literal["unblock"] = "unblock"
    key: str = Field(min_length=1, max_length=4096)
    key_type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    reason: str = Field("operator", max_length=512)
    requested_by: str = Field("unknown", max_length=256)


class ExpirePayload(_Event):
    op: Literal["expire"] = "expire"


Event = Annotated[BlockPayload | UnblockPayload | ExpirePayload, Field(discriminator="op")]
EVENT = TypeAdapter(Event)


def trim_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence within the payload bound: scalars kept, big lists/dicts dropped (and named)."""
    if len(json.dumps(evidence, default=str)) <= MAX_EVIDENCE_BYTES:
        return evidence
    kept = {k: v for k, v in evidence.items() if isinstance(v, str | int | float | bool) or v is None}
    kept = {k: (v[:256] if isinstance(v, str) else v) for k, v in kept.items()}
    kept["_trimmed"] = sorted(set(evidence) - set(kept))
    return kept
