"""The partials stream's records: data bundles and progress records (format version 2).

A **data bundle** holds the rows (``detectors.partials.KeyPartials``) one re-keying processor
publishes for one partition of keys (``p<crc32(key type NUL key) mod partitions>``, the Kinesis
partition key: all of a key's rows meet on one detect processor), with

- its **source**: the raw shard the rows come from;
- its **runs**: each row aggregates raw records of one run (consecutive raw records of one time
  bucket, see ``consumer.rekey.runs``), and the bundle lists the stream position (sequence number,
  sub-sequence) of each referenced run's last raw record. Runs are cut by content only, so a
  re-keying processor restarted from its checkpoint re-publishes the very same runs, however the
  KCL batches the records: the detect stage drops the rows of runs it already applied (per source
  and partition, ``partial_buffer``).

A **progress record** says that a source has published everything it holds up to an event time
(its watermark), which raw shards it knows are open (the sources a detect stage must wait for),
and whether the source ended (a parent shard after a reshard). Progress records are sent after the
data they cover is acknowledged, to every partials shard.

Columnar layout, one block per key type, so decoding is a handful of ``numpy.frombuffer`` calls
per bundle, not a loop over keys: key table (lengths + bytes), per row key index, bucket offset,
last-time offset (ms in the bucket), run index, channel-presence mask; then per channel and metric
the sums of the rows present in it (uint32 counts, float64 otherwise: lossless) and each HLL sketch
as a 32-bit mask of non-zero registers plus those registers' bytes.

Versioned: a record of another version is refused with an error naming both versions.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.metrics import CATALOG
from detectors.partials import KeyPartials, PartialFormatError, PartialLayout
from detectors.sketch import REGISTERS

MAGIC = b"\x00CGB"
LEGACY_MAGIC = b"\x00CGP"  # version 1 per-key records
VERSION = 2
DATA, PROGRESS = 0, 1
MAX_BUNDLE_BYTES = 256 * 1024  # a segment is split (at run boundaries) to stay below this
MAX_RECORD_BYTES = 1_000_000  # Kinesis: 1 MiB per record, partition key included
_HEAD = struct.Struct("<4sBBI")  # magic, version, kind, layout fingerprint
_BLOCK = struct.Struct("<BIIq")  # key type index, keys, rows, base bucket
_PROGRESS = struct.Struct("<qBH")  # watermark ms, final, number of known sources
_U4 = struct.Struct("<I")

Position = tuple[int, int]  # (sequence number, sub-sequence number) of a raw record


@dataclass
class DataBundle:
    source: str
    partition: int
    run_ends: list[Position]  # rows' ``run`` index into this
    parts: dict[str, KeyPartials] = field(default_factory=dict)

    def rows(self) -> int:
        return sum(len(kp) for kp in self.parts.values())


@dataclass(frozen=True)
class Progress:
    source: str
    watermark_ms: int  # everything the source holds up to this event time is published before this
    sources: tuple[str, ...] = ()  # raw shards the sender knows are open (itself included)
    final: bool = False  # the source ended (shard end): it holds nobody back any more


def is_partial(data: bytes) -> bool:
    """A partials-stream record (no log line starts with a NUL byte); version 1 records included,
    so they are refused with a clear error instead of being parsed as a log line."""
    return data[:4] in (MAGIC, LEGACY_MAGIC)


def partition_of(partition_key: str, partitions: int) -> int:
    """Stable (crc32, not Python's per-process hash) partition of a key."""
    return zlib.crc32(partition_key.encode("utf-8", "surrogatepass")) % partitions


def kinesis_hash(partition_key: str) -> int:
    """The 128-bit hash Kinesis maps a partition key to a shard with (MD5, big-endian)."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def _str8(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    if len(b) > 255:
        raise ValueError(f"source id of {len(b)} bytes (at most 255)")
    return bytes([len(b)]) + b


def _sum_dtype(metric: str) -> str:
    return "<u4" if CATALOG[metric].dtype.startswith("uint") else "<f8"


# -- encoding ----------------------------------------------------------------------------------------


def encode_progress(p: Progress, layout: PartialLayout) -> bytes:
    parts = [
        _HEAD.pack(MAGIC, VERSION, PROGRESS, layout.fingerprint),
        _str8(p.source),
        _PROGRESS.pack(p.watermark_ms, int(p.final), len(p.sources)),
    ]
    parts += [_str8(s) for s in p.sources]
    return b"".join(parts)


def encode_data(
    source: str,
    parts: dict[str, KeyPartials],
    run_ends: Sequence[Position],
    layout: PartialLayout,
    partitions: int,
) -> list[tuple[str, bytes]]:
    """One ``("p<n>", bundle)`` per partition with rows; rows must carry ``run`` (index into
    ``run_ends``). Each bundle lists only the runs its rows reference."""
    by_part: dict[int, list[tuple[int, KeyPartials, np.ndarray]]] = {}
    for kt, kp in parts.items():
        if len(kp) == 0:
            continue
        if kp.run is None:
            raise ValueError("rows to publish must carry their run")
        kti = [k for k, _ in layout.key_types].index(kt)
        pmemo: dict[str, int] = {}
        part = np.fromiter(
            (pmemo.setdefault(k, partition_of(f"{kt}\x00{k}", partitions)) for k in kp.keys),
            dtype=np.int64,
            count=len(kp),
        )
        order = np.argsort(part, kind="stable")
        ps = part[order]
        cuts = np.flatnonzero(np.diff(ps)) + 1
        for grp in np.split(order, cuts):
            by_part.setdefault(int(part[grp[0]]), []).append((kti, kp, grp))
    out: list[tuple[str, bytes]] = []
    for p in sorted(by_part):
        blocks = by_part[p]
        used = np.unique(np.concatenate([kp.run[rows] for _, kp, rows in blocks]))  # type: ignore[index]
        ends = ",".join(f"{run_ends[r][0]}:{run_ends[r][1]}" for r in used.tolist()).encode()
        body = [
            _HEAD.pack(MAGIC, VERSION, DATA, layout.fingerprint),
            _str8(source),
            _U4.pack(p),
            _U4.pack(len(used)),
            _U4.pack(len(ends)),
            ends,
            bytes([len(blocks)]),
        ]
        for kti, kp, rows in blocks:
            body.append(_block(kti, kp, rows, used, layout))
        data = b"".join(body)
        if len(data) + 8 > MAX_RECORD_BYTES:
            raise ValueError(
                f"partials of one run for partition {p} take {len(data)} bytes, over the Kinesis record "
                "limit: raise topology.partitions or lower topology.bucket_s"
            )
        out.append((f"p{p}", data))
    return out


def _block(kti: int, kp: KeyPartials, rows: np.ndarray, used: np.ndarray, layout: PartialLayout) -> bytes:
    kt, chans = layout.key_types[kti]
    bs_ms = layout.bucket_s * 1000
    codes: dict[str, int] = {}
    kidx = np.fromiter((codes.setdefault(kp.keys[i], len(codes)) for i in rows.tolist()), np.int64, rows.size)
    kb = [k.encode("utf-8", "surrogatepass") for k in codes]
    if any(len(b) > 0xFFFF for b in kb):
        raise ValueError(f"a {kt!r} key longer than 65535 bytes cannot be encoded")
    b = kp.bucket[rows]
    base = int(b.min())
    off = kp.last_ms[rows] - b * bs_ms
    run = np.searchsorted(used, kp.run[rows])  # type: ignore[index]
    pres = np.zeros(rows.size, dtype="<u2")
    present = [kp.present(c)[rows] for c in range(len(chans))]
    for c, pr in enumerate(present):
        pres |= pr.astype("<u2") << c
    out = [
        _BLOCK.pack(kti, len(kb), rows.size, base),
        np.fromiter((len(x) for x in kb), "<u2", len(kb)).tobytes(),
        b"".join(kb),
        kidx.astype("<u4").tobytes(),
        (b - base).astype("<u4").tobytes(),
        off.astype("<u4").tobytes(),
        run.astype("<u4").tobytes(),
        pres.tobytes(),
    ]
    shifts = np.arange(REGISTERS, dtype="<u8")
    for c, cl in enumerate(chans):
        sel = rows[present[c]]
        for m in cl.sums:
            out.append(kp.sums[c][m][sel].astype(_sum_dtype(m)).tobytes())
        for m in cl.distincts:
            r = kp.regs[c][m][sel]
            nz = r != 0
            out.append((nz.astype("<u8") << shifts).sum(axis=1).astype("<u4").tobytes())
            out.append(r[nz].tobytes())
    return b"".join(out)


# -- decoding ----------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def arr(self, dtype: str, count: int) -> np.ndarray:
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def unpack(self, st: struct.Struct) -> tuple:
        v = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return v

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PartialFormatError("truncated partial record")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def str8(self) -> str:
        n = self.raw(1)[0]
        return self.raw(n).decode("utf-8", "surrogatepass")


def decode(data: bytes, layout: PartialLayout) -> DataBundle | Progress:
    """A partials-stream record; PartialFormatError naming what is wrong (version, layout,
    truncation)."""
    if data[:4] == LEGACY_MAGIC:
        raise PartialFormatError(
            f"partial record version 1 (per-key, no source), this build reads version {VERSION}: "
            "run the re-keying and detect stages from the same cfguard release"
        )
    try:
        rd = _Reader(data)
        magic, ver, kind, fp = rd.unpack(_HEAD)
        if magic != MAGIC:
            raise PartialFormatError("not a partial record (magic)")
        if ver != VERSION:
            raise PartialFormatError(
                f"partial bundle version {ver}, this build reads version {VERSION}: run the re-keying "
                "and detect stages from the same cfguard release"
            )
        if fp != layout.fingerprint:
            raise PartialFormatError(
                "partial record built for another detector configuration (layout fingerprint "
                f"{fp:08x}, expected {layout.fingerprint:08x}): run both stages with the same config"
            )
        source = rd.str8()
        if kind == PROGRESS:
            wm, final, n = rd.unpack(_PROGRESS)
            out: DataBundle | Progress = Progress(source, wm, tuple(rd.str8() for _ in range(n)), bool(final))
        elif kind == DATA:
            out = _decode_data(rd, source, layout)
        else:
            raise PartialFormatError(f"unknown partial record kind {kind}")
        if rd.pos != len(data):
            raise PartialFormatError(f"partial record has {len(data) - rd.pos} trailing bytes")
        return out
    except (struct.error, ValueError, IndexError) as exc:
        if isinstance(exc, PartialFormatError):
            raise
        raise PartialFormatError(f"truncated or corrupt partial record ({exc})") from None


def _decode_data(rd: _Reader, source: str, layout: PartialLayout) -> DataBundle:
    (partition,) = rd.unpack(_U4)
    (nruns,) = rd.unpack(_U4)
    (elen,) = rd.unpack(_U4)
    ends_txt = rd.raw(elen).decode("ascii")
    run_ends = [(int(a), int(b)) for a, b in (e.split(":") for e in ends_txt.split(","))] if nruns else []
    if len(run_ends) != nruns:
        raise PartialFormatError(f"partial bundle lists {len(run_ends)} runs, header says {nruns}")
    bundle = DataBundle(source, partition, run_ends)
    nblocks = rd.raw(1)[0]
    bs_ms = layout.bucket_s * 1000
    for _ in range(nblocks):
        kti, nkeys, n, base = rd.unpack(_BLOCK)
        kt, chans = layout.key_types[kti]
        lens = rd.arr("<u2", nkeys)
        blob = rd.raw(int(lens.sum()))
        ends = np.cumsum(lens).tolist()
        starts = [0, *ends[:-1]]
        names = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip(starts, ends, strict=True)]
        kidx = rd.arr("<u4", n)
        if n and int(kidx.max()) >= nkeys:
            raise PartialFormatError("partial bundle row refers to a key it does not carry")
        bucket = rd.arr("<u4", n).astype(np.int64) + base
        last_ms = rd.arr("<u4", n).astype(np.int64) + bucket * bs_ms
        run = rd.arr("<u4", n).astype(np.int64)
        if n and int(run.max()) >= nruns:
            raise PartialFormatError("partial bundle row refers to a run it does not list")
        pres = rd.arr("<u2", n)
        kp = KeyPartials(keys=[names[i] for i in kidx.tolist()], bucket=bucket, last_ms=last_ms, run=run)
        for c, cl in enumerate(chans):
            pr = np.flatnonzero(pres & (1 << c))
            sums = {}
            for m in cl.sums:
                v = np.zeros(n)
                v[pr] = rd.arr(_sum_dtype(m), pr.size)
                sums[m] = v
            regs = {}
            for m in cl.distincts:
                bits = rd.arr("<u4", pr.size)
                nz = np.unpackbits(bits.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little").astype(bool)
                sub = np.zeros((pr.size, REGISTERS), dtype=np.uint8)
                sub[nz] = rd.arr("u1", int(nz.sum()))
                r = np.zeros((n, REGISTERS), dtype=np.uint8)
                r[pr] = sub
                regs[m] = r
            kp.sums.append(sums)
            kp.regs.append(regs)
        if kt in bundle.parts:
            raise PartialFormatError(f"partial bundle has two blocks of key type {kt!r}")
        bundle.parts[kt] = kp
    return bundle
