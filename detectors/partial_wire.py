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
Encoding (the re-keying stage's side) is in ``detectors.partial_encode``; this module holds the
format and its decoding.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from detectors.metrics import CATALOG
from detectors.partials import ChannelLayout, KeyPartials, PartialFormatError, PartialLayout
from detectors.sketch import REGISTERS

MAGIC = b"\x00CGB"
LEGACY_MAGIC = b"\x00CGP"  # version 1 per-key records
VERSION = 2
DATA, PROGRESS = 0, 1
MAX_BUNDLE_BYTES = 256 * 1024  # a segment is split (at run boundaries) to stay below this
MAX_RECORD_BYTES = 1_000_000  # Kinesis: 1 MiB per record, partition key included
HEAD = struct.Struct("<4sBBI")  # magic, version, kind, layout fingerprint
BLOCK = struct.Struct("<BIIIq")  # key type index, keys, key bytes, rows, base bucket
PROGRESS_HEAD = struct.Struct("<qBH")  # watermark ms, final, number of known sources
U4 = struct.Struct("<I")

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


def sum_dtype(metric: str) -> str:
    """The wire type of a sum column: uint32 for counts, float64 otherwise (lossless)."""
    return "<u4" if CATALOG[metric].dtype.startswith("uint") else "<f8"


# -- decoding ----------------------------------------------------------------------------------------


@dataclass
class Decoded:
    """The records of one delivery, decoded together: the rows of all its data bundles per key
    type (``run`` = index into ``runs``), the run table (bundle of each run, its end position), the
    bundles (source, partition) in arrival order, its progress records, and the records refused."""

    rows: dict[str, KeyPartials] = field(default_factory=dict)
    bundles: list[tuple[str, int]] = field(default_factory=list)
    run_bundle: list[int] = field(default_factory=list)
    run_ends: list[Position] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    bad: list[tuple[int, PartialFormatError]] = field(default_factory=list)


class _Plan:
    """Per key type: the blocks found, and what sizes their columns."""

    def __init__(self, chans: tuple[ChannelLayout, ...]) -> None:
        self.chans = chans
        self.sum_bytes = [sum(4 if sum_dtype(m) == "<u4" else 8 for m in cl.sums) for cl in chans]
        self.units = [(1 << c).to_bytes(2, "little") for c in range(len(chans))]
        self.blocks: list[tuple[bytes, int, int, int, int, int, int, int, tuple[int, ...], int]] = []

    def sizes(
        self, data: bytes, pos: int, nkeys: int, kbytes: int, nrows: int
    ) -> tuple[int, tuple[int, ...]]:
        """A block's size and its counts (rows present per channel, then non-zero registers per
        distinct metric), from its presence masks and register masks (population counts)."""
        at = pos + 2 * nkeys + kbytes + 16 * nrows
        pres = int.from_bytes(data[at : at + 2 * nrows], "little")
        at += 2 * nrows
        counts: list[int] = []
        for c, cl in enumerate(self.chans):
            npres = (pres & int.from_bytes(self.units[c] * nrows, "little")).bit_count()
            counts.append(npres)
            at += npres * self.sum_bytes[c]
            for _ in cl.distincts:
                nz = int.from_bytes(data[at : at + 4 * npres], "little").bit_count()
                counts.append(nz)
                at += 4 * npres + nz
        return at - pos, tuple(counts)


def decode_many(datas: Sequence[bytes], layout: PartialLayout) -> Decoded:
    """Decode a delivery's partials-stream records in one go: a struct pass over the headers
    collects each column's bytes, then one ``numpy.frombuffer`` per column and key type. A record
    that cannot be decoded is reported in ``bad`` and the others are kept."""
    try:
        return _decode_many(datas, layout)
    except PartialFormatError:
        pass
    out = Decoded()  # one is bad: find it, keep the rest
    good: list[bytes] = []
    for i, d in enumerate(datas):
        try:
            _decode_many([d], layout)
            good.append(d)
        except PartialFormatError as exc:
            out.bad.append((i, exc))
    ok = _decode_many(good, layout)
    ok.bad = out.bad
    return ok


def decode(data: bytes, layout: PartialLayout) -> DataBundle | Progress:
    """One record; PartialFormatError naming what is wrong (version, layout, truncation)."""
    d = _decode_many([data], layout)
    if d.progress:
        return d.progress[0]
    source, partition = d.bundles[0]
    return DataBundle(source, partition, d.run_ends, d.rows)


def _fail(exc: Exception) -> PartialFormatError:
    return (
        exc
        if isinstance(exc, PartialFormatError)
        else PartialFormatError(f"truncated or corrupt partial record ({exc})")
    )


def _decode_many(datas: Sequence[bytes], layout: PartialLayout) -> Decoded:
    out = Decoded()
    fp = layout.fingerprint
    kts = layout.key_types
    plans = [_Plan(chans) for _, chans in kts]
    for data in datas:
        try:
            _header(data, fp)
            pos = HEAD.size
            n = data[pos]
            source = data[pos + 1 : pos + 1 + n].decode("utf-8", "surrogatepass")
            pos += 1 + n
            if data[5] == PROGRESS:
                wm, final, ns = PROGRESS_HEAD.unpack_from(data, pos)
                pos += PROGRESS_HEAD.size
                names = []
                for _ in range(ns):
                    n = data[pos]
                    names.append(data[pos + 1 : pos + 1 + n].decode("utf-8", "surrogatepass"))
                    pos += 1 + n
                out.progress.append(Progress(source, wm, tuple(names), bool(final)))
            else:
                partition, nruns = struct.unpack_from("<II", data, pos)
                pos += 8
                ends = []
                for _ in range(nruns):
                    n = data[pos]
                    (sub,) = U4.unpack_from(data, pos + 1 + n)
                    ends.append((int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), sub))
                    pos += 5 + n
                run0 = len(out.run_ends)
                nblocks = data[pos]
                pos += 1
                seen = 0
                for _ in range(nblocks):
                    kti, nkeys, kbytes, nrows, base = BLOCK.unpack_from(data, pos)
                    pos += BLOCK.size
                    if kti >= len(kts) or seen & (1 << kti):
                        raise PartialFormatError(
                            f"partial bundle has a bad or repeated key type block ({kti})"
                        )
                    seen |= 1 << kti
                    plan = plans[kti]
                    size, counts = plan.sizes(data, pos, nkeys, kbytes, nrows)
                    if pos + size > len(data):
                        raise PartialFormatError("truncated partial record")
                    plan.blocks.append((data, pos, size, nkeys, kbytes, nrows, base, run0, counts, nruns))
                    pos += size
                out.bundles.append((source, partition))
                out.run_bundle += [len(out.bundles) - 1] * nruns
                out.run_ends += ends
            if pos != len(data):
                raise PartialFormatError(f"partial record has {len(data) - pos} trailing bytes")
        except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise _fail(exc) from None
    try:
        for (kt, _), plan in zip(kts, plans, strict=True):
            if plan.blocks:
                out.rows[kt] = _columns(plan, layout.bucket_s * 1000)
    except (ValueError, IndexError) as exc:
        raise _fail(exc) from None
    return out


def _header(data: bytes, fp: int) -> None:
    if data[:4] == LEGACY_MAGIC:
        raise PartialFormatError(
            f"partial record version 1 (per-key, no source), this build reads version {VERSION}: "
            "run the re-keying and detect stages from the same cfguard release"
        )
    magic, ver, kind, rfp = HEAD.unpack_from(data, 0)
    if magic != MAGIC:
        raise PartialFormatError("not a partial record (magic)")
    if ver != VERSION:
        raise PartialFormatError(
            f"partial bundle version {ver}, this build reads version {VERSION}: run the re-keying "
            "and detect stages from the same cfguard release"
        )
    if rfp != fp:
        raise PartialFormatError(
            "partial record built for another detector configuration (layout fingerprint "
            f"{rfp:08x}, expected {fp:08x}): run both stages with the same config"
        )
    if kind not in (DATA, PROGRESS):
        raise PartialFormatError(f"unknown partial record kind {kind}")


class _Gather:
    """The blocks of one key type as one byte buffer, and each column's segments gathered from it."""

    def __init__(self, plan: _Plan) -> None:
        bl = plan.blocks
        self.buf = np.frombuffer(b"".join(memoryview(d)[p : p + z] for d, p, z, *_ in bl), dtype=np.uint8)
        sizes = np.fromiter((z for _, _, z, *_ in bl), np.int64, len(bl))
        self.pos = np.cumsum(sizes) - sizes  # where each block's next column starts

    def take(self, seg: np.ndarray, dtype: str) -> np.ndarray:
        """The next column: ``seg`` bytes in each block."""
        total = int(seg.sum())
        starts = self.pos
        self.pos = self.pos + seg
        if total == 0:
            return np.zeros(0, dtype=dtype)
        idx = np.repeat(starts - (np.cumsum(seg) - seg), seg) + np.arange(total)
        return self.buf[idx].view(dtype)


def _columns(plan: _Plan, bs_ms: int) -> KeyPartials:
    bl = plan.blocks
    nb = len(bl)
    nkeys = np.fromiter((b[3] for b in bl), np.int64, nb)
    kbytes = np.fromiter((b[4] for b in bl), np.int64, nb)
    nrows = np.fromiter((b[5] for b in bl), np.int64, nb)
    base = np.fromiter((b[6] for b in bl), np.int64, nb)
    run0 = np.fromiter((b[7] for b in bl), np.int64, nb)
    counts = np.asarray([b[8] for b in bl], dtype=np.int64).reshape(nb, -1)
    nruns = np.fromiter((b[9] for b in bl), np.int64, nb)
    g = _Gather(plan)
    n = int(nrows.sum())
    lens = g.take(2 * nkeys, "<u2")
    blob = g.take(kbytes, "u1").tobytes()
    ends = np.cumsum(lens).tolist()
    names = [blob[a:b].decode("utf-8", "surrogatepass") for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    kidx = g.take(4 * nrows, "<u4").astype(np.int64)
    boff = g.take(4 * nrows, "<u4").astype(np.int64)
    last = g.take(4 * nrows, "<u4").astype(np.int64)
    run = g.take(4 * nrows, "<u4").astype(np.int64)
    pres = g.take(2 * nrows, "<u2")
    if n and (np.any(kidx >= np.repeat(nkeys, nrows)) or np.any(run >= np.repeat(nruns, nrows))):
        raise PartialFormatError("partial bundle row refers to a key or run it does not carry")
    run += np.repeat(run0, nrows)
    kidx += np.repeat(np.cumsum(nkeys) - nkeys, nrows)
    bucket = boff + np.repeat(base, nrows)
    kp = KeyPartials(
        keys=[names[i] for i in kidx.tolist()], bucket=bucket, last_ms=last + bucket * bs_ms, run=run
    )
    block_of_row = np.repeat(np.arange(nb), nrows)
    ci = 0
    for c, cl in enumerate(plan.chans):
        pr = np.flatnonzero(pres & (1 << c))
        npres = counts[:, ci]
        if not np.array_equal(np.bincount(block_of_row[pr], minlength=nb), npres):
            raise PartialFormatError("partial bundle presence mask does not match its counts")
        ci += 1
        sums = {}
        for m in cl.sums:
            dt = sum_dtype(m)
            v = np.zeros(n)
            v[pr] = g.take(npres * (4 if dt == "<u4" else 8), dt)
            sums[m] = v
        regs = {}
        for m in cl.distincts:
            bits = g.take(4 * npres, "<u4")
            vals = g.take(counts[:, ci], "u1")
            ci += 1
            nz = np.unpackbits(bits.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little").astype(bool)
            if int(nz.sum()) != vals.size:
                raise PartialFormatError("partial bundle register mask does not match its registers")
            sub = np.zeros((pr.size, REGISTERS), dtype=np.uint8)
            sub[nz] = vals
            r = np.zeros((n, REGISTERS), dtype=np.uint8)
            r[pr] = sub
            regs[m] = r
        kp.sums.append(sums)
        kp.regs.append(regs)
    return kp
