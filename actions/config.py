"""The ``actions:`` section of the config: guard, block delivery, spool and alerts.

Every value is validated up front (frozen pydantic models, unknown keys rejected) so a typo in a
safety setting (allowlist, breaker) is an error at start-up, never a silently ignored line.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowlistConfig(_Section):
    """Keys that are never blocked: networks (IPv4/IPv6) and exact keys per key type."""

    cidrs: tuple[str, ...] = Field((), description="never block an IP key inside (or overlapping) these")
    keys: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="key type -> exact keys never blocked, e.g. {user: [monitoring]}"
    )

    @field_validator("cidrs")
    @classmethod
    def _valid_cidrs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for text in v:
            try:
                out.append(str(ipaddress.ip_network(text.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"not an IPv4/IPv6 address or CIDR: {text!r}") from None
        return tuple(out)

    def networks(self) -> tuple[IPNetwork, ...]:
        return tuple(ipaddress.ip_network(c) for c in self.cidrs)


class EscalationConfig(_Section):
    """Block duration for the n-th block of one key: ``min(first_s * factor**(n-1), max_s)``."""

    first_s: int = Field(600, ge=1, description="first block of a key")
    factor: float = Field(4.0, ge=1.0, description="each repeat block lasts this many times longer")
    max_s: int = Field(7 * 86_400, ge=1, description="cap")
    memory_s: int = Field(
        30 * 86_400,
        ge=1,
        description="a key's offences are forgotten this long (event time) after its last block",
    )

    @model_validator(mode="after")
    def _cap(self) -> EscalationConfig:
        if self.max_s < self.first_s:
            raise ValueError(f"max_s ({self.max_s}) is shorter than first_s ({self.first_s})")
        return self

    def duration(self, offence: int) -> int:
        if offence < 1:
            raise ValueError("offence numbers start at 1")
        # Grow in float but stop early: factor**n overflows long before n gets large.
        d = float(self.first_s)
        for _ in range(offence - 1):
            d *= self.factor
            if d >= self.max_s:
                return self.max_s
        return min(int(d), self.max_s)


class BreakerConfig(_Section):
    """More than ``max_blocks`` blocks within ``per_s`` (event time) switches blocking to alert-only."""

    max_blocks: int = Field(50, ge=1)
    per_s: int = Field(60, ge=1)
    reset_after_s: int | None = Field(
        3600,
        ge=1,
        description="event-time seconds after tripping until blocking resumes; null = operator only",
    )
    reset_file: Path | None = Field(
        None, description="an operator resets the breaker by touching this file (mtime after the trip)"
    )


class GuardConfig(_Section):
    cooldown_s: int = Field(
        300, ge=0, description="after a block (at least) or an alert, the same key is not acted on again"
    )
    max_tracked_keys: int = Field(200_000, ge=1, description="bound on per-key guard state (oldest dropped)")
    allowlist: AllowlistConfig = AllowlistConfig()
    escalation: EscalationConfig = EscalationConfig()
    breaker: BreakerConfig = BreakerConfig()


class BlockLambdaConfig(_Section):
    """How blocks reach the block Lambda (``infra/block_lambda``)."""

    function_name: str | None = Field(None, description="name or ARN; required unless dry-run")
    region: str | None = None
    endpoint_url: str | None = Field(None, description="only for tests/local stacks")
    invocation_type: Literal["RequestResponse", "Event"] = "RequestResponse"
    max_attempts: int = Field(5, ge=1, le=20, description="tries per delivery before spooling")
    base_delay_s: float = Field(0.2, ge=0, description="first backoff; doubles per attempt, full jitter")
    max_delay_s: float = Field(5.0, ge=0)
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0, description="longer than the function's own run time")
    queue_size: int = Field(
        1000, ge=1, description="decisions waiting for delivery; beyond it they are spooled"
    )
    flush_timeout_s: float = Field(
        10.0, ge=0, description="flush() waits this long for the queue; the rest goes to the spool"
    )


class SpoolConfig(_Section):
    """Failed deliveries: a local fsync'ed JSONL file retried later, optionally an SQS dead-letter queue."""

    path: Path = Field(Path("cfguard-spool.jsonl"), description="local durable spool")
    retry_interval_s: float = Field(30.0, gt=0, description="wall-clock seconds between spool drains")
    max_attempts: int = Field(
        20, ge=1, description="drain attempts per entry before it moves to the dead-letter queue (if any)"
    )
    dead_letter_queue_url: str | None = Field(None, description="SQS queue for entries the spool gives up on")
    sqs_region: str | None = None
    sqs_endpoint_url: str | None = None


class AlertConfig(_Section):
    """Alert lines: one JSON object per block/alert decision, on stderr or appended to a file."""

    enabled: bool = True
    path: Path | None = Field(None, description="append here; default stderr")
    pseudonymise: bool = Field(False, description="replace keys by a keyed HMAC in alerts and logs")
    hmac_key_env: str = Field(
        "CFGUARD_PSEUDONYM_KEY", description="environment variable holding the HMAC key"
    )
    log_keys: bool = Field(False, description="allow keys in clear in log messages (default: never)")


class BlocklistConfig(_Section):
    """Where the block Lambda keeps the blocklist (read by ``cfguard blocks``)."""

    table_name: str = "cfguard-blocklist"
    region: str | None = None
    endpoint_url: str | None = None


class ActionsConfig(_Section):
    dry_run: bool = Field(True, description="decide and record, but invoke nothing and alert nothing")
    guard: GuardConfig = GuardConfig()
    block: BlockLambdaConfig = BlockLambdaConfig()
    spool: SpoolConfig = SpoolConfig()
    alert: AlertConfig = AlertConfig()
    blocklist: BlocklistConfig = BlocklistConfig()
