"""The binary form of partials: lossless, compact, refuses what it cannot read."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import partials
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


def test_encode_decode_is_lossless_and_keyed_by_key() -> None:
    e = partial_engine(IP_USER)
    layout = e.partials.layout
    for b in stream(minutes=3)[:5]:
        for kt, kp in local(e, b):
            recs = partials.encode(kt, kp, layout)
            assert len({pk for pk, _ in recs}) == len(set(kp.keys))  # one record per key here
            back = [partials.decode(d, layout) for _, d in recs]
            assert all(k == kt for k, _ in back)
            assert all(pk == f"{kt}\x00{p.keys[0]}" for (pk, _), (_, p) in zip(recs, back, strict=True))
            merged = partials.merge(partials.concat([p for _, p in back]))
            _eq(partials.merge(kp), merged)


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
    kt, kp = local(e, stream(minutes=1)[0])[0]
    _, data = partials.encode(kt, kp, layout)[0]
    other = Engine.from_config(IP_USER[:2], StateConfig(), ["ip", "user"])
    other_layout = other.enable_partials(1, 5.0)
    with pytest.raises(partials.PartialFormatError, match="another detector configuration"):
        partials.decode(data, other_layout)
    with pytest.raises(partials.PartialFormatError, match="version"):
        partials.decode(data[:4] + b"\x09" + data[5:], layout)
    with pytest.raises(partials.PartialFormatError, match=r"truncated|trailing"):
        partials.decode(data[:-3], layout)
    with pytest.raises(partials.PartialFormatError, match="trailing"):
        partials.decode(data + b"x", layout)
    assert partials.is_partial(data) and not partials.is_partial(b"1764000000.123\t1.2.3.4\n")


def test_windows_must_be_multiples_of_the_bucket_and_lateness_cover_it() -> None:
    e = Engine.from_config(IP_USER, StateConfig(), ["ip", "user"])
    with pytest.raises(ValueError, match="not a multiple of the partial bucket"):
        e.enable_partials(7, 5.0)
    e = Engine.from_config(IP_USER, StateConfig(allowed_lateness_s=0), ["ip", "user"])
    with pytest.raises(ValueError, match="allowed_lateness_s"):
        e.enable_partials(1, 5.0)
