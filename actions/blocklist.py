"""Reading the block Lambda's DynamoDB blocklist (for operators: ``cfguard blocks``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3

from actions.config import BlocklistConfig


@dataclass(frozen=True, slots=True)
class BlockEntry:
    key: str
    key_type: str
    detector: str
    score: float
    status: str  # active, unblocked, expired
    blocked_at: int
    expires_at: int
    waf_status: str
    idempotency_key: str

    def active(self, now: float) -> bool:
        return self.status == "active" and self.expires_at > now


def _value(v: dict[str, Any]) -> Any:
    if "S" in v:
        return v["S"]
    if "N" in v:
        n = Decimal(v["N"])
        return int(n) if n == n.to_integral_value() else float(n)
    return None


class BlocklistReader:
    def __init__(self, cfg: BlocklistConfig, client: Any = None) -> None:
        self.table = cfg.table_name
        self.client = client or boto3.client(
            "dynamodb", region_name=cfg.region, endpoint_url=cfg.endpoint_url
        )

    def entries(self) -> list[BlockEntry]:
        kw: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": "block#"}},
        }
        out = []
        while True:
            page = self.client.scan(**kw)
            for item in page.get("Items", []):
                d = {k: _value(v) for k, v in item.items()}
                out.append(
                    BlockEntry(
                        key=str(d.get("key", "")),
                        key_type=str(d.get("key_type", "")),
                        detector=str(d.get("detector", "")),
                        score=float(d.get("score") or 0.0),
                        status=str(d.get("status", "")),
                        blocked_at=int(d.get("blocked_at") or 0),
                        expires_at=int(d.get("expires_at") or 0),
                        waf_status=str(d.get("waf_status", "")),
                        idempotency_key=str(d.get("idempotency_key", "")),
                    )
                )
            if "LastEvaluatedKey" not in page:
                break
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(out, key=lambda e: (e.expires_at, e.key_type, e.key))

    def active(self, now: float | None = None) -> list[BlockEntry]:
        t = time.time() if now is None else now
        return [e for e in self.entries() if e.active(t)]
