"""The binary form of partials: lossless, compact, refuses what it cannot read."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import partial_encode, partials
from detectors import partial_wire as wire
from detectors.config import StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine
from detectors.store import Channel
from tests.detectors.stream import stream
from tests.rekey.split import local, partial_engine, sub_batch

# tests.detectors.stream batches carry the ip and user keys only
IP_USER = [d for d in default_detectors() if d.key in ("ip", "user")]


def _eq(a: partials.KeyPartials, b: partials.KeyPartials) -> None:
    assert a.keys == b.keys
    assert np.array_equal(a.bucket, b.bucket) and np.array_equal(a.last_ms, b.last_ms)
    for sa, sb in zip(a.sums, b.sums, strict=True):
        assert sa.keys() == sb.keys() and all(np.array_equal(sa[m], sb[m]) for m in sa)
    for ra, rb in zip(a.regs, b.regs, strict=True):
        assert ra.keys() == rb.keys() and all(np.array_equal(ra[m], rb[m]) for m in ra)


def _with_runs(parts: dict[str, partials.KeyPartials], runs: int) -> dict[str, partials.KeyPartials]:
    for kp in parts.values():
        kp.run = np.arange(len(kp), dtype=np.int64) % runs
    return parts


def test_bundles_are_lossless_and_keyed_by_partition() -> None:
    e = partial_engine(IP_USER)
    layout = e.partials.layout
    for b in stream(minutes=3)[:5]:
        parts = _with_runs(dict(local(e, b)), 3)
        ends = [(10**30 + 7, 0), (10**30 + 9, 2), (10**31, 0)]  # real sequence numbers exceed 64 bits
        recs = partial_encode.encode_data("shardId-000000000003", parts, ends, layout, 16)
        assert len(recs) == len({pk for pk, _ in recs}) <= 16
        back: dict[str, list[partials.KeyPartials]] = {}
        for pk, data in recs:
            d = wire.decode(data, layout)
            assert isinstance(d, wire.DataBundle) and d.source == "shardId-000000000003"
            assert pk == f"p{d.partition}"
            for kt, kp in d.parts.items():
                assert all(wire.partition_of(f"{kt}\x00{k}", 16) == d.partition for k in kp.keys)
                kp.run = np.asarray([ends.index(d.run_ends[r]) for r in kp.run.tolist()])
                back.setdefault(kt, []).append(kp)
        for kt, kp in parts.items():
            got = partials.concat(back[kt])
            # same rows, in another order: sort both by (key, bucket, run)
            ka = sorted(range(len(kp)), key=lambda i: (kp.keys[i], int(kp.bucket[i]), int(kp.run[i])))
            kb = sorted(range(len(got)), key=lambda i: (got.keys[i], int(got.bucket[i]), int(got.run[i])))
            _eq(partials.take(kp, np.asarray(ka)), partials.take(got, np.asarray(kb)))
            assert np.array_equal(kp.run[ka], got.run[kb])


def test_progress_records_round_trip() -> None:
    layout = partial_engine(IP_USER).partials.layout
    p = wire.Progress("shardId-1", 1_764_000_000_123, ("shardId-0", "shardId-1"), final=True)
    assert wire.decode(partial_encode.encode_progress(p, layout), layout) == p


def test_merging_in_any_grouping_equals_one_aggregate() -> None:
    e = partial_engine(IP_USER)
    layout = e.partials.layout
    b = stream(minutes=2, batch_size=10_000)[0]
    whole = dict(local(e, b))
    rng = np.random.default_rng(0)
    to = rng.integers(0, 3, len(b))
    pieces = [dict(local(e, sub_batch(b, np.flatnonzero(to == s)))) for s in range(3)]
    for kt in layout.key_types:
        name = kt[0]
        merged = partials.merge(partials.concat([p[name] for p in pieces if name in p]))
        _eq(partials.merge(whole[name]), merged)
        everything = [c for c, cl in enumerate(layout.channels(name)) if cl.channel == Channel()]
        assert everything, name
        keyed = sum(1 for k in b.keys[name] if k is not None)
        assert int(merged.sums[everything[0]]["requests"].sum()) == keyed


def test_decode_refuses_other_layouts_versions_and_truncation() -> None:
    e = partial_engine(IP_USER)
    layout = e.partials.layout
    parts = _with_runs(dict(local(e, stream(minutes=1)[0])), 1)
    _, data = partial_encode.encode_data("s", parts, [(5, 0)], layout, 4)[0]
    other = Engine.from_config(IP_USER[:2], StateConfig(), ["ip", "user"])
    other_layout = other.enable_partials(1, 5.0)
    with pytest.raises(partials.PartialFormatError, match="another detector configuration"):
        wire.decode(data, other_layout)
    with pytest.raises(partials.PartialFormatError, match="version 9, this build reads version 2"):
        wire.decode(data[:4] + b"\x09" + data[5:], layout)
    with pytest.raises(partials.PartialFormatError, match="version 1"):
        wire.decode(b"\x00CGP\x01" + data[5:], layout)  # a per-key record of the first format
    with pytest.raises(partials.PartialFormatError, match=r"truncated|trailing"):
        wire.decode(data[:-3], layout)
    with pytest.raises(partials.PartialFormatError, match="trailing"):
        wire.decode(data + b"x", layout)
    assert wire.is_partial(data) and not wire.is_partial(b"1764000000.123\t1.2.3.4\n")


def test_windows_must_be_multiples_of_the_bucket_and_lateness_cover_it() -> None:
    e = Engine.from_config(IP_USER, StateConfig(), ["ip", "user"])
    with pytest.raises(ValueError, match="not a multiple of the partial bucket"):
        e.enable_partials(7, 5.0)
    e = Engine.from_config(IP_USER, StateConfig(allowed_lateness_s=0), ["ip", "user"])
    with pytest.raises(ValueError, match="allowed_lateness_s"):
        e.enable_partials(1, 5.0)
