"""The two stages stay exact when the re-keying processors progress at very different paces (a backlog
read at start) and when one restarts and re-publishes what it had published after its checkpoint,
re-batched differently: the detect stage's decisions equal a single-stage run's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from consumer.config import Config
from consumer.rekey.factory import build_pipeline
from consumer.rekey.stages import DetectPipeline, RekeyPipeline
from consumer.rekey.streams import StaticView
from consumer.traffic import generate
from detectors import partial_wire

SHARDS = 4
NAMES = [f"shardId-00000000000{i}" for i in range(SHARDS)]
SEQ0 = 49_600_000_000_000_000_000_000_000_000  # real sequence numbers exceed 64 bits


def _cfg(role: str) -> Config:
    return Config.model_validate({"topology": {"role": role, "evaluate": "bucket"}})


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    def put(self, records):  # type: ignore[no-untyped-def]
        self.records += list(records)
        return SimpleNamespace(failed=0)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [x for b in generate(seed=5, duration_s=600, rate=40, batch_size=2000) for x in b]


@pytest.fixture(scope="module")
def shards(lines) -> list[list[tuple[bytes, tuple[int, int]]]]:  # type: ignore[no-untyped-def]
    to = np.random.default_rng(2).integers(0, SHARDS, len(lines))
    out: list[list[tuple[bytes, tuple[int, int]]]] = [[] for _ in range(SHARDS)]
    for x, s in zip(lines, to.tolist(), strict=True):
        out[s].append((x, (SEQ0 + 1000 * len(out[s]), 0)))
    return out


@pytest.fixture(scope="module")
def single(lines) -> list[tuple]:  # type: ignore[no-untyped-def]
    p = build_pipeline(_cfg("single"), dry_run=True)
    out = [d for a in range(0, len(lines), 1000) for d in p.process(lines[a : a + 1000], "raw")] + p.drain()
    assert len({d.key for d in out}) >= 3 and "block" in {d.action for d in out}
    return [_key(d) for d in out]


def _key(d) -> tuple:  # type: ignore[no-untyped-def]
    return (d.event_time, d.key_type, d.key, d.detector, d.action, round(d.score, 9))


def _rekey(sink: Sink, sources: list[str]) -> RekeyPipeline:
    return RekeyPipeline.from_config(_cfg("rekey"), publisher=sink, view=StaticView(sources, ["w"]))


def _deliver(rk: RekeyPipeline, recs, source: str, rng, lo: int = 20, hi: int = 600) -> None:  # type: ignore[no-untyped-def]
    """The KCL's batches: random sizes."""
    a = 0
    while a < len(recs):
        b = a + int(rng.integers(lo, hi))
        chunk = recs[a:b]
        rk.process_positioned([x for x, _ in chunk], [p for _, p in chunk], source)
        a = b


def _detect(records: list[bytes], clock=None) -> tuple[list[tuple], DetectPipeline]:  # type: ignore[no-untyped-def]
    det = build_pipeline(_cfg("detect"), dry_run=True)
    if clock is not None:
        det.bucket_engine.engine.partials.clock = clock
    out = [d for a in range(0, len(records), 300) for d in det.process(records[a : a + 300], "p")]
    return [_key(d) for d in out + det.drain()], det


def test_sources_at_any_pace_decide_as_one_shard(shards, single) -> None:  # type: ignore[no-untyped-def]
    """Maximal skew: each source publishes its whole shard before the next one starts (a backlog
    at start). Buckets wait for every announced source, so nothing is applied late."""
    rng = np.random.default_rng(4)
    sink = Sink()
    for name, recs in zip(NAMES, shards, strict=True):
        rk = _rekey(sink, NAMES)
        _deliver(rk, recs, name, rng, 500, 10_000)
        assert rk.stats()["topology"]["held_records"] > 0  # the open run waits for its bucket's end
        rk.end_of_shard()
        assert rk.stats()["topology"]["held_records"] == 0
    got, det = _detect([d for _, d in sink.records])
    assert got == single
    st = det.stats()["engine"]
    assert st["partial_late_rows"] == 0 and st["partial_duplicate_rows"] == 0
    assert st["partial_sources"] == SHARDS

    # The same skew with sources that announce nobody else (the previous rule: newest time seen):
    # the first source's buckets are applied before the others' rows arrive.
    sink = Sink()
    for name, recs in zip(NAMES, shards, strict=True):
        rk = _rekey(sink, [])
        _deliver(rk, recs, name, rng, 500, 10_000)
        rk.end_of_shard()
    got, det = _detect([d for _, d in sink.records])
    assert det.stats()["engine"]["partial_late_rows"] > 0
    assert got != single


def test_a_silent_source_holds_the_others_back_only_until_its_timeout(shards) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    outs = []
    for name, recs in zip(NAMES[:3], shards[:3], strict=True):  # the fourth never publishes
        sink = Sink()
        _deliver(_rekey(sink, NAMES), recs, name, rng)
        outs.append([d for _, d in sink.records])
    n = max(map(len, outs))
    records = [o[i] for i in range(n) for o in outs if i < len(o)]  # the three publish side by side
    now = [1000.0]
    det = build_pipeline(_cfg("detect"), dry_run=True)
    det.bucket_engine.engine.partials.clock = lambda: now[0]
    half = len(records) // 2
    assert det.process(records[:half], "p") == []
    st = det.stats()["engine"]
    assert st["records"] == 0 and st["partial_pending_rows"] > 0  # all waits for the fourth
    pending = st["partial_pending_rows"]
    now[0] += 61  # topology.source_timeout_s (60) of silence
    det.process(records[half:], "p")
    st = det.stats()["engine"]
    assert st["partial_sources_timed_out"] == 1 and st["partial_sources_live"] == 3
    assert st["records"] > 0 and st["partial_pending_rows"] < pending


def test_a_restarted_rekey_processor_changes_nothing(shards, single) -> None:  # type: ignore[no-untyped-def]
    """Shard 0's processor checkpoints, publishes on, dies; its successor starts from the checkpoint
    and re-publishes everything after it, batched differently. Same decisions, same totals."""
    rng = np.random.default_rng(8)
    sink = Sink()
    for name, recs in zip(NAMES[1:], shards[1:], strict=True):
        rk = _rekey(sink, NAMES)
        _deliver(rk, recs, name, rng)
        rk.end_of_shard()
    recs = shards[0]
    first = _rekey(sink, NAMES)
    cut1, cut2 = len(recs) // 4, 3 * len(recs) // 4
    _deliver(first, recs[:cut1], NAMES[0], rng)
    ckpt = first.durable_position()  # where the processor checkpoints now
    assert isinstance(ckpt, tuple) and ckpt < recs[cut1 - 1][1]  # before the held run
    _deliver(first, recs[cut1:cut2], NAMES[0], rng)  # published, never checkpointed: then it dies
    again = next(i for i, (_, p) in enumerate(recs) if p > ckpt)
    second = _rekey(sink, NAMES)
    _deliver(second, recs[again:], NAMES[0], rng, 7, 150)  # other batch sizes
    second.end_of_shard()
    got, det = _detect([d for _, d in sink.records])
    st = det.stats()["engine"]
    assert st["partial_duplicate_rows"] > 1000
    assert got == single

    # The reference: the same records without the restart give the same engine totals.
    ref_sink = Sink()
    for name, r in zip(NAMES, shards, strict=True):
        rk = _rekey(ref_sink, NAMES)
        _deliver(rk, r, name, rng)
        rk.end_of_shard()
    _, ref = _detect([d for _, d in ref_sink.records])
    rs = ref.stats()["engine"]
    for k in ("records", "windows_closed", "findings", "tracked_keys.ip", "tracked_keys.user"):
        assert st[k] == rs[k], k
    assert st["partial_rows"] == rs["partial_rows"]  # runs are cut by content: the same rows


def test_the_kcl_processor_checkpoints_before_the_held_run_and_publishes_it_at_shard_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from consumer.kcl.config import CheckpointConfig, KclConfig
    from consumer.kcl.processor import ShardProcessor
    from tests.kcl.protocol import checkpoint_reply, drive, initialize, line45, process, record

    sink = Sink()
    cfg = KclConfig(checkpoint=CheckpointConfig(every_records=4, every_s=3600), status_dir=None)
    proc = ShardProcessor(cfg, lambda: _rekey(sink, NAMES[:1]), None, sleep=lambda s: None)
    t0 = 1_764_000_000.0
    times = [t0 + 0.1, t0 + 0.5, t0 + 1.2, t0 + 1.3, t0 + 1.9]  # buckets 0, 0, 1, 1, 1
    recs = [record(SEQ0 + i, line45(t, f"10.0.0.{i}")) for i, t in enumerate(times)]
    out = drive(
        proc,
        [initialize(NAMES[0]), process(recs[:2]), process(recs[2:]), checkpoint_reply(str(SEQ0 + 1))],
    )
    # 5 records delivered, but bucket 1's run is still open: the checkpoint stops after bucket 0's
    assert [m["sequenceNumber"] for m in out if m["action"] == "checkpoint"] == [str(SEQ0 + 1)]
    rk = proc.pipeline
    assert isinstance(rk, RekeyPipeline) and rk.stats()["topology"]["held_records"] == 3
    assert rk.durable_position() == (SEQ0 + 1, 0)
    drive(proc, [{"action": "shardEnded"}, checkpoint_reply()])
    assert rk.stats()["topology"]["held_records"] == 0
    last = partial_wire.decode(sink.records[-1][1], rk.bucket_engine.layout)
    assert isinstance(last, partial_wire.Progress) and last.final and last.source == NAMES[0]
    data = [partial_wire.decode(d, rk.bucket_engine.layout) for _, d in sink.records]
    ends = {e for d in data if isinstance(d, partial_wire.DataBundle) for e in d.run_ends}
    assert ends == {(SEQ0 + 1, 0), (SEQ0 + 4, 0)}  # the two runs, each published once


def test_per_source_progress_and_applied_runs_survive_a_detect_restart(shards, single) -> None:  # type: ignore[no-untyped-def]
    """The detect processor restarts from its snapshot mid-way, and the re-keying stage re-publishes
    a stretch it had published before the snapshot: still the one-shard decisions."""
    rng = np.random.default_rng(10)
    sink = Sink()
    for name, recs in zip(NAMES, shards, strict=True):
        rk = _rekey(sink, NAMES)
        _deliver(rk, recs, name, rng, 200, 3000)
        rk.end_of_shard()
    records = [d for _, d in sink.records]
    half = len(records) // 2
    first = build_pipeline(_cfg("detect"), dry_run=True)
    got = [d for a in range(0, half, 300) for d in first.process(records[a : min(a + 300, half)], "p")]
    second = build_pipeline(_cfg("detect"), dry_run=True)
    second.restore(first.snapshot())
    st = second.stats()["engine"]
    assert st["partial_sources"] == SHARDS and st["partial_pending_rows"] > 0
    again = records[half // 2 :]  # a re-published stretch, then the rest
    got += [d for a in range(0, len(again), 300) for d in second.process(again[a : a + 300], "p")]
    got += second.drain()
    assert second.stats()["engine"]["partial_duplicate_rows"] > 0
    assert [_key(d) for d in got] == single


def test_a_live_reload_of_the_rekey_stage_keeps_its_held_run(shards) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()
    rk = _rekey(sink, NAMES)
    recs = shards[0][:300]
    rk.process_positioned([x for x, _ in recs], [p for _, p in recs], NAMES[0])
    held, pos = rk.stats()["topology"]["held_records"], rk.durable_position()
    assert held > 0
    new = rk.reconfigured(_cfg("rekey"))
    assert isinstance(new, RekeyPipeline) and new is not rk
    assert new.stats()["topology"]["held_records"] == held and new.durable_position() == pos
    assert new.stats()["topology"]["raw_records"] == 300
