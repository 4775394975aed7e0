"""Mergeable partial aggregates per (key type, key, time bucket): what a re-keying stage sends on.

A processor that sees only part of a user's traffic (one shard of a randomly partitioned stream)
cannot judge the user, but it can pre-aggregate exactly what the engine's windows add up: per key
and bucket, the sum metrics of every channel (filter) the configured detectors use, the HLL
registers of every distinct metric (a register-wise max merges sketches exactly), and the bucket's
last event time (merged by max). Sums add, registers max, times max: merging is associative and
commutative, so the partials of N shards merged in any order equal those of one processor.

Time resolution: ``bucket_s`` (default 1 s) buckets; a bucket's records are applied to the windows
together at the bucket's last event time (rounded to the millisecond). Every window length must be a
multiple of ``bucket_s`` so a bucket never straddles two windows.

Binary form: ``detectors.partial_wire`` (bundles of rows per partition of keys, with their source
and its progress).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from detectors.batch import RecordBatch
from detectors.metrics import BatchValues
from detectors.sketch import REGISTERS, register_and_rank
from detectors.store import Channel

if TYPE_CHECKING:
    from detectors.engine import Engine


@dataclass(frozen=True)
class ChannelLayout:
    channel: Channel
    sums: tuple[str, ...]  # always starts with "requests"
    distincts: tuple[str, ...]


@dataclass(frozen=True)
class PartialLayout:
    """What a partial row carries, derived from the engine's stores (same config = same layout)."""

    bucket_s: int
    key_types: tuple[tuple[str, tuple[ChannelLayout, ...]], ...]

    @classmethod
    def from_engine(cls, engine: Engine, bucket_s: int) -> PartialLayout:
        if bucket_s < 1:
            raise ValueError(f"partial bucket_s must be >= 1, got {bucket_s}")
        per: dict[str, dict[Channel, tuple[set[str], set[str]]]] = {}
        for (kt, ch, w), store in engine.stores.items():
            if w % bucket_s:
                raise ValueError(
                    f"a {w} s window of key type {kt!r} is not a multiple of the partial bucket "
                    f"({bucket_s} s): a bucket would straddle two windows"
                )
            s, d = per.setdefault(kt, {}).setdefault(ch, (set(), set()))
            s.update(store.sums)
            d.update(store.distincts)
        kts = []
        for kt in sorted(per):
            chans = sorted(per[kt].items(), key=lambda it: repr(it[0]))
            kts.append(
                (
                    kt,
                    tuple(
                        ChannelLayout(ch, ("requests", *sorted(s - {"requests"})), tuple(sorted(d)))
                        for ch, (s, d) in chans
                    ),
                )
            )
        if any(len(chs) > 16 for _, chs in kts):
            raise ValueError(
                "more than 16 distinct detector filters on one key type: partials carry at most 16"
            )
        return cls(bucket_s, tuple(kts))

    @cached_property
    def fingerprint(self) -> int:
        doc = repr(
            (
                self.bucket_s,
                [(kt, [(c.channel, c.sums, c.distincts) for c in chs]) for kt, chs in self.key_types],
            )
        )
        return zlib.crc32(doc.encode())

    def channels(self, key_type: str) -> tuple[ChannelLayout, ...]:
        for kt, chs in self.key_types:
            if kt == key_type:
                return chs
        raise KeyError(key_type)


@dataclass
class KeyPartials:
    """Rows of one key type: one per (key, bucket) in a chunk (per (key, run, bucket) when built with
    runs, see ``build``); columnar."""

    keys: list[str]
    bucket: np.ndarray  # int64
    last_ms: np.ndarray  # int64, epoch milliseconds of the bucket's last record
    sums: list[dict[str, np.ndarray]] = field(default_factory=list)  # per channel: float64 per row
    regs: list[dict[str, np.ndarray]] = field(default_factory=list)  # per channel: uint8 (rows, 32)
    run: np.ndarray | None = None  # int64 per row: the run of raw records it aggregates (wire dedup)

    def __len__(self) -> int:
        return len(self.keys)

    def present(self, c: int) -> np.ndarray:
        return self.sums[c]["requests"] > 0


def build(
    batch: RecordBatch,
    layout: PartialLayout,
    masks: dict[Channel, np.ndarray | None],
    run: np.ndarray | None = None,
) -> dict[str, KeyPartials]:
    """Pre-aggregate a parsed batch (keys extracted). ``masks``: per channel, which records it counts
    (``None`` = all), as the engine's channel filters compute them. ``run`` (int64 per record,
    optional): rows never mix records of two runs, and carry their run (the re-keying stage's unit
    of exactly-once publication). Records with a non-finite time or without a key of a key type are
    left out of that key type."""
    out: dict[str, KeyPartials] = {}
    n = len(batch)
    if n == 0:
        return out
    t = np.asarray(batch.time, dtype=np.float64)
    finite = np.isfinite(t)
    bs = layout.bucket_s
    bucket_all = np.floor_divide(np.where(finite, t, 0.0), bs).astype(np.int64)
    ms_all = np.rint(np.where(finite, t, 0.0) * 1000.0).astype(np.int64)
    bv = BatchValues(batch)
    for kt, chans in layout.key_types:
        keys = batch.keys.get(kt)
        if keys is None:
            raise ValueError(f"batch has no keys for key type {kt!r} (KeyExtractor fills batch.keys)")
        codes_of: dict[str, int] = {}
        code = np.fromiter(
            (-1 if k is None else codes_of.setdefault(k, len(codes_of)) for k in keys),
            dtype=np.int64,
            count=n,
        )
        any_ch = np.zeros(n, dtype=bool)
        ch_masks = []
        for cl in chans:
            m = masks.get(cl.channel)
            m = np.ones(n, dtype=bool) if m is None else m
            ch_masks.append(m)
            any_ch |= m
        sel = np.flatnonzero((code >= 0) & finite & any_ch)
        if sel.size == 0:
            continue
        b = bucket_all[sel]
        bmin = int(b.min())
        span = int(b.max()) - bmin + 1
        gkey = code[sel] * span + (b - bmin)
        if run is not None:
            r = np.asarray(run, dtype=np.int64)[sel]
            rmin = int(r.min())
            gkey = gkey * (int(r.max()) - rmin + 1) + (r - rmin)
        ug, first, inv = np.unique(gkey, return_index=True, return_inverse=True)
        G = ug.size
        names = list(codes_of)
        kcode = code[sel][first]
        kp = KeyPartials(
            keys=[names[i] for i in kcode.tolist()],
            bucket=b[first],
            last_ms=np.full(G, np.iinfo(np.int64).min, dtype=np.int64),
            run=None if run is None else np.asarray(run, dtype=np.int64)[sel][first],
        )
        np.maximum.at(kp.last_ms, inv, ms_all[sel])
        for cl, m in zip(chans, ch_masks, strict=True):
            w = m[sel].astype(np.float64)
            sums = {s: np.bincount(inv, weights=bv.value(s)[sel] * w, minlength=G) for s in cl.sums}
            regs = {}
            for d in cl.distincts:
                rg = np.zeros((G, REGISTERS), dtype=np.uint8)
                inch = np.flatnonzero(m[sel])
                idx, rank = register_and_rank(bv.hashes(d)[sel[inch]])
                np.maximum.at(rg.reshape(-1), inv[inch] * REGISTERS + idx, rank)
                regs[d] = rg
            kp.sums.append(sums)
            kp.regs.append(regs)
        out[kt] = kp
    return out


def concat(chunks: list[KeyPartials]) -> KeyPartials:
    if len(chunks) == 1:
        return chunks[0]
    nch = len(chunks[0].sums)
    runs = [c.run for c in chunks]
    return KeyPartials(
        keys=[k for c in chunks for k in c.keys],
        bucket=np.concatenate([c.bucket for c in chunks]),
        last_ms=np.concatenate([c.last_ms for c in chunks]),
        sums=[
            {m: np.concatenate([c.sums[i][m] for c in chunks]) for m in chunks[0].sums[i]} for i in range(nch)
        ],
        regs=[
            {m: np.concatenate([c.regs[i][m] for c in chunks]) for m in chunks[0].regs[i]} for i in range(nch)
        ],
        run=None if any(r is None for r in runs) else np.concatenate(runs),  # type: ignore[arg-type]
    )


def take(kp: KeyPartials, idx: np.ndarray) -> KeyPartials:
    return KeyPartials(
        keys=[kp.keys[i] for i in idx.tolist()],
        bucket=kp.bucket[idx],
        last_ms=kp.last_ms[idx],
        sums=[{m: a[idx] for m, a in s.items()} for s in kp.sums],
        regs=[{m: a[idx] for m, a in r.items()} for r in kp.regs],
        run=None if kp.run is None else kp.run[idx],
    )


def merge(kp: KeyPartials) -> KeyPartials:
    """Rows of the same (key, bucket) merged (runs forgotten); rows ordered by (bucket, key) so the
    order does not depend on how the rows arrived (the engine allocates key slots in arrival order)."""
    if len(kp) == 0:
        return kp
    # Key codes in key order: one C-level sort of the distinct keys, then integer sorts only.
    uniq = sorted(set(kp.keys))
    rank = {k: i for i, k in enumerate(uniq)}
    kc = np.fromiter((rank[k] for k in kp.keys), dtype=np.int64, count=len(kp))
    order = np.lexsort((kc, kp.bucket))
    kc = kc[order]
    bucket = kp.bucket[order]
    same = np.zeros(len(kp), dtype=bool)
    if len(kp) > 1:
        same[1:] = (bucket[1:] == bucket[:-1]) & (kc[1:] == kc[:-1])
    heads = np.flatnonzero(~same)
    keys = [uniq[i] for i in kc[heads].tolist()]
    if not same.any():
        out = take(kp, order)
        out.keys, out.run = keys, None
        return out
    grp = np.cumsum(~same) - 1
    G = heads.size
    last_ms = np.full(G, np.iinfo(np.int64).min, dtype=np.int64)
    out = KeyPartials(keys=keys, bucket=bucket[heads], last_ms=last_ms)
    np.maximum.at(out.last_ms, grp, kp.last_ms[order])
    for s, r in zip(kp.sums, kp.regs, strict=True):
        out.sums.append({m: np.bincount(grp, weights=a[order], minlength=G) for m, a in s.items()})
        regs = {}
        for m, a in r.items():
            z = np.zeros((G, REGISTERS), dtype=np.uint8)
            np.maximum.at(z, grp, a[order])
            regs[m] = z
        out.regs.append(regs)
    return out


class PartialFormatError(ValueError):
    """A partial record that cannot be decoded (truncated, other version, other layout)."""


class PartialValues:
    """Per-row metric values of one channel for the engine's stores (the BatchValues of partial rows)."""

    def __init__(self, sums: dict[str, np.ndarray], regs: dict[str, np.ndarray]) -> None:
        self._sums = sums
        self._regs = regs

    def value(self, name: str) -> np.ndarray:
        return self._sums[name]

    def registers(self, name: str) -> np.ndarray:
        return self._regs[name]
