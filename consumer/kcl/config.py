"""KCL / deployment configuration.

PLACEHOLDER owned by the KCL work: replace freely, keeping ``KclConfig``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class KclConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stream_name: str = "cfguard-realtime-logs"
    application_name: str = "cfguard"
    region: str = "us-east-1"
