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
import pickle
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from actions.decision import Decision
from actions.runner import ActionRunner
from consumer.config import Config
from consumer.pipeline import Pipeline
from consumer.quarantine import Quarantine
from consumer.realtime import ParseResult
from consumer.rekey import runs
from consumer.rekey.streams import KinesisView, StaticView, StreamView
from detectors import partial_encode, partials
from detectors import partial_wire as wire
from detectors.batch import RecordBatch
from detectors.engine import Engine
from detectors.finding import Finding

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def put(self, records: Iterable[tuple[str, bytes]]) -> Any: ...


class BucketEngine:
    """The engine as the Pipeline sees it, judging raw batches through partials (bucket resolution)."""

    def __init__(self, engine: Engine, bucket_s: int, hold_s: float, source_timeout_s: float = 60.0) -> None:
        self.engine = engine
        self.layout = engine.enable_partials(bucket_s, hold_s, source_timeout_s)

    def required_fields(self) -> set[str]:
        return self.engine.required_fields()

    def parts(
        self, batch: RecordBatch, run: np.ndarray | None = None
    ) -> list[tuple[str, partials.KeyPartials]]:
        return list(partials.build(batch, self.layout, self.engine.partial_masks(batch), run).items())

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
        self.bucket_engine = BucketEngine(engine, topo.bucket_s, topo.hold_s, topo.source_timeout_s)
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
        records: list[bytes] = []
        for line in lines:
            if isinstance(line, bytes) and wire.is_partial(line):
                records.append(line)
            else:
                raw.append(line)
        parts: list[Any] = []
        if records:
            decoded = wire.decode_many(records, self.bucket_engine.layout)
            for i, exc in decoded.bad:
                self.bad_partials += 1
                self.quarantine.add("bad_partial", records[i], source)
                if self.bad_partials <= 10:
                    log.error("%s: undecodable partial record: %s", source, exc)
            parts.append(decoded)
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

    def _raw_parts(self, result: ParseResult, n_input: int, source: str) -> list[Any]:
        batch = self.accept(result, n_input, source)
        return self.bucket_engine.parts(batch) if batch is not None else []  # type: ignore[return-value]

    def drain(self) -> list[Decision]:
        """Apply the buckets still waiting for stragglers (end of a replay or a test)."""
        return self._decide(self.bucket_engine.engine.process_partials([], drain=True))

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
    """Parse -> keys -> partials -> the partials stream, run by run (``consumer.rekey.runs``).

    Per batch: the records are cut into runs; every run but the last is published (data bundles,
    then, once acknowledged, a progress record with this source's watermark to every partials
    shard); the last run is held until a record of another bucket closes it (or the shard ends).
    ``durable_position`` tells the KCL processor to checkpoint at the end of the last published
    run, so a restart re-publishes exactly the same runs and the detect stage drops them.
    The held run is the only state; it is also in ``snapshot`` for processors that keep snapshots.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        engine: Engine,
        actions: ActionRunner,
        publisher: Publisher,
        quarantine: Quarantine | None = None,
        view: StreamView | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        topo = cfg.topology
        self.bucket_engine = BucketEngine(engine, topo.bucket_s, topo.hold_s)
        super().__init__(cfg, engine=self.bucket_engine, actions=actions, quarantine=quarantine)  # type: ignore[arg-type]
        self.publisher = publisher
        self.view: StreamView = view or StaticView()
        self.clock = clock
        self.time_index = list(self.parser.fields).index("timestamp")
        self.source = ""
        self.held_lines: list[bytes | str] = []
        self.held_pos: list[wire.Position] = []
        self.published: wire.Position | None = None  # end of the last run published by this process
        self.watermark_ms: int | None = None
        self.last_progress: float | None = None
        self._next_pos = 0  # positions for callers that have none (process())
        self.traffic = {
            "raw_records": 0,
            "raw_bytes": 0,
            "runs": 0,
            "key_records": 0,
            "partial_records": 0,
            "partial_bytes": 0,
            "progress_records": 0,
        }

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        publisher: Publisher | None = None,
        dry_run: bool | None = None,
        quarantine: Quarantine | None = None,
        view: StreamView | None = None,
    ) -> RekeyPipeline:
        engine = Engine.from_config(cfg.detectors, cfg.state, [k.name for k in cfg.keys])
        if publisher is None:
            publisher = kinesis_publisher(cfg)
            if view is None:
                view = kinesis_view(cfg)
        return cls(
            cfg,
            engine=engine,
            actions=ActionRunner(cfg.actions, dry_run=True),
            publisher=publisher,
            quarantine=quarantine,
            view=view,
        )

    def carry_from(self, old: RekeyPipeline) -> None:
        """A live reload: the held run and the progress go on."""
        for name in ("source", "held_lines", "held_pos", "published", "watermark_ms", "last_progress",
                     "_next_pos", "traffic", "view"):  # fmt: skip
            setattr(self, name, getattr(old, name))

    # -- input ------------------------------------------------------------------------------------

    def process(self, lines: Sequence[bytes | str], source: str = "") -> list[Decision]:
        """Without stream positions (tests, benchmarks): numbered in this process, everything
        published at once (no run held back)."""
        pos = [(self._next_pos + i, 0) for i in range(len(lines))]
        self._next_pos += len(lines)
        self._run(lines, pos, source, final=True)
        return []

    def process_positioned(
        self, lines: Sequence[bytes | str], positions: Sequence[wire.Position], source: str = ""
    ) -> list[Decision]:
        """A KCL batch with the stream position of each record."""
        if len(positions) != len(lines):
            raise ValueError(f"{len(lines)} lines but {len(positions)} positions")
        self._run(lines, positions, source, final=False)
        return []

    def end_of_shard(self) -> None:
        """The shard ended (reshard): publish the held run and retire this source."""
        self._run([], [], self.source, final=True, retire=True)

    def durable_position(self) -> wire.Position | bool | None:
        """Where the processor may checkpoint: ``None`` = where it stands (nothing held), a position
        = the end of the last published run, ``False`` = nowhere yet (only a held run since start)."""
        if not self.held_lines:
            return None
        return self.published if self.published is not None else False

    def process_parsed(self, result: ParseResult, n_input: int, source: str = "") -> list[Decision]:
        """A batch parsed elsewhere (e.g. standard logs): published at once as one run."""
        if source:
            self.source = source
        batch = self.accept(result, n_input, source)
        self._next_pos += n_input
        if batch is not None:
            rows = dict(self.bucket_engine.parts(batch, np.zeros(len(batch), dtype=np.int64)))
            self.traffic["key_records"] += sum(len(kp) for kp in rows.values())
            for segment in self._segments(rows, [(self._next_pos - 1, 0)], 0, 1):
                self._put(segment)
            newest = max((int(kp.last_ms.max()) for kp in rows.values() if len(kp)), default=None)
            if newest is not None:
                self.watermark_ms = newest if self.watermark_ms is None else max(self.watermark_ms, newest)
            self._progress()
        return []

    # -- runs -------------------------------------------------------------------------------------

    def _run(
        self,
        lines: Sequence[bytes | str],
        positions: Sequence[wire.Position],
        source: str,
        *,
        final: bool,
        retire: bool = False,
    ) -> None:
        if source:
            self.source = source
        self.traffic["raw_records"] += len(lines)
        self.traffic["raw_bytes"] += sum(len(x) for x in lines)
        all_lines = self.held_lines + list(lines)
        all_pos = self.held_pos + list(positions)
        run = runs.cut(runs.line_times(all_lines, self.time_index), self.cfg.topology.bucket_s)
        if final or not len(run):
            n_pub = len(all_lines)
        else:
            n_pub = int(np.searchsorted(run, run[-1]))  # the last run waits
        self.held_lines, self.held_pos = all_lines[n_pub:], all_pos[n_pub:]
        if n_pub:
            self._publish_runs(all_lines[:n_pub], all_pos[:n_pub], run[:n_pub])
        keepalive = self.last_progress is None or self.clock() - self.last_progress >= 5.0
        if n_pub or retire or keepalive:
            self._progress(final=retire)

    def _publish_runs(self, lines: list[bytes | str], pos: list[wire.Position], run: np.ndarray) -> None:
        source = self.source
        ends_at = np.flatnonzero(np.r_[run[1:] != run[:-1], True])
        run_ends = [pos[i] for i in ends_at.tolist()]
        result = self.parser.parse(lines)
        if not result.malformed and len(result.batch) == len(lines):  # record i is line i
            batch = self.accept(result, len(lines), source)
            parts = self.bucket_engine.parts(batch, run) if batch is not None else []
        else:  # which lines were refused is not reported: parse run by run
            chunks: dict[str, list[partials.KeyPartials]] = {}
            starts = np.r_[0, ends_at[:-1] + 1]
            for r, (a, b) in enumerate(zip(starts.tolist(), (ends_at + 1).tolist(), strict=True)):
                sub = lines[a:b]
                batch = self.accept(self.parser.parse(sub), len(sub), source)
                if batch is None:
                    continue
                for kt, kp in self.bucket_engine.parts(batch, np.full(len(batch), r, dtype=np.int64)):
                    chunks.setdefault(kt, []).append(kp)
            parts = [(kt, partials.concat(v)) for kt, v in chunks.items()]
        self.traffic["runs"] += len(run_ends)
        rows = dict(parts)
        self.traffic["key_records"] += sum(len(kp) for kp in rows.values())
        for segment in self._segments(rows, run_ends, 0, len(run_ends)):
            self._put(segment)
        newest = max((int(kp.last_ms.max()) for kp in rows.values() if len(kp)), default=None)
        if newest is not None:
            self.watermark_ms = newest if self.watermark_ms is None else max(self.watermark_ms, newest)
        self.published = run_ends[-1]

    def _segments(
        self, rows: dict[str, partials.KeyPartials], run_ends: list[wire.Position], a: int, b: int
    ) -> list[list[tuple[str, bytes]]]:
        """Bundles of runs a..b-1, split at run boundaries while a bundle exceeds MAX_BUNDLE_BYTES.
        Each segment is put (and acknowledged) before the next: a partition's runs arrive in order."""
        sel = {}
        for kt, kp in rows.items():
            assert kp.run is not None
            idx = np.flatnonzero((kp.run >= a) & (kp.run < b))
            if idx.size:
                sel[kt] = kp if idx.size == len(kp) else partials.take(kp, idx)
        if not sel:
            return []
        layout = self.bucket_engine.layout
        recs = partial_encode.encode_data(self.source, sel, run_ends, layout, self.cfg.topology.partitions)
        if b - a > 1 and max(len(d) for _, d in recs) > wire.MAX_BUNDLE_BYTES:
            mid = (a + b) // 2
            return self._segments(rows, run_ends, a, mid) + self._segments(rows, run_ends, mid, b)
        return [recs]

    def _progress(self, final: bool = False) -> None:
        if self.watermark_ms is None and not final:
            return
        p = wire.Progress(
            self.source,
            self.watermark_ms if self.watermark_ms is not None else -(2**62),
            tuple(sorted(set(self.view.open_sources()) | {self.source})),
            final,
        )
        data = partial_encode.encode_progress(p, self.bucket_engine.layout)
        keys = self.view.progress_keys()
        self._put([(k, data) for k in keys])
        self.traffic["progress_records"] += len(keys)
        self.last_progress = self.clock()

    def _put(self, records: list[tuple[str, bytes]]) -> None:
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
        """The held run (for processors that keep snapshots: the snapshot then covers it)."""
        return pickle.dumps({"version": 2, "held": (self.source, self.held_lines, self.held_pos)})

    def restore(self, blob: bytes) -> None:
        if not blob:
            return
        state = pickle.loads(blob)
        if not isinstance(state, dict) or state.get("version") != 2:
            raise ValueError("rekey snapshot of an unknown format")
        self.source, self.held_lines, self.held_pos = state["held"]

    def stats(self) -> dict[str, object]:
        out = super().stats()
        t = self.traffic
        out["topology"] = {
            "role": "rekey",
            **t,
            "held_records": len(self.held_lines),
            "watermark_ms": self.watermark_ms,
        }
        if t["partial_bytes"]:
            out["topology"]["shrink_bytes"] = round(t["raw_bytes"] / t["partial_bytes"], 2)  # type: ignore[index]
        return out


def kinesis_view(cfg: Config) -> StreamView:
    import boto3

    args: dict[str, Any] = {"region_name": cfg.kcl.region}
    if cfg.kcl.kinesis_endpoint:
        args["endpoint_url"] = cfg.kcl.kinesis_endpoint
    return KinesisView(boto3.client("kinesis", **args), cfg.kcl.stream_name, cfg.topology.partials_stream)


def kinesis_publisher(cfg: Config) -> Any:
    import boto3

    from consumer.republish import Republisher

    args: dict[str, Any] = {"region_name": cfg.kcl.region}
    if cfg.kcl.kinesis_endpoint:
        args["endpoint_url"] = cfg.kcl.kinesis_endpoint
    client = boto3.client("kinesis", **args)
    return Republisher(client, cfg.topology.partials_stream, max_attempts=cfg.topology.max_put_attempts)
