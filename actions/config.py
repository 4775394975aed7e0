"""Action configuration. PLACEHOLDER owned by the actions work: replace freely, keeping ``ActionsConfig``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ActionsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = True
