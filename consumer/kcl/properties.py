"""The MultiLangDaemon's ``.properties`` file, rendered from the ``kcl:`` section.

Property names are the KCL 2.x multilang ones (``MultiLangDaemonConfiguration`` setters).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from consumer.kcl.config import KclConfig

# The daemon reads the credentials from the SDK's default chain (env, profile, container role).
CREDENTIALS_PROVIDER = "DefaultAWSCredentialsProviderChain"


def default_worker_id() -> str:
    """Host name: stable across restarts of one container, unique across tasks."""
    return socket.gethostname() or "cfguard-worker"


def _escape(value: str) -> str:
    """Java properties escaping for a value (backslashes, leading spaces, line breaks)."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if out.startswith(" "):
        out = "\\" + out
    return out


def render_properties(cfg: KclConfig, executable: Sequence[str] | str) -> str:
    """The properties text; ``executable`` is the command the daemon starts once per shard lease."""
    command = executable if isinstance(executable, str) else " ".join(executable)
    props: dict[str, str] = {
        "executableName": command,
        "streamName": cfg.stream_name,
        "applicationName": cfg.application_name,
        "AWSCredentialsProvider": CREDENTIALS_PROVIDER,
        "processingLanguage": "python/3",
        "regionName": cfg.region,
        "initialPositionInStream": cfg.initial_position,
        "workerId": cfg.worker_id or default_worker_id(),
        "retrievalMode": cfg.retrieval_mode,
        "shutdownGraceMillis": str(cfg.shutdown_grace_ms),
        "failoverTimeMillis": str(cfg.failover_time_ms),
        "shardSyncIntervalMillis": str(cfg.shard_sync_interval_ms),
        "metricsLevel": cfg.metrics_level,
    }
    if cfg.retrieval_mode == "POLLING":
        props["maxRecords"] = str(cfg.max_records)
        props["idleTimeBetweenReadsInMillis"] = str(cfg.idle_time_between_reads_ms)
    if cfg.call_on_empty_batches:
        props["callProcessRecordsEvenForEmptyRecordList"] = "true"
    if cfg.efo_consumer_name:
        props["fanoutConfig.consumerName"] = cfg.efo_consumer_name  # nested bean (verified: 2.5.8)
    if cfg.kinesis_endpoint:
        props["kinesisEndpoint"] = cfg.kinesis_endpoint
    if cfg.dynamodb_endpoint:
        props["dynamoDBEndpoint"] = cfg.dynamodb_endpoint
    props.update(cfg.extra_properties)
    lines = ["# Rendered by cfguard from the kcl: section of its config. Do not edit by hand."]
    lines += [f"{k} = {_escape(v)}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


def write_properties(cfg: KclConfig, executable: Sequence[str] | str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_properties(cfg, executable), encoding="utf-8")
    return path


def parse_properties(text: str) -> dict[str, str]:
    """Inverse of :func:`render_properties` for the subset it writes (used by tests and ``run --print``)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip().replace("\\n", "\n").replace("\\\\", "\\")
    return out
