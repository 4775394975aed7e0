"""The DynamoDB blocklist: one item per blocked key, one per applied idempotency key, TTL ``expires_at``.

Table: partition key ``pk`` (string), TTL attribute ``expires_at`` (epoch seconds). Items:
``block#<key_type>#<key>`` (the current block of a key) and ``idem#<idempotency_key>`` (the
outcome of a block event already applied). A block and its idempotency item are written in one
transaction: both or neither.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from actions.payload import BlockPayload


def block_pk(key_type: str, key: str) -> str:
    return f"block#{key_type}#{key}"


def idem_pk(idempotency_key: str) -> str:
    return f"idem#{idempotency_key}"


def _num(x: float) -> Decimal:
    return Decimal(repr(float(x)))


class Duplicate(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("idempotency key already applied")
        self.item = item


class Blocklist:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def apply_block(
        self, p: BlockPayload, *, now: int, cidr: str | None, idem_ttl_s: int
    ) -> tuple[str, dict[str, Any]]:
        """Write the block; returns (``applied``|``existing_longer``, the block item).

        Raises Duplicate when ``p.idempotency_key`` was applied before. A block already in place that
        lasts longer is kept (and the idempotency key recorded): a replay of an old, shorter block
        never shortens a newer one.
        """
        expires = now + p.block_duration_s
        item = {
            "pk": {"S": block_pk(p.key_type, p.key)},
            "key": {"S": p.key},
            "key_type": {"S": p.key_type},
            "detector": {"S": p.detector},
            "score": {"N": str(_num(p.score))},
            "threshold": {"N": str(_num(p.threshold))},
            "window": {"S": p.window},
            "evidence": {"S": json.dumps(p.evidence, sort_keys=True, default=str)},
            "block_duration_s": {"N": str(p.block_duration_s)},
            "event_time": {"S": p.event_time.isoformat().replace("+00:00", "Z")},
            "decided_at": {"S": p.decided_at.isoformat().replace("+00:00", "Z")},
            "blocked_at": {"N": str(now)},
            "expires_at": {"N": str(expires)},
            "idempotency_key": {"S": p.idempotency_key},
            "status": {"S": "active"},
            "waf_status": {"S": "pending" if cidr else "none"},
        }
        if cidr:
            item["waf_cidr"] = {"S": cidr}
        idem = {
            "pk": {"S": idem_pk(p.idempotency_key)},
            "block_pk": {"S": block_pk(p.key_type, p.key)},
            "applied_at": {"N": str(now)},
            "expires_at": {"N": str(now + idem_ttl_s)},
        }
        put_idem = {
            "Put": {"TableName": self.table, "Item": idem, "ConditionExpression": "attribute_not_exists(pk)"}
        }
        put_block = {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :exp OR #st <> :active",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": {":exp": {"N": str(expires)}, ":active": {"S": "active"}},
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[put_idem, put_block])
            return "applied", item
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
        if codes and codes[0] == "ConditionalCheckFailed":
            raise Duplicate(self.get(idem_pk(p.idempotency_key)) or {})
        if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
            try:
                self.client.put_item(
                    TableName=self.table, Item=idem, ConditionExpression="attribute_not_exists(pk)"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise Duplicate(self.get(idem_pk(p.idempotency_key)) or {}) from None
                raise
            return "existing_longer", self.get(block_pk(p.key_type, p.key)) or {}
        raise RuntimeError(f"blocklist transaction cancelled: {codes}")

    def get(self, pk: str) -> dict[str, Any] | None:
        got = self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        return got.get("Item")

    def set_waf_status(self, pk: str, status: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET waf_status = :w",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":w": {"S": status}},
        )

    def end_block(self, pk: str, *, now: int, status: str, reason: str) -> dict[str, Any] | None:
        """Mark a block ended (``unblocked``/``expired``); returns the old item, or None if absent."""
        try:
            got = self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression="SET #st = :s, expires_at = :now, ended_at = :now, end_reason = :r",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={":s": {"S": status}, ":now": {"N": str(now)}, ":r": {"S": reason}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return got.get("Attributes")

    def blocks(self) -> list[dict[str, Any]]:
        """Every block item (any status); the blocklist is small (bounded by the WAF limit and TTL)."""
        out: list[dict[str, Any]] = []
        kw: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": "block#"}},
        }
        while True:
            page = self.client.scan(**kw)
            out.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain JSON-able values."""
    out: dict[str, Any] = {}
    for k, v in item.items():
        if "S" in v:
            out[k] = v["S"]
        elif "N" in v:
            n = Decimal(v["N"])
            out[k] = int(n) if n == n.to_integral_value() else float(n)
        elif "BOOL" in v:
            out[k] = v["BOOL"]
    return out
