"""What the daemon fault tests share: their config, and reading the outcome back from the stack.

The outcome is read where it lands, not from the processor's word: the blocklist table the real
block Lambda writes, the stack's invocation log, the snapshots in S3 (their exact per-IP counts), the
lease table and each worker's status files.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from consumer import snapshots
from consumer.local_stack import StackInfo, boto_client
from tests.kcl.fault_pipeline import applied_counts, client_ip
from tests.kcl.harness import invocations, real_pipeline_sections, write_config
from tests.kcl.protocol import line45

SHARD0 = "shardId-000000000000"
FACTORY = "tests.kcl.fault_pipeline:from_config"
# Event times inside one minute bucket ([..._999_980, ..._000_040)): one idempotency key per block.
T0 = 1_700_000_000.0


def create_stream(stack: StackInfo, name: str, shards: int = 1) -> str:
    """A fresh stream per test (its name returned)."""
    kinesis = boto_client("kinesis", stack.endpoint, stack.spec.region)
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def traffic(ips: list[str], start: float, per_ip: int = 60, others: int = 40, tag: str = "1") -> list[bytes]:
    """``per_ip`` requests from each abuser within 6 s of event time, plus one-off visitors."""
    out = [line45(start + i * 0.1, ip) for ip in ips for i in range(per_ip)]
    out += [line45(start + 7 + i * 0.05, f"10.{tag}.{i // 200}.{i % 200}") for i in range(others)]
    return [x.encode() if isinstance(x, str) else x for x in out]


def fault_config(
    tmp: Path,
    stack: StackInfo,
    app: str,
    worker: str,
    threshold: int = 50,
    actions: dict[str, dict[str, Any]] | None = None,
    **kcl: Any,
) -> Path:
    """The real pipeline (one block rule on the ip key, blocks through the stack's block Lambda),
    wrapped by ``fault_pipeline``; each worker has its own status directory. ``actions`` updates
    sub-sections of ``actions`` (e.g. ``{"block": {"max_attempts": 2}}``)."""
    kcl.setdefault("checkpoint", {"every_records": 50, "every_s": 2})
    sections = real_pipeline_sections(stack, tmp, threshold)
    for name, values in (actions or {}).items():
        sections["actions"][name] = {**sections["actions"].get(name, {}), **values}
    return write_config(
        tmp,
        stack,
        app,
        app,
        sections=sections,
        worker_id=worker,
        status_dir=str(tmp / f"status-{worker}"),
        pipeline_factory=FACTORY,
        **kcl,
    )


def blocks(stack: StackInfo, ip: str) -> list[dict[str, Any]]:
    """The block Lambda's invocations for ``ip`` (op block), in arrival order."""
    return [x for x in invocations(stack) if x["key"] == ip and x["op"] == "block"]


def block_invocations(stack: StackInfo, ips: set[str]) -> list[dict[str, Any]]:
    """The block Lambda's invocations (op block) for any of ``ips``, in arrival order."""
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


def blocklist_items(stack: StackInfo, ip: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The blocklist table's block item for ``ip`` and the idempotency items that point at it."""
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    pk = f"block#ip#{ip}"
    items: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"TableName": stack.spec.blocklist_table}
    while True:
        page = ddb.scan(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    block = next((it for it in items if it["pk"]["S"] == pk), None)
    idem = [it for it in items if it.get("block_pk", {}).get("S") == pk]
    return block, idem


def snapshot_store(stack: StackInfo, app: str) -> snapshots.S3SnapshotStore:
    return snapshots.S3SnapshotStore(
        stack.spec.snapshot_bucket, f"{app}/", client=boto_client("s3", stack.endpoint, "us-east-1")
    )


def latest_counts(stack: StackInfo, app: str, shard: str = SHARD0) -> tuple[tuple[int, int], Counter[str]]:
    snap = snapshots.latest(snapshot_store(stack, app), shard)
    assert snap is not None, f"no snapshot of {shard} under {app}/"
    return snap.position, applied_counts(snap.blob)


def expected_counts(lines: list[bytes]) -> Counter[str]:
    return Counter(client_ip(x) for x in lines)


def decisions(status_dir: Path) -> list[dict[str, Any]]:
    p = status_dir / "decisions.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def save_figures(tmp: Path, **figures: Any) -> None:
    """What the fault did, for bench/results/faults-b.md (written next to the test's files)."""
    (tmp / "figures.json").write_text(json.dumps(figures, sort_keys=True, default=str))


def steal_lease(stack: StackInfo, app: str, shard: str, thief: str) -> int:
    """Take ``shard``'s lease for ``thief`` as the KCL's lease taker does; returns the new counter."""
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    key = {"leaseKey": {"S": shard}}
    for _ in range(20):
        item = ddb.get_item(TableName=app, Key=key, ConsistentRead=True)["Item"]
        counter = int(item["leaseCounter"]["N"])
        try:
            ddb.update_item(
                TableName=app,
                Key=key,
                UpdateExpression=(
                    "SET leaseOwner = :thief, leaseCounter = :next ADD ownerSwitchesSinceCheckpoint :one"
                ),
                ConditionExpression="leaseCounter = :counter",
                ExpressionAttributeValues={
                    ":thief": {"S": thief},
                    ":next": {"N": str(counter + 1)},
                    ":counter": {"N": str(counter)},
                    ":one": {"N": "1"},
                },
            )
            return counter + 1
        except ddb.exceptions.ConditionalCheckFailedException:
            time.sleep(0.05)  # renewed meanwhile by its owner: read again
    raise AssertionError("could not take the lease: its counter kept changing")
