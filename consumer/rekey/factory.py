"""Which pipeline and which KCL application a process runs, from ``topology``.

``build_pipeline(cfg)`` is the processors' pipeline factory: rekey -> RekeyPipeline; detect (or single
with ``evaluate: bucket``) -> DetectPipeline; single with the approximation accepted -> the ordinary
pipeline with thresholds divided by the shard count (its stats say so); else the ordinary pipeline.
``effective_kcl(cfg)``: the rekey stage reads the raw stream under its own application (lease table)
and keeps no snapshots (it has no state between batches); the detect stage reads the partials stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from consumer.config import Config
from consumer.kcl.config import KclConfig, SnapshotConfig
from consumer.pipeline import Pipeline
from consumer.quarantine import Quarantine
from consumer.rekey.scaling import scale_detectors

log = logging.getLogger(__name__)

DEFAULT_FACTORY = KclConfig.model_fields["pipeline_factory"].default


def with_role(cfg: Config, role: str | None) -> Config:
    if role is None or role == cfg.topology.role:
        return cfg
    data = cfg.model_dump()
    data["topology"]["role"] = role
    return Config.model_validate(data)


def effective_kcl(cfg: Config) -> KclConfig:
    topo, kcl = cfg.topology, cfg.kcl
    if topo.role == "rekey":
        return kcl.model_copy(
            update={
                "application_name": topo.rekey_application_name or f"{kcl.application_name}-rekey",
                "snapshots": SnapshotConfig(store="none"),
            }
        )
    if topo.role == "detect":
        return kcl.model_copy(update={"stream_name": topo.partials_stream})
    return kcl


class ApproximatePipeline(Pipeline):
    """Single-stage on a random multi-shard stream: each shard judged alone, thresholds / N."""

    shards = 1
    scaled: tuple[str, ...] = ()

    def stats(self) -> dict[str, object]:
        out = super().stats()
        out["topology"] = {
            "role": "single",
            "approximation": f"each shard judged alone; thresholds divided by {self.shards} shards",
            "scaled": self.scaled,
        }
        return out

    def reconfigured(self, cfg: Config) -> Pipeline:
        return carry_over(self, cfg)  # type: ignore[no-any-return]


def build_pipeline(cfg: Config, *, dry_run: bool | None = None, quarantine: Quarantine | None = None) -> Any:
    from consumer.rekey.stages import DetectPipeline, RekeyPipeline

    topo = cfg.topology
    if topo.role == "rekey":
        return RekeyPipeline.from_config(cfg, quarantine=quarantine)
    if topo.partial_mode:
        return DetectPipeline.from_config(cfg, dry_run=dry_run, quarantine=quarantine)
    n = topo.approximation_shards
    if n > 1:
        specs, scaled = scale_detectors(cfg.detectors, n)
        scaled_cfg = cfg.model_copy(update={"detectors": tuple(specs)})
        p = ApproximatePipeline.from_config(scaled_cfg, dry_run=dry_run, quarantine=quarantine)
        p.shards, p.scaled = n, tuple(scaled)
        p.dry_run_override = dry_run
        log.warning(
            "topology: approximation accepted: each of %d shards judged alone, thresholds divided by %d (%s)",
            n,
            n,
            ", ".join(scaled) or "nothing scaled",
        )
        return p
    return Pipeline.from_config(cfg, dry_run=dry_run, quarantine=quarantine)


def factory_for(cfg: Config, resolve: Callable[[str], Callable[..., Any]]) -> Callable[..., Any]:
    """The pipeline factory of ``cfg``: a custom ``kcl.pipeline_factory`` wins (topology must then be
    the default single-stage one), else ``build_pipeline``."""
    if cfg.kcl.pipeline_factory != DEFAULT_FACTORY:
        topo = cfg.topology
        if topo.role != "single" or topo.partial_mode or topo.approximation_shards > 1:
            raise ValueError("kcl.pipeline_factory is custom: topology must stay single-stage (role single)")
        return resolve(cfg.kcl.pipeline_factory)
    return build_pipeline


class _NoPublisher:
    def put(self, records: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("configuration check only")


def check_pipeline(cfg: Config, resolve: Callable[[str], Callable[..., Any]]) -> None:
    """Build what a processor would build (no AWS calls): a config the processors cannot use fails here."""
    from consumer.rekey.stages import RekeyPipeline

    if cfg.topology.role == "rekey":
        pipeline: Any = RekeyPipeline.from_config(cfg, publisher=_NoPublisher())
    else:
        pipeline = factory_for(cfg, resolve)(cfg)
    close = getattr(pipeline, "close", None)
    if close is not None:
        close()


def open_shards(kcl: KclConfig) -> int | None:
    """Open shards of the stream ``kcl`` reads, or None when it cannot be asked (logged)."""
    import boto3

    args: dict[str, Any] = {"region_name": kcl.region}
    if kcl.kinesis_endpoint:
        args["endpoint_url"] = kcl.kinesis_endpoint
    try:
        summary = boto3.client("kinesis", **args).describe_stream_summary(StreamName=kcl.stream_name)
        return int(summary["StreamDescriptionSummary"]["OpenShardCount"])
    except Exception as exc:
        log.warning(
            "cannot count the shards of %s (%s): topology not checked against it", kcl.stream_name, exc
        )
        return None


def carry_over(old: Any, cfg: Config) -> Any:
    """``Pipeline.reconfigured`` for the topology-aware pipelines: the same kind of pipeline for the
    new config, with the old one's state. The topology itself cannot change on a live reload (a new
    role needs another stream and application: restart)."""
    if cfg.topology != old.cfg.topology:
        raise ValueError("topology cannot change on a live reload: restart the process with the new topology")
    from consumer.rekey.stages import RekeyPipeline

    if isinstance(old, RekeyPipeline):
        new: Any = RekeyPipeline.from_config(
            cfg, publisher=old.publisher, quarantine=old.quarantine, view=old.view
        )
        new.carry_from(old)
    else:
        new = build_pipeline(cfg, dry_run=old.dry_run_override, quarantine=old.quarantine)
        old.flush()
        new.restore(old.snapshot())
    new.counters = old.counters
    old.actions.close()
    return new
