"""The function's settings, from its environment variables (validated once per container)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# AWS default quota: 10,000 addresses per WAFv2 IP set.
WAF_IP_SET_LIMIT = 10_000


@dataclass(frozen=True)
class IPSetRef:
    name: str
    id: str
    scope: str  # CLOUDFRONT or REGIONAL

    @classmethod
    def from_arn(cls, arn: str) -> IPSetRef:
        """``arn:aws:wafv2:REGION:ACCOUNT:(global|regional)/ipset/NAME/ID``."""
        try:
            resource = arn.split(":", 5)[5]
            kind, what, name, ident = resource.split("/")
        except (IndexError, ValueError):
            raise ValueError(f"not a WAFv2 IP set ARN: {arn!r}") from None
        if what != "ipset" or kind not in ("global", "regional"):
            raise ValueError(f"not a WAFv2 IP set ARN: {arn!r}")
        return cls(name, ident, "CLOUDFRONT" if kind == "global" else "REGIONAL")


@dataclass(frozen=True)
class Settings:
    table_name: str
    ip_key_types: frozenset[str]
    ipv4_set: IPSetRef | None
    ipv6_set: IPSetRef | None
    waf_max_addresses: int = WAF_IP_SET_LIMIT
    waf_lock_retries: int = 8
    idempotency_ttl_s: int = 30 * 86_400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        table = e.get("BLOCKLIST_TABLE", "").strip()
        if not table:
            raise ValueError("environment variable BLOCKLIST_TABLE is not set")
        v4 = e.get("WAF_IPV4_SET_ARN", "").strip()
        v6 = e.get("WAF_IPV6_SET_ARN", "").strip()
        return cls(
            table_name=table,
            ip_key_types=frozenset(t.strip() for t in e.get("IP_KEY_TYPES", "ip").split(",") if t.strip()),
            ipv4_set=IPSetRef.from_arn(v4) if v4 else None,
            ipv6_set=IPSetRef.from_arn(v6) if v6 else None,
            waf_max_addresses=int(e.get("WAF_MAX_ADDRESSES", WAF_IP_SET_LIMIT)),
            waf_lock_retries=int(e.get("WAF_LOCK_RETRIES", 8)),
            idempotency_ttl_s=int(e.get("IDEMPOTENCY_TTL_S", 30 * 86_400)),
        )
