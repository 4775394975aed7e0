"""Partial mode of the engine: partial aggregates in, row batches for the window stores out.

In partial mode (``Engine.enable_partials``) the engine is fed per-(key, bucket) partial rows
(``detectors.partials``) instead of raw records: built locally from raw lines, or decoded from the
re-keying processors' partials stream (``detectors.partial_wire``). ``accept`` files them in the
``PartialBuffer``, which releases whole buckets in time order; ``row_batch`` turns the released
rows into a ``RecordBatch`` (one row = one "record" at its bucket's last event time) plus each
channel's pre-aggregated values, which the engine applies like a raw batch.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np

from detectors.batch import RecordBatch
from detectors.partial_buffer import PartialBuffer
from detectors.partial_wire import DataBundle, Decoded, Progress
from detectors.partials import KeyPartials, PartialLayout, PartialValues
from detectors.store import Channel

PartialInput = tuple[str, KeyPartials] | DataBundle | Decoded | Progress


def accept(buf: PartialBuffer, parts: Sequence[PartialInput], key_types: Collection[str]) -> None:
    """File each input in ``buf``; rows of a key type no detector uses (``key_types``) are refused
    with a ValueError (a re-keying stage built with another configuration)."""
    for item in parts:
        if isinstance(item, Progress):
            buf.progress(item)
            continue
        if isinstance(item, Decoded):
            buf.add_decoded(item)
            continue
        if isinstance(item, DataBundle):
            unknown = [kt for kt in item.parts if kt not in key_types]
            if unknown:
                raise ValueError(f"partials for key type {unknown[0]!r}, which no detector uses")
            buf.add_bundle(item)
            continue
        kt, kp = item
        if kt not in key_types:
            raise ValueError(f"partials for key type {kt!r}, which no detector uses")
        buf.add(kt, kp)


def row_batch(
    rows: dict[str, KeyPartials], layout: PartialLayout, key_types: Iterable[str]
) -> tuple[RecordBatch, dict[Channel, PartialValues]] | None:
    """Released rows of every key type as one row batch ordered by (bucket, key type, key), so
    the watermark advances monotonically across key types; None when there are no rows.

    The batch has a key column for each of ``key_types`` (None where a row is another key
    type's) and a row's time is its bucket's last event time; the values hold, per channel, the
    rows' sums and HLL registers (zero for rows of key types without that channel).
    """
    kts = [kt for kt in rows if len(rows[kt])]
    if not kts:
        return None
    kp_all = [rows[kt] for kt in kts]
    label = np.concatenate([np.full(len(kp), i) for i, kp in enumerate(kp_all)])
    bucket = np.concatenate([kp.bucket for kp in kp_all])
    order = np.lexsort((label, bucket))  # stable: keys stay sorted within (bucket, key type)
    n = order.size
    t = np.concatenate([kp.last_ms for kp in kp_all])[order] / 1000.0
    batch = RecordBatch(time=t)
    starts = np.cumsum([0] + [len(kp) for kp in kp_all])
    for other in key_types:
        col: list[str | None] = [None] * n
        if other in kts:
            i = kts.index(other)
            flat: list[str | None] = [None] * n
            flat[starts[i] : starts[i + 1]] = rows[other].keys
            col = [flat[j] for j in order.tolist()]
        batch.keys[other] = col
    sums: dict[Channel, dict[str, np.ndarray]] = {}
    regs: dict[Channel, dict[str, np.ndarray]] = {}
    for i, kt in enumerate(kts):
        kp = kp_all[i]
        sl = slice(int(starts[i]), int(starts[i + 1]))
        for c, cl in enumerate(layout.channels(kt)):
            s_ch = sums.setdefault(cl.channel, {})
            r_ch = regs.setdefault(cl.channel, {})
            for m, a in kp.sums[c].items():
                s_ch.setdefault(m, np.zeros(n))[sl] = a
            for m, a in kp.regs[c].items():
                r_ch.setdefault(m, np.zeros((n, a.shape[1]), dtype=np.uint8))[sl] = a
    values = {
        ch: PartialValues(
            {m: a[order] for m, a in sums[ch].items()}, {m: a[order] for m, a in regs[ch].items()}
        )
        for ch in sums
    }
    return batch, values


def slice_values(values: dict[Channel, PartialValues], a: int, b: int) -> dict[Channel, PartialValues]:
    """Rows ``a:b`` of every channel's values (the companion of ``batch_update.slice_batch``)."""
    return {
        ch: PartialValues({m: x[a:b] for m, x in v._sums.items()}, {m: x[a:b] for m, x in v._regs.items()})
        for ch, v in values.items()
    }
