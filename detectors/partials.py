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

Binary form (one Kinesis record per key, versioned; see ``encode``/``decode``): a 4-byte magic that
no text log line starts with, a version, a layout fingerprint (the detect stage refuses partials
built for another detector configuration), the key, and per row the bucket, the last time's offset
in the bucket in ms, a channel-presence mask, then per present channel its sums (uint32 for counts,
float64 otherwise: lossless) and each HLL sketch as a 32-bit mask of non-zero registers plus those
registers' bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from detectors.batch import RecordBatch
from detectors.metrics import CATALOG, BatchValues
from detectors.sketch import REGISTERS, register_and_rank
from detectors.store import Channel

if TYPE_CHECKING:
    from detectors.engine import Engine

MAGIC = b"\x00CGP"
VERSION = 1
MAX_ROWS_PER_RECORD = 2000
_HEAD = struct.Struct("<4sBIBH")  # magic, version, layout crc, key type index, key length
_ROWS = struct.Struct("<Hq")  # rows, base bucket


BUNDLE_MAGIC = b"\x00CGB"
BUNDLE_VERSION = 1
MAX_BUNDLE_BYTES = 256 * 1024
_BUNDLE_HEAD = struct.Struct("<4sBI")  # magic, version, count


def is_partial(data: bytes) -> bool:
    """A partial record or a bundle of them (no log line starts with a NUL byte)."""
    return data[:4] in (MAGIC, BUNDLE_MAGIC)


def partition_of(partition_key: str, partitions: int) -> int:
    """Stable (crc32, not Python's per-process hash) partition of a key."""
    return zlib.crc32(partition_key.encode("utf-8", "surrogatepass")) % partitions


def bundle(records: list[tuple[str, bytes]], partitions: int) -> list[tuple[str, bytes]]:
    """Pack per-key records into one Kinesis record per partition (``p<n>``, n = crc32(key) mod
    ``partitions``; split beyond MAX_BUNDLE_BYTES): a key always travels under the same partition
    key, so its partials still meet on one shard, and a batch costs at most ``partitions`` records
    instead of one per key (the shard limit of 1,000 records/s binds before the 1 MiB/s one)."""
    groups: dict[int, list[bytes]] = {}
    for pk, data in records:
        groups.setdefault(partition_of(pk, partitions), []).append(data)
    out: list[tuple[str, bytes]] = []
    for p in sorted(groups):
        chunk: list[bytes] = []
        size = 0
        for data in groups[p] + [b""]:
            if data and (not chunk or size + len(data) + 4 <= MAX_BUNDLE_BYTES):
                chunk.append(data)
                size += len(data) + 4
                continue
            head = _BUNDLE_HEAD.pack(BUNDLE_MAGIC, BUNDLE_VERSION, len(chunk))
            body = b"".join(struct.pack("<I", len(d)) + d for d in chunk)
            out.append((f"p{p}", head + body))
            chunk, size = ([data], len(data) + 4) if data else ([], 0)
    return out


def unbundle(data: bytes) -> list[bytes]:
    """The per-key records of a bundle (a plain partial record is returned as is)."""
    if data[:4] != BUNDLE_MAGIC:
        return [data]
    try:
        _, ver, count = _BUNDLE_HEAD.unpack_from(data, 0)
        if ver != BUNDLE_VERSION:
            raise PartialFormatError(f"partial bundle version {ver}, this build reads {BUNDLE_VERSION}")
        pos = _BUNDLE_HEAD.size
        out = []
        for _ in range(count):
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if pos + n > len(data):
                raise PartialFormatError("truncated partial bundle")
            out.append(data[pos : pos + n])
            pos += n
    except struct.error:
        raise PartialFormatError("truncated partial bundle") from None
    if pos != len(data):
        raise PartialFormatError(f"partial bundle has {len(data) - pos} trailing bytes")
    return out


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

    @property
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
    """Rows of one key type: one per (key, bucket) in a chunk; columnar."""

    keys: list[str]
    bucket: np.ndarray  # int64
    last_ms: np.ndarray  # int64, epoch milliseconds of the bucket's last record
    sums: list[dict[str, np.ndarray]] = field(default_factory=list)  # per channel: float64 per row
    regs: list[dict[str, np.ndarray]] = field(default_factory=list)  # per channel: uint8 (rows, 32)

    def __len__(self) -> int:
        return len(self.keys)

    def present(self, c: int) -> np.ndarray:
        return self.sums[c]["requests"] > 0


def build(
    batch: RecordBatch, layout: PartialLayout, masks: dict[Channel, np.ndarray | None]
) -> dict[str, KeyPartials]:
    """Pre-aggregate a parsed batch (keys extracted). ``masks``: per channel, which records it counts
    (``None`` = all), as the engine's channel filters compute them. Records with a non-finite time or
    without a key of a key type are left out of that key type."""
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
        ug, inv = np.unique(gkey, return_inverse=True)
        G = ug.size
        names = list(codes_of)
        kcode = ug // span
        kp = KeyPartials(
            keys=[names[i] for i in kcode.tolist()],
            bucket=(ug % span) + bmin,
            last_ms=np.full(G, np.iinfo(np.int64).min, dtype=np.int64),
        )
        np.maximum.at(kp.last_ms, inv, ms_all[sel])
        for cl, m in zip(chans, ch_masks, strict=True):
            w = m[sel].astype(np.float64)
            sums = {s: np.bincount(inv, weights=bv.value(s)[sel] * w, minlength=G) for s in cl.sums}
            regs = {}
            for d in cl.distincts:
                r = np.zeros((G, REGISTERS), dtype=np.uint8)
                inch = np.flatnonzero(m[sel])
                idx, rank = register_and_rank(bv.hashes(d)[sel[inch]])
                np.maximum.at(r.reshape(-1), inv[inch] * REGISTERS + idx, rank)
                regs[d] = r
            kp.sums.append(sums)
            kp.regs.append(regs)
        out[kt] = kp
    return out


def concat(chunks: list[KeyPartials]) -> KeyPartials:
    if len(chunks) == 1:
        return chunks[0]
    nch = len(chunks[0].sums)
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
    )


def take(kp: KeyPartials, idx: np.ndarray) -> KeyPartials:
    return KeyPartials(
        keys=[kp.keys[i] for i in idx.tolist()],
        bucket=kp.bucket[idx],
        last_ms=kp.last_ms[idx],
        sums=[{m: a[idx] for m, a in s.items()} for s in kp.sums],
        regs=[{m: a[idx] for m, a in r.items()} for r in kp.regs],
    )


def merge(kp: KeyPartials) -> KeyPartials:
    """Rows of the same (key, bucket) merged; rows ordered by (bucket, key) so the order does not
    depend on how the rows arrived (the engine allocates key slots in arrival order)."""
    if len(kp) == 0:
        return kp
    order = sorted(range(len(kp)), key=lambda i: (int(kp.bucket[i]), kp.keys[i]))
    kp = take(kp, np.asarray(order, dtype=np.int64))
    same = np.zeros(len(kp), dtype=bool)
    if len(kp) > 1:
        same[1:] = (kp.bucket[1:] == kp.bucket[:-1]) & np.array(
            [a == b for a, b in zip(kp.keys[1:], kp.keys[:-1], strict=True)], dtype=bool
        )
    if not same.any():
        return kp
    grp = np.cumsum(~same) - 1
    G = int(grp[-1]) + 1
    heads = np.flatnonzero(~same)
    out = KeyPartials(
        keys=[kp.keys[i] for i in heads.tolist()],
        bucket=kp.bucket[heads],
        last_ms=np.full(G, np.iinfo(np.int64).min, dtype=np.int64),
    )
    np.maximum.at(out.last_ms, grp, kp.last_ms)
    for s, r in zip(kp.sums, kp.regs, strict=True):
        out.sums.append({m: np.bincount(grp, weights=a, minlength=G) for m, a in s.items()})
        regs = {}
        for m, a in r.items():
            z = np.zeros((G, REGISTERS), dtype=np.uint8)
            np.maximum.at(z, grp, a)
            regs[m] = z
        out.regs.append(regs)
    return out


# -- binary encoding ----------------------------------------------------------------------------------


def _sum_dtype(metric: str) -> str:
    return "<u4" if CATALOG[metric].dtype.startswith("uint") else "<f8"


def encode(kt: str, kp: KeyPartials, layout: PartialLayout) -> list[tuple[str, bytes]]:
    """One ``(partition key, data)`` per key (more if it has over MAX_ROWS_PER_RECORD rows); the
    partition key is ``key type + NUL + key`` so all partials of a key meet on one shard."""
    chans = layout.channels(kt)
    kti = [k for k, _ in layout.key_types].index(kt)
    fp = layout.fingerprint
    bs = layout.bucket_s
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(kp.keys):
        by_key.setdefault(k, []).append(i)
    out: list[tuple[str, bytes]] = []
    for key, rows_all in by_key.items():
        kb = key.encode("utf-8", "surrogatepass")
        if len(kb) > 0xFFFF:
            raise ValueError(f"a {kt!r} key of {len(kb)} bytes is too long to encode")
        for a in range(0, len(rows_all), MAX_ROWS_PER_RECORD):
            rows = np.asarray(rows_all[a : a + MAX_ROWS_PER_RECORD], dtype=np.int64)
            b = kp.bucket[rows]
            base = int(b.min())
            off = kp.last_ms[rows] - b * (bs * 1000)
            pres = np.zeros(rows.size, dtype="<u2")
            for c in range(len(chans)):
                pres |= kp.present(c)[rows].astype("<u2") << c
            parts = [
                _HEAD.pack(MAGIC, VERSION, fp, kti, len(kb)),
                kb,
                _ROWS.pack(rows.size, base),
                (b - base).astype("<u4").tobytes(),
                off.astype("<u4").tobytes(),
                pres.tobytes(),
            ]
            for c, cl in enumerate(chans):
                pr = rows[kp.present(c)[rows]]
                for m in cl.sums:
                    parts.append(kp.sums[c][m][pr].astype(_sum_dtype(m)).tobytes())
                for m in cl.distincts:
                    r = kp.regs[c][m][pr]
                    nz = r != 0
                    bits = (nz.astype("<u8") << np.arange(REGISTERS, dtype="<u8")).sum(axis=1).astype("<u4")
                    parts.append(bits.tobytes())
                    parts.append(r[nz].tobytes())
            out.append((f"{kt}\x00{key}", b"".join(parts)))
    return out


class PartialFormatError(ValueError):
    """A partial record that cannot be decoded (truncated, other version, other layout)."""


def decode(data: bytes, layout: PartialLayout) -> tuple[str, KeyPartials]:
    """The key type and rows of one encoded record; PartialFormatError naming what is wrong."""
    try:
        magic, ver, fp, kti, klen = _HEAD.unpack_from(data, 0)
        if magic != MAGIC:
            raise PartialFormatError("not a partial record (magic)")
        if ver != VERSION:
            raise PartialFormatError(f"partial record version {ver}, this build reads {VERSION}")
        if fp != layout.fingerprint:
            raise PartialFormatError(
                "partial record built for another detector configuration (layout fingerprint "
                f"{fp:08x}, expected {layout.fingerprint:08x}): run both stages with the same config"
            )
        kt, chans = layout.key_types[kti]
        pos = _HEAD.size
        key = data[pos : pos + klen].decode("utf-8", "surrogatepass")
        pos += klen
        n, base = _ROWS.unpack_from(data, pos)
        pos += _ROWS.size

        def arr(dtype: str, count: int) -> np.ndarray:
            nonlocal pos
            a = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
            pos += a.nbytes
            return a

        bucket = arr("<u4", n).astype(np.int64) + base
        last_ms = arr("<u4", n).astype(np.int64) + bucket * (layout.bucket_s * 1000)
        pres = arr("<u2", n)
        kp = KeyPartials(keys=[key] * n, bucket=bucket, last_ms=last_ms)
        for c, cl in enumerate(chans):
            pr = np.flatnonzero(pres & (1 << c))
            sums = {}
            for m in cl.sums:
                v = np.zeros(n)
                v[pr] = arr(_sum_dtype(m), pr.size)
                sums[m] = v
            regs = {}
            for m in cl.distincts:
                bits = arr("<u4", pr.size)
                nz = ((bits[:, None].astype(np.uint64) >> np.arange(REGISTERS, dtype=np.uint64)) & 1).astype(
                    bool
                )
                r = np.zeros((n, REGISTERS), dtype=np.uint8)
                sub = np.zeros((pr.size, REGISTERS), dtype=np.uint8)
                sub[nz] = arr("u1", int(nz.sum()))
                r[pr] = sub
                regs[m] = r
            kp.sums.append(sums)
            kp.regs.append(regs)
        if pos != len(data):
            raise PartialFormatError(f"partial record has {len(data) - pos} trailing bytes")
        return kt, kp
    except (struct.error, ValueError, IndexError) as exc:
        if isinstance(exc, PartialFormatError):
            raise
        raise PartialFormatError(f"truncated or corrupt partial record ({exc})") from None


class PartialValues:
    """Per-row metric values of one channel for the engine's stores (the BatchValues of partial rows)."""

    def __init__(self, sums: dict[str, np.ndarray], regs: dict[str, np.ndarray]) -> None:
        self._sums = sums
        self._regs = regs

    def value(self, name: str) -> np.ndarray:
        return self._sums[name]

    def registers(self, name: str) -> np.ndarray:
        return self._regs[name]
