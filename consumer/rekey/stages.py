"""The two stages of a scaled-out deployment, as pipelines the KCL processor drives unchanged.

``RekeyPipeline`` (role rekey): parse a shard's batch, extract keys, pre-aggregate per key and time
bucket (``detectors.partials``) and publish the partials to the partials stream, bundled per
partition of keys (``partials.bundle``: all of a key's partials under one partition key),
synchronously: ``process`` returns only once every partial is acknowledged, so the processor's next
checkpoint never covers a batch whose partials are not in the stream. A record the stream refuses
``topology.max_put_attempts`` times ends the process (SystemExit, which the processor does not
swallow): the KCL restarts the lease from the last checkpoint instead of skipping data.

``DetectPipeline`` (role detect, or single with ``evaluate: bucket``): one pipeline for both inputs.
Partial records (recognised by their magic bytes) are decoded; raw lines are parsed and
pre-aggregated into the same partials locally. Both are merged by ``Engine.process_partials``, so a
decision does not depend on which input carried a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from actions.decision import Decision
from actions.runner import ActionRunner
from consumer.config import Config
from consumer.pipeline import Pipeline
from consumer.quarantine import Quarantine
from consumer.realtime import ParseResult
from detectors import partials
from detectors.batch import RecordBatch
from detectors.engine import Engine
from detectors.finding import Finding

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def put(self, records: Iterable[tuple[str, bytes]]) -> Any: ...


class BucketEngine:
    """The engine as the Pipeline sees it, judging raw batches through partials (bucket resolution)."""

    def __init__(self, engine: Engine, bucket_s: int, hold_s: float) -> None:
        self.engine = engine
        self.layout = engine.enable_partials(bucket_s, hold_s)

    def required_fields(self) -> set[str]:
        return self.engine.required_fields()

    def parts(self, batch: RecordBatch) -> list[tuple[str, partials.KeyPartials]]:
        return list(partials.build(batch, self.layout, self.engine.partial_masks(batch)).items())

    def process(self, batch: RecordBatch) -> list[Finding]:
        return self.engine.process_partials(self.parts(batch))

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def restore(self, obj: object) -> None:
        self.engine.restore(obj)

    def stats(self) -> dict[str, int | float]:
        return self.engine.stats()


class DetectPipeline(Pipeline):
    def __init__(
        self, cfg: Config, *, engine: Engine, actions: ActionRunner, quarantine: Quarantine | None = None
    ):
        topo = cfg.topology
        self.bucket_engine = BucketEngine(engine, topo.bucket_s, topo.hold_s)
        super().__init__(cfg, engine=self.bucket_engine, actions=actions, quarantine=quarantine)  # type: ignore[arg-type]
        self.partial_records = 0
        self.bad_partials = 0

    @classmethod
    def from_config(
        cls, cfg: Config, *, dry_run: bool | None = None, quarantine: Quarantine | None = None
    ) -> DetectPipeline:
        engine = Engine.from_config(cfg.detectors, cfg.state, [k.name for k in cfg.keys])
        p = cls(cfg, engine=engine, actions=ActionRunner(cfg.actions, dry_run=dry_run), quarantine=quarantine)
        p.dry_run_override = dry_run
        return p

    def reconfigured(self, cfg: Config) -> Pipeline:
        from consumer.rekey.factory import carry_over

        return carry_over(self, cfg)  # type: ignore[no-any-return]

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Decision]:
        raw: list[bytes | str] = []
        parts: list[tuple[str, partials.KeyPartials]] = []
        for line in lines:
            if isinstance(line, bytes) and partials.is_partial(line):
                try:
                    layout = self.bucket_engine.layout
                    parts += [partials.decode(x, layout) for x in partials.unbundle(line)]
                except partials.PartialFormatError as exc:
                    self.bad_partials += 1
                    self.quarantine.add("bad_partial", line, source)
                    if self.bad_partials <= 10:
                        log.error("%s: undecodable partial record: %s", source, exc)
            else:
                raw.append(line)
        self.partial_records += len(lines) - len(raw)
        self.counters.records += len(lines) - len(raw)
        if raw:
            parts = self._raw_parts(self.parser.parse(raw), len(raw), source) + parts
        # One merge for the whole delivery: a bucket is never released between its raw and
        # partial halves.
        return self._decide(self.bucket_engine.engine.process_partials(parts)) if parts else []

    def process_parsed(self, result: ParseResult, n_input: int, source: str = "") -> list[Decision]:
        parts = self._raw_parts(result, n_input, source)
        return self._decide(self.bucket_engine.engine.process_partials(parts)) if parts else []

    def _raw_parts(
        self, result: ParseResult, n_input: int, source: str
    ) -> list[tuple[str, partials.KeyPartials]]:
        batch = self.accept(result, n_input, source)
        return self.bucket_engine.parts(batch) if batch is not None else []

    def drain(self) -> list[Decision]:
        """Apply the buckets still waiting for stragglers (end of a replay or a test)."""
        return self._decide(self.bucket_engine.engine.process_partials([], drain=True))

    def _decide(self, findings: list[Finding]) -> list[Decision]:
        if not findings:
            return []
        c = self.counters
        c.findings += len(findings)
        decisions = self.actions.submit(findings)
        for d in decisions:
            c.decisions_by_detector[d.detector] += 1
            c.decisions_by_action[d.action] += 1
        return decisions

    def stats(self) -> dict[str, object]:
        out = super().stats()
        out["topology"] = {
            "role": self.cfg.topology.role,
            "evaluate": "bucket",
            "bucket_s": self.cfg.topology.bucket_s,
            "hold_s": self.cfg.topology.hold_s,
            "partial_records": self.partial_records,
            "bad_partials": self.bad_partials,
        }
        return out


class PartialsNotAcknowledged(SystemExit):
    """The partials stream refused records beyond every retry: stop without checkpointing."""


class RekeyPipeline(Pipeline):
    """Parse -> keys -> partials -> the partials stream. Holds no per-key state between batches."""

    def __init__(
        self,
        cfg: Config,
        *,
        engine: Engine,
        actions: ActionRunner,
        publisher: Publisher,
        quarantine: Quarantine | None = None,
    ) -> None:
        topo = cfg.topology
        self.bucket_engine = BucketEngine(engine, topo.bucket_s, topo.hold_s)
        super().__init__(cfg, engine=self.bucket_engine, actions=actions, quarantine=quarantine)  # type: ignore[arg-type]
        self.publisher = publisher
        self.traffic = {
            "raw_records": 0,
            "raw_bytes": 0,
            "key_records": 0,
            "partial_records": 0,
            "partial_bytes": 0,
        }

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        publisher: Publisher | None = None,
        dry_run: bool | None = None,
        quarantine: Quarantine | None = None,
    ) -> RekeyPipeline:
        engine = Engine.from_config(cfg.detectors, cfg.state, [k.name for k in cfg.keys])
        if publisher is None:
            publisher = kinesis_publisher(cfg)
        return cls(
            cfg,
            engine=engine,
            actions=ActionRunner(cfg.actions, dry_run=True),
            publisher=publisher,
            quarantine=quarantine,
        )

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Decision]:
        self.traffic["raw_records"] += len(lines)
        self.traffic["raw_bytes"] += sum(len(x) for x in lines)
        return self.process_parsed(self.parser.parse(lines), len(lines), source)

    def process_parsed(self, result: ParseResult, n_input: int, source: str = "") -> list[Decision]:
        batch = self.accept(result, n_input, source)
        if batch is None:
            return []
        per_key = [
            rec
            for kt, kp in self.bucket_engine.parts(batch)
            for rec in partials.encode(kt, kp, self.bucket_engine.layout)
        ]
        self.traffic["key_records"] += len(per_key)
        records = partials.bundle(per_key, self.cfg.topology.partitions)
        if records:
            self._publish(records)
        return []

    def _publish(self, records: list[tuple[str, bytes]]) -> None:
        stats = self.publisher.put(records)
        failed_before = getattr(self, "_failed", 0)
        failed = int(getattr(stats, "failed", 0))
        self._failed = failed
        if failed > failed_before:
            log.critical(
                "partials stream refused %d record(s) after every retry; exiting without checkpointing",
                failed - failed_before,
            )
            raise PartialsNotAcknowledged(1)
        self.traffic["partial_records"] += len(records)
        self.traffic["partial_bytes"] += sum(len(d) + len(k.encode()) for k, d in records)

    def reconfigured(self, cfg: Config) -> Pipeline:
        from consumer.rekey.factory import carry_over

        return carry_over(self, cfg)  # type: ignore[no-any-return]

    def snapshot(self) -> bytes:
        return b""  # stateless between batches

    def restore(self, blob: bytes) -> None:
        return None

    def stats(self) -> dict[str, object]:
        out = super().stats()
        t = self.traffic
        out["topology"] = {"role": "rekey", **t}
        if t["partial_bytes"]:
            out["topology"]["shrink_bytes"] = round(t["raw_bytes"] / t["partial_bytes"], 2)  # type: ignore[index]
        return out


def kinesis_publisher(cfg: Config) -> Any:
    import boto3

    from consumer.republish import Republisher

    args: dict[str, Any] = {"region_name": cfg.kcl.region}
    if cfg.kcl.kinesis_endpoint:
        args["endpoint_url"] = cfg.kcl.kinesis_endpoint
    client = boto3.client("kinesis", **args)
    return Republisher(client, cfg.topology.partials_stream, max_attempts=cfg.topology.max_put_attempts)
