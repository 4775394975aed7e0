"""Encoding the partials stream's records (``detectors.partial_wire`` describes the format).

The re-keying stage's side: data bundles per partition of keys, and progress records.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from detectors.partial_wire import (
    BLOCK,
    DATA,
    HEAD,
    MAGIC,
    MAX_RECORD_BYTES,
    PROGRESS,
    PROGRESS_HEAD,
    U4,
    VERSION,
    Position,
    Progress,
    partition_of,
    sum_dtype,
)
from detectors.partials import KeyPartials, PartialLayout
from detectors.sketch import REGISTERS


def _str8(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    if len(b) > 255:
        raise ValueError(f"source id of {len(b)} bytes (at most 255)")
    return bytes([len(b)]) + b


def encode_progress(p: Progress, layout: PartialLayout) -> bytes:
    parts = [
        HEAD.pack(MAGIC, VERSION, PROGRESS, layout.fingerprint),
        _str8(p.source),
        PROGRESS_HEAD.pack(p.watermark_ms, int(p.final), len(p.sources)),
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
    ``run_ends``). Each bundle lists only the runs its rows reference.

    A 1 s batch of ~800 lines spreads over most of the 256 partitions, one or two rows per
    (partition, key type) block: so every column is computed once per key type, in partition
    order, and a block is byte slices of those columns (per-block numpy calls cost ~60 µs each
    and made this the re-keying stage's main cost)."""
    kt_index = {k: i for i, (k, _) in enumerate(layout.key_types)}
    cols: list[_Columns] = []
    for kt, kp in parts.items():
        if len(kp) == 0:
            continue
        if kp.run is None:
            raise ValueError("rows to publish must carry their run")
        cols.append(_Columns(kt_index[kt], kp, layout, partitions))
    if not cols:
        return []
    # The runs each partition's rows reference, and each row's index among them.
    width = len(run_ends) + 1
    pair = np.concatenate([c.part * width + c.run for c in cols])
    used_pairs = np.unique(pair)
    used_part = used_pairs // width
    used_run = (used_pairs % width).tolist()
    run_start = np.searchsorted(used_part, np.arange(partitions + 1))
    ends = [_end(pos) for pos in run_ends]
    for c in cols:
        c.set_runs(np.searchsorted(used_pairs, c.part * width + c.run) - run_start[c.part])
    out: list[tuple[str, bytes]] = []
    head = HEAD.pack(MAGIC, VERSION, DATA, layout.fingerprint) + _str8(source)
    for p in np.unique(used_part).tolist():
        r0, r1 = int(run_start[p]), int(run_start[p + 1])
        blocks = [c.block(p) for c in cols if p in c.bounds]
        body = [
            head,
            U4.pack(p),
            U4.pack(r1 - r0),
            b"".join([ends[r] for r in used_run[r0:r1]]),
            bytes([len(blocks)]),
            *blocks,
        ]
        data = b"".join(body)
        if len(data) + 8 > MAX_RECORD_BYTES:
            raise ValueError(
                f"partials of one run for partition {p} take {len(data)} bytes, over the Kinesis record "
                "limit: raise topology.partitions or lower topology.bucket_s"
            )
        out.append((f"p{p}", data))
    return out


def _end(pos: Position) -> bytes:
    """A stream position: length-prefixed big-endian sequence number (they exceed 128 bits), then
    the sub-sequence number."""
    seq, sub = pos
    n = max(1, (seq.bit_length() + 7) // 8)
    return bytes([n]) + seq.to_bytes(n, "big") + U4.pack(sub)


class _Columns:
    """One key type's rows in partition order, every column already in its wire form: a block is
    the byte ranges of its rows (``block``)."""

    def __init__(self, kti: int, kp: KeyPartials, layout: PartialLayout, partitions: int) -> None:
        kt, chans = layout.key_types[kti]
        self.kti, self.kt = kti, kt
        n = len(kp)
        memo: dict[str, int] = {}
        part = np.fromiter(
            (memo.setdefault(k, partition_of(f"{kt}\x00{k}", partitions)) for k in kp.keys), np.int64, n
        )
        order = np.argsort(part, kind="stable")
        self.part = part
        self.run = kp.run  # type: ignore[assignment]
        self.order = order
        ps = part[order]
        first = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
        starts = first.tolist()
        parts = ps[first].tolist()
        #: partition -> (first, end) row of its block, in partition order
        self.bounds = dict(zip(parts, zip(starts, [*starts[1:], n], strict=True), strict=True))
        keys = kp.keys
        self.keys = [keys[i] for i in order.tolist()]
        b = kp.bucket[order]
        base = np.minimum.reduceat(b, first)
        self.base = dict(zip(parts, base.tolist(), strict=True))
        counts = np.diff(np.r_[first, n])
        bs_ms = layout.bucket_s * 1000
        self.bucket_off = (b - np.repeat(base, counts)).astype("<u4").tobytes()
        self.ms_off = (kp.last_ms[order] - b * bs_ms).astype("<u4").tobytes()
        present = [kp.present(c)[order] for c in range(len(chans))]
        pres = np.zeros(n, dtype="<u2")
        for c, pr in enumerate(present):
            pres |= pr.astype("<u2") << c
        self.pres = pres.tobytes()
        # Per channel, the rows present in it (a block's are contiguous): sums, HLL masks, registers.
        shifts = np.arange(REGISTERS, dtype="<u8")
        self.channel_cols: list[tuple[np.ndarray, list[tuple[bytes, int] | tuple[bytes, np.ndarray]]]] = []
        for c, cl in enumerate(chans):
            at = np.r_[0, np.cumsum(present[c])]  # present rows before each row
            sel = order[present[c]]
            ccols: list[tuple[bytes, int] | tuple[bytes, np.ndarray]] = []
            for m in cl.sums:
                dt = np.dtype(sum_dtype(m))
                ccols.append((kp.sums[c][m][sel].astype(dt).tobytes(), dt.itemsize))
            for m in cl.distincts:
                r = kp.regs[c][m][sel]
                nz = r != 0
                ccols.append(((nz.astype("<u8") << shifts).sum(axis=1).astype("<u4").tobytes(), 4))
                ccols.append((r[nz].tobytes(), np.r_[0, np.cumsum(nz.sum(axis=1))]))
            self.channel_cols.append((at, ccols))
        self.run_idx = b""

    def set_runs(self, run_index: np.ndarray) -> None:
        self.run_idx = run_index[self.order].astype("<u4").tobytes()

    def block(self, p: int) -> bytes:
        a, b = self.bounds[p]
        codes: dict[str, int] = {}
        kidx = [codes.setdefault(k, len(codes)) for k in self.keys[a:b]]
        kb = [k.encode("utf-8", "surrogatepass") for k in codes]
        lens = [len(x) for x in kb]
        if max(lens) > 0xFFFF:
            raise ValueError(f"a {self.kt!r} key longer than 65535 bytes cannot be encoded")
        a4, b4 = 4 * a, 4 * b
        out = [
            BLOCK.pack(self.kti, len(kb), sum(lens), b - a, self.base[p]),
            struct.pack(f"<{len(lens)}H", *lens),
            b"".join(kb),
            struct.pack(f"<{len(kidx)}I", *kidx),
            self.bucket_off[a4:b4],
            self.ms_off[a4:b4],
            self.run_idx[a4:b4],
            self.pres[2 * a : 2 * b],
        ]
        for at, ccols in self.channel_cols:
            i, j = int(at[a]), int(at[b])
            for data, step in ccols:
                if isinstance(step, int):
                    out.append(data[i * step : j * step])
                else:  # variable length (the non-zero registers): offsets per present row
                    out.append(data[int(step[i]) : int(step[j])])
        return b"".join(out)
