"""What the fault tests share: a fresh stream per test, abuser traffic, block and blocklist checks."""

from __future__ import annotations

from typing import Any

from consumer.local_stack import StackInfo, boto_client
from tests.kcl.harness import invocations
from tests.kcl.protocol import line45

SHARD0 = "shardId-000000000000"
T0 = 1_700_000_000.0


def new_stream(stack: StackInfo, name: str, shards: int = 1) -> str:
    k = boto_client("kinesis", stack.endpoint, stack.spec.region)
    k.create_stream(StreamName=name, ShardCount=shards)
    k.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def traffic(ips: list[str], start: float, per_ip: int = 60, others: int = 40, tag: str = "1") -> list[bytes]:
    """``per_ip`` requests from each abuser within 6 s of event time, plus one-off visitors."""
    out = [line45(start + i * 0.1, ip) for ip in ips for i in range(per_ip)]
    out += [line45(start + 7 + i * 0.05, f"10.{tag}.{i // 200}.{i % 200}") for i in range(others)]
    return [x.encode() if isinstance(x, str) else x for x in out]


def block_invocations(stack: StackInfo, ips: set[str]) -> list[dict[str, Any]]:
    return [x for x in invocations(stack) if x["op"] == "block" and x["key"] in ips]


def blocklist(stack: StackInfo, ips: set[str]) -> dict[str, dict[str, Any]]:
    """The block Lambda's table rows for these keys (what "the block is in effect" means)."""
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    rows: dict[str, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=stack.spec.blocklist_table):
        for it in page["Items"]:
            flat = {k: next(iter(v.values())) for k, v in it.items()}
            if any(ip in str(flat.get("pk", "")) for ip in ips):
                rows[str(flat["pk"])] = flat
    return rows
