"""The ``topology:`` section: which role this process plays and what the raw stream guarantees.

CloudFront partitions its real-time log stream by a random key, so with N shards each shard's
processor sees about 1/N of every user and per-user thresholds stop meaning what they say. Either
the raw stream has one shard (or is keyed: every request of a key on one shard), or a re-keying
stage (``role: rekey``) pre-aggregates each shard's batch per key and time bucket and publishes the
partials to a second stream partitioned by key, which the detect stage (``role: detect``) judges.
A multi-shard random stream in single-stage mode is refused unless the operator accepts the
approximation (thresholds are then divided by the shard count and every summary says so).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TopologyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["single", "rekey", "detect"] = Field(
        "single",
        description="single: judge the raw stream directly; rekey: raw stream -> partials stream; "
        "detect: judge the partials stream (raw lines are accepted too)",
    )
    raw_input: Literal["single_shard", "keyed", "random"] = Field(
        "single_shard",
        description="how the raw stream is partitioned: one shard; keyed (all of a key's requests on one "
        "shard, e.g. your own producer); random (CloudFront's real-time logs)",
    )
    raw_shards: int | None = Field(
        None, ge=1, description="shard count of the raw stream (checked against the stream at 'run')"
    )
    accept_approximation: bool = Field(
        False,
        description="single role on a multi-shard random stream: judge each shard alone with "
        "thresholds divided by raw_shards (approximate; the summary says so)",
    )
    evaluate: Literal["record", "bucket"] = Field(
        "record",
        description="single role: 'bucket' judges at bucket resolution through the same partials as a "
        "two-stage deployment, so both make the same decisions (role detect always does)",
    )
    bucket_s: int = Field(1, ge=1, le=60, description="time resolution of the partial aggregates")
    hold_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="event time a bucket waits for partials from lagging re-keying processors",
    )
    source_timeout_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="wall-clock seconds a silent re-keying source (raw shard) keeps holding the detect "
        "stage's buckets back before it is passed over (counted; its later rows are applied late)",
    )
    partials_stream: str = Field(
        "cfguard-partials", description="the second stream (rekey writes, detect reads)"
    )
    partitions: int = Field(
        256,
        ge=1,
        le=65_536,
        description="partition keys of the partials stream (keys hashed into them; one record per partition "
        "per batch): at least a few times the partials stream's shard count",
    )
    rekey_application_name: str | None = Field(
        None,
        description="KCL application (lease table) of the rekey stage; default <kcl.application_name>-rekey",
    )
    max_put_attempts: int = Field(
        1_000_000,
        ge=1,
        description="PutRecords attempts per record before it is given up; the default retries (with "
        "backoff) until accepted, holding the shard back rather than checkpointing past lost partials",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TopologyConfig:
        if self.raw_input == "single_shard" and self.raw_shards not in (None, 1):
            raise ValueError(
                f"raw_input is single_shard but raw_shards is {self.raw_shards}: declare raw_input keyed or "
                "random"
            )
        if self.accept_approximation:
            if self.role != "single" or self.raw_input != "random":
                raise ValueError("accept_approximation only applies to role single with raw_input random")
            if not self.raw_shards:
                raise ValueError("accept_approximation needs raw_shards (thresholds are divided by it)")
        if self.role == "single" and self.raw_input == "random" and (self.raw_shards or 0) > 1:
            if not self.accept_approximation:
                raise ValueError(refusal(self.raw_shards or 0))
        return self

    @property
    def partial_mode(self) -> bool:
        """Detection runs on partial aggregates (bucket resolution)."""
        return self.role == "detect" or (self.role == "single" and self.evaluate == "bucket")

    @property
    def approximation_shards(self) -> int:
        """N when each processor judges 1/N of each key with thresholds divided by N, else 1."""
        return (self.raw_shards or 1) if self.accept_approximation else 1


def refusal(shards: int) -> str:
    return (
        f"the raw stream has {shards} shards and CloudFront spreads each user over all of them: a "
        "single-stage consumer would see about 1/N of each user. Deploy the rekey and detect stages "
        "(topology.role rekey|detect), or declare topology.raw_input: keyed if your producer partitions "
        "by key, or set topology.accept_approximation: true (thresholds divided by the shard count)"
    )


def check_stream(topology: TopologyConfig, open_shards: int) -> None:
    """Refuse a single-stage consumer on a multi-shard raw stream it cannot judge (ValueError)."""
    if topology.role != "single" or open_shards <= 1 or topology.raw_input == "keyed":
        return
    if topology.accept_approximation:
        if topology.raw_shards != open_shards:
            raise ValueError(
                f"topology.raw_shards is {topology.raw_shards} but the stream has {open_shards} open shards: "
                "thresholds would be scaled wrongly"
            )
        return
    raise ValueError(refusal(open_shards))
