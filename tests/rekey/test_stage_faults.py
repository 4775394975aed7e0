"""Faults at the stages: refused partials stop the re-keying process, corrupt partials are
quarantined, pending buckets survive a snapshot/restore."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from consumer.config import Config
from consumer.rekey.factory import build_pipeline
from consumer.rekey.stages import PartialsNotAcknowledged, RekeyPipeline
from consumer.traffic import generate
from detectors import partial_wire


def _cfg(role: str) -> Config:
    return Config.model_validate({"topology": {"role": role, "evaluate": "bucket"}})


@pytest.fixture(scope="module")
def batches() -> list[list[bytes]]:
    return list(generate(seed=3, duration_s=300, rate=40, batch_size=1500))


class Sink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.failed = 0
        self.fail_after = fail_after

    def put(self, records):  # type: ignore[no-untyped-def]
        if self.fail_after is not None and len(self.records) >= self.fail_after:
            self.failed += 1  # what Republisher reports after its last attempt
        else:
            self.records += list(records)
        return SimpleNamespace(failed=self.failed)


def test_refused_partials_end_the_process_without_returning(batches) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()
    rk = RekeyPipeline.from_config(_cfg("rekey"), publisher=sink)
    rk.process(batches[0], "s")
    sink.fail_after = len(sink.records)
    with pytest.raises(PartialsNotAcknowledged):
        rk.process(batches[1], "s")
    assert not isinstance(PartialsNotAcknowledged(1), Exception)  # the processor cannot swallow it


def test_partition_keys_are_the_keys_and_traffic_shrinks(batches) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()
    rk = RekeyPipeline.from_config(_cfg("rekey"), publisher=sink)
    for b in batches:
        rk.process(b, "s")
    where: dict[str, set[str]] = {}  # key -> partition keys it travelled under
    for pk, data in sink.records:
        assert pk == "w" or (pk.startswith("p") and int(pk[1:]) < 256)
        rec = partial_wire.decode(data, rk.bucket_engine.layout)
        if isinstance(rec, partial_wire.Progress):
            assert pk == "w" and rec.source == "s"
            continue
        assert rec.source == "s" and pk == f"p{rec.partition}"
        for kt, kp in rec.parts.items():
            for k in kp.keys:
                where.setdefault(f"{kt}:{k}", set()).add(pk)
    assert {k.split(":", 1)[0] for k in where} == {"ip", "user", "api_key"}
    assert all(len(pks) == 1 for pks in where.values())  # a key always meets on one shard
    assert len(sink.records) <= (256 + 1) * len(batches)  # data bundles + one progress record
    t = rk.stats()["topology"]
    assert t["raw_records"] == sum(map(len, batches))
    assert t["shrink_bytes"] > 3
    assert t["partial_records"] < min(t["raw_records"] / 5, t["key_records"])


def test_corrupt_partials_are_quarantined_not_fatal(batches) -> None:  # type: ignore[no-untyped-def]
    sink = Sink()
    RekeyPipeline.from_config(_cfg("rekey"), publisher=sink).process(batches[0], "s")
    det = build_pipeline(_cfg("detect"), dry_run=True)
    good = [d for _, d in sink.records]
    det.process([good[0][:-5], good[1] + b"zz", *good[2:]], "p")
    st = det.stats()
    assert st["topology"]["bad_partials"] == 2
    assert st["malformed_by_reason"] == {"bad_partial": 2}


def test_pending_buckets_survive_snapshot_and_restore(batches) -> None:  # type: ignore[no-untyped-def]
    whole = build_pipeline(_cfg("single"), dry_run=True)
    expected = [d for b in batches for d in whole.process(b, "raw")] + whole.drain()
    first = build_pipeline(_cfg("single"), dry_run=True)
    half = len(batches) // 2
    got = [d for b in batches[:half] for d in first.process(b, "raw")]
    assert first.stats()["engine"]["partial_pending_rows"] > 0
    second = build_pipeline(_cfg("single"), dry_run=True)
    second.restore(first.snapshot())
    got += [d for b in batches[half:] for d in second.process(b, "raw")] + second.drain()
    key = lambda d: (d.event_time, d.key, d.detector, d.action, d.score)  # noqa: E731
    assert [key(d) for d in got] == [key(d) for d in expected]
    assert expected


def test_a_live_reload_keeps_the_stage_and_its_pending_buckets(batches) -> None:  # type: ignore[no-untyped-def]
    whole = build_pipeline(_cfg("detect"), dry_run=True)
    expected = [d for b in batches for d in whole.process(b, "raw")] + whole.drain()
    first = build_pipeline(_cfg("detect"), dry_run=True)
    half = len(batches) // 2
    got = [d for b in batches[:half] for d in first.process(b, "raw")]
    tuned = _cfg("detect").model_copy(update={"quarantine": _cfg("detect").quarantine.model_copy()})
    second = first.reconfigured(tuned)
    assert type(second) is type(first)
    got += [d for b in batches[half:] for d in second.process(b, "raw")] + second.drain()
    key = lambda d: (d.event_time, d.key, d.detector, d.action, d.score)  # noqa: E731
    assert [key(d) for d in got] == [key(d) for d in expected]
    with pytest.raises(ValueError, match="topology cannot change"):
        second.reconfigured(_cfg("single"))
