"""The configuration ``cfguard demo`` runs with: the example's keys, detectors scaled to a short demo,
live blocks through the local stack's block Lambda, and the KCL section pointed at the local stack.

Thresholds are lower than production ones so abuse that starts 30 s into the demo is caught within
a minute; the hard negatives of the generated traffic (an office NAT, a heavy downloader, a monitor,
password retries, a CDN prefetcher) must still never be blocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from consumer.local_stack import StackInfo

LOGIN_PATH = "(?i)(log-?in|sign-?in|/auth|/session|oauth2?/token)"


def demo_detectors() -> list[dict[str, Any]]:
    return [
        {"name": "request_flood_ip", "type": "rule", "key": "ip", "metric": "requests",
         "window": "1m", "threshold": 1000, "mode": "block"},
        {"name": "bandwidth_hog_user", "type": "rule", "key": "user", "metric": "bytes_sent",
         "window": "1m", "threshold": 600e6, "mode": "block"},
        {"name": "scanner_ip", "type": "rule", "key": "ip", "metric": "distinct_uris",
         "status": [403, 404], "window": "5m", "threshold": 150, "min_requests": 150, "mode": "block"},
        {"name": "credential_stuffing_user", "type": "ratio", "key": "user", "path": LOGIN_PATH,
         "numerator": "auth_failures", "denominator": "requests", "window": "5m", "threshold": 0.5,
         "min_requests": 30, "min_numerator": 20, "mode": "block"},
        {"name": "origin_exhaustion_ip", "type": "ratio", "key": "ip", "numerator": "cache_misses",
         "denominator": "requests", "window": "5m", "threshold": 0.9, "min_requests": 300, "mode": "alert"},
    ]  # fmt: skip


def demo_config(stack: StackInfo, workdir: Path, worker_id: str = "demo-worker") -> dict[str, Any]:
    s = stack.spec
    return {
        "keys": [
            {"name": "ip", "source": "c-ip", "ipv6_prefix": 64},
            {"name": "user", "source": "cookie", "param": "uid"},
        ],
        "detectors": demo_detectors(),
        "actions": {
            "dry_run": False,
            "block": {"function_name": s.lambda_name, "region": s.region, "endpoint_url": stack.endpoint},
            "spool": {"path": str(workdir / "spool.jsonl")},
            "alert": {"enabled": True, "path": str(workdir / "alerts.jsonl")},
            "blocklist": {
                "table_name": s.blocklist_table,
                "region": s.region,
                "endpoint_url": stack.endpoint,
            },
        },
        "quarantine": {"path": str(workdir / "quarantine.jsonl")},
        "kcl": {
            "stream_name": s.stream_name,
            "application_name": "cfguard-demo",
            "region": s.region,
            "kinesis_endpoint": stack.endpoint,
            "dynamodb_endpoint": stack.endpoint,
            "worker_id": worker_id,
            "cbor_enabled": False,
            "idle_time_between_reads_ms": 250,
            "shard_sync_interval_ms": 3000,
            "checkpoint": {"every_records": 5000, "every_s": 5},
            "snapshots": {
                "store": "s3",
                "bucket": s.snapshot_bucket,
                "prefix": "demo/",
                "s3_endpoint": stack.endpoint,
            },
            "status_dir": str(workdir / "status"),
        },
    }
