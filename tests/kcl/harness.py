"""Running the real MultiLangDaemon against the session's local stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from consumer.config import load_config
from consumer.kcl.daemon import Daemon
from consumer.local_stack import StackInfo, boto_client

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def write_config(
    tmp: Path, stack: StackInfo, app: str, stream: str, sections: dict[str, Any] | None = None, **kcl: Any
) -> Path:
    section: dict[str, Any] = {
        "stream_name": stream,
        "application_name": app,
        "region": stack.spec.region,
        "kinesis_endpoint": stack.endpoint,
        "dynamodb_endpoint": stack.endpoint,
        "worker_id": "worker-a",
        "cbor_enabled": False,
        "idle_time_between_reads_ms": 200,
        "failover_time_ms": 10000,
        "shard_sync_interval_ms": 3000,
        "shutdown_grace_ms": 20000,
        "checkpoint": {"every_records": 50, "every_s": 2},
        "snapshots": {
            "store": "s3",
            "bucket": stack.spec.snapshot_bucket,
            "prefix": f"{app}/",
            "s3_endpoint": stack.endpoint,
        },
        "status_dir": str(tmp / "status"),
        "pipeline_factory": "tests.kcl.counting_pipeline:from_config",
    }
    if sections:  # the real pipeline with these sections
        del section["pipeline_factory"]
    section.update(kcl)
    path = tmp / f"{app}-{section['worker_id']}.yaml"
    path.write_text(yaml.safe_dump({**(sections or {}), "kcl": section}))
    return path


def daemon(config: Path, stack: StackInfo, tmp: Path, name: str = "app", threshold: int = 50) -> Daemon:
    cfg = load_config(config)
    env = stack.env()
    env["PYTHONPATH"] = str(REPO)
    env["CFGUARD_TEST_THRESHOLD"] = str(threshold)
    workdir = tmp / f"wd-{name}"
    workdir.mkdir(exist_ok=True)
    return Daemon(cfg.kcl, config, workdir, env=env, log_path=tmp / f"daemon-{name}.log", name=name)


def wait_for(pred: Callable[[], T], timeout: float, what: str, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def put_lines(stack: StackInfo, stream: str, lines: list[bytes]) -> list[str]:
    """put_records in chunks of 500; returns the sequence numbers."""
    k = boto_client("kinesis", stack.endpoint, stack.spec.region)
    seqs: list[str] = []
    for i in range(0, len(lines), 500):
        chunk = lines[i : i + 500]
        resp = k.put_records(
            StreamName=stream,
            Records=[{"Data": d, "PartitionKey": f"pk-{i + j}"} for j, d in enumerate(chunk)],
        )
        assert resp["FailedRecordCount"] == 0
        seqs += [r["SequenceNumber"] for r in resp["Records"]]
    return seqs


def leases(stack: StackInfo, app: str) -> dict[str, dict[str, Any]]:
    ddb = boto_client("dynamodb", stack.endpoint, stack.spec.region)
    try:
        items = ddb.scan(TableName=app)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return {}
    return {
        it["leaseKey"]["S"]: {
            "checkpoint": it.get("checkpoint", {}).get("S"),
            "owner": it.get("leaseOwner", {}).get("S"),
        }
        for it in items
    }


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(x for x in lines if not x.lstrip().startswith("at "))[-6000:]


def real_pipeline_sections(stack: StackInfo, tmp: Path, threshold: int) -> dict[str, Any]:
    """One block rule on the ip key, blocks delivered to the stack's block Lambda."""
    s = stack.spec
    return {
        "detectors": [
            {
                "name": "flood_ip",
                "type": "rule",
                "key": "ip",
                "metric": "requests",
                "window": "1m",
                "threshold": threshold,
                "mode": "block",
            }
        ],
        "actions": {
            "dry_run": False,
            "block": {"function_name": s.lambda_name, "region": s.region, "endpoint_url": stack.endpoint},
            "spool": {"path": str(tmp / "spool.jsonl")},
            "alert": {"enabled": True, "path": str(tmp / "alerts.jsonl")},
        },
        "quarantine": {"path": str(tmp / "quarantine.jsonl")},
    }


def invocations(stack: StackInfo) -> list[dict[str, Any]]:
    import json
    import urllib.request

    with urllib.request.urlopen(stack.endpoint + "/_cfguard/invocations", timeout=5) as r:
        return list(json.loads(r.read()))
