"""The ``kcl:`` section: where the stream is, how the MultiLangDaemon runs, checkpoints and snapshots.

Everything here is deployment configuration; none of it changes what is detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckpointConfig(_Section):
    """When the processor checkpoints (it always does on shutdownRequested and shardEnded)."""

    every_records: int = Field(10_000, ge=1, description="checkpoint after this many records")
    every_s: float = Field(60.0, gt=0, description="checkpoint when this many seconds passed (wall clock)")
    max_retries: int = Field(5, ge=0, description="retries of a throttled checkpoint before waiting for next")
    backoff_s: float = Field(0.2, ge=0, description="first retry delay; doubles on each retry")


class SnapshotConfig(_Section):
    """Where each shard's detector and action state is written before every checkpoint."""

    store: Literal["local", "s3", "none"] = "local"
    path: Path = Field(Path("state/snapshots"), description="directory for store=local")
    bucket: str | None = Field(None, description="bucket for store=s3")
    prefix: str = Field("cfguard/snapshots/", description="key prefix for store=s3")
    s3_endpoint: str | None = Field(None, description="S3 endpoint override (local stack)")
    keep: int = Field(3, ge=1, le=100, description="snapshots kept per shard; older ones are pruned")
    restore_retry_max_s: float = Field(
        30.0,
        ge=0.5,
        le=3600,
        description="a store unreadable at restore is retried (the shard waits; starting empty would lose "
        "its state) with a wait doubling from 0.5 s up to this",
    )
    restore_log_every_s: float = Field(
        300.0,
        gt=0,
        description="while the store stays unreadable at restore, one error line per this many seconds "
        "(the restore_pending / restore_wait_s metrics say it all the time)",
    )

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> SnapshotConfig:
        if self.store == "s3" and not self.bucket:
            raise ValueError("snapshots.bucket is required when snapshots.store is 's3'")
        return self


class KclConfig(_Section):
    """The MultiLangDaemon's properties plus the record processor's checkpoint and snapshot policy."""

    stream_name: str = "cfguard-realtime-logs"
    application_name: str = Field("cfguard", description="also the name of the DynamoDB lease table")
    region: str = "us-east-1"
    kinesis_endpoint: str | None = Field(None, description="endpoint override (local stack)")
    dynamodb_endpoint: str | None = Field(None, description="endpoint override (local stack)")
    worker_id: str | None = Field(
        None, description="stable worker id (default: host name); a stable id makes restarts resume fast"
    )
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    retrieval_mode: Literal["POLLING", "FANOUT"] = "POLLING"
    efo_consumer_name: str | None = Field(None, description="enhanced fan-out consumer name (FANOUT)")
    shutdown_grace_ms: int = Field(
        20_000, ge=1000, description="time for processors to checkpoint on SIGTERM (0 would skip it)"
    )
    failover_time_ms: int = Field(10_000, ge=1000)
    shard_sync_interval_ms: int = Field(
        60_000, ge=1000, description="shard sync period; the first start also sleeps this long after its sync"
    )
    max_records: int = Field(10_000, ge=1, le=10_000, description="records per GetRecords call (POLLING)")
    idle_time_between_reads_ms: int = Field(1000, ge=0, description="POLLING interval when caught up")
    call_on_empty_batches: bool = Field(
        True, description="call the processor on empty reads too (time-based checkpoints on idle shards)"
    )
    metrics_level: Literal["NONE", "SUMMARY", "DETAILED"] = "NONE"
    cbor_enabled: bool = Field(True, description="false for the local stack (moto does not speak CBOR)")
    java: str = Field("java", description="java executable")
    extra_properties: dict[str, str] = Field(
        default_factory=dict, description="more MultiLangDaemon properties, written as given"
    )
    checkpoint: CheckpointConfig = CheckpointConfig()
    snapshots: SnapshotConfig = SnapshotConfig()
    status_dir: Path | None = Field(
        None,
        description="if set, each shard's processor writes live stats (shard-<id>.json) here and every "
        "shard appends its decisions to decisions.jsonl (rotated by size, see status_decisions_*)",
    )
    status_decisions_max_bytes: int = Field(
        64 * 2**20,
        ge=4096,
        description="status_dir/decisions.jsonl is rotated (to decisions.jsonl.1, .2, ...) before an append "
        "would take it past this size",
    )
    status_decisions_keep: int = Field(
        4,
        ge=1,
        le=100,
        description="rotated decision files kept (decisions.jsonl.1 newest ... .N oldest); the status dir "
        "holds at most about (1 + N) x status_decisions_max_bytes of decisions",
    )
    config_reload_s: float = Field(
        30.0,
        ge=0,
        description="how often each processor checks its config source for a new version (0: never; "
        "SIGHUP checks at once); a valid new config is swapped in with the detector state kept",
    )
    pipeline_factory: str = Field(
        "consumer.pipeline:Pipeline.from_config",
        description="'module:callable' building one shard's pipeline from the Config",
    )

    @model_validator(mode="after")
    def _efo(self) -> KclConfig:
        if self.efo_consumer_name and self.retrieval_mode != "FANOUT":
            raise ValueError("efo_consumer_name is only used with retrieval_mode FANOUT")
        return self
