"""A parsed text column whose strings are made only when someone reads them.

``cs-headers`` is ~350-500 characters per record, and the only reader of the default configuration
is the header-key kernel (:mod:`consumer.scan_keys`), which searches bytes. Building a Python string
per record for it cost ~0.45 µs of the parser's ~1.5 µs (``bench/results/pipeline.md``). So for the
columns in ``consumer.realtime.KEEP_BYTES`` the parser hands on the chunk buffers it scanned and the
spans of the values in them; a value becomes a ``str`` when it is indexed or iterated.

It is a read-only ``Sequence[str | None]`` (the ``RecordBatch`` text-column contract: indexing,
slicing, iteration, ``len``, equality with a list of the same values). It holds the chunk buffers
(~1.2 MB per 1,024 lines) while it lives: keep the values (``list(column)``), not the column, if
they must outlive the batch. Pickling stores the values, not the buffers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from operator import index
from typing import Any, overload

import numpy as np

#: ``(buf, starts, ends)``: value ``i`` is the ASCII text ``buf[starts[i]:ends[i]]`` (``-``: None).
Segment = tuple[np.ndarray, np.ndarray, np.ndarray]

_DASH = 45


class ScannedTexts(Sequence["str | None"]):
    """Values of one text column over one or more scanned chunks (``segments``), decoded on access."""

    __slots__ = ("_bounds", "_n", "segments")

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self._bounds = list(accumulate(s.shape[0] for _, s, _ in segments))
        self._n = self._bounds[-1] if self._bounds else 0

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str | None: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[str | None]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return self._slice(i)
        k = index(i)
        if k < 0:
            k += self._n
        if not 0 <= k < self._n:
            raise IndexError("text column index out of range")
        seg = bisect_right(self._bounds, k)
        buf, starts, ends = self.segments[seg]
        j = k - (self._bounds[seg - 1] if seg else 0)
        return value_at(buf, int(starts[j]), int(ends[j]))

    def __iter__(self) -> Iterator[str | None]:
        for buf, starts, ends in self.segments:
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                yield value_at(buf, a, b)

    def _slice(self, s: slice) -> Sequence[str | None]:
        start, stop, step = s.indices(self._n)
        if step != 1:
            return [self[k] for k in range(start, stop, step)]
        out: list[Segment] = []
        base = 0
        for (buf, starts, ends), bound in zip(self.segments, self._bounds, strict=True):
            a, b = max(start - base, 0), min(stop, bound) - base
            if a < b:
                out.append((buf, starts[a:b], ends[a:b]))
            base = bound
        return ScannedTexts(out)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ScannedTexts | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # (mutable-looking, like list)

    def __repr__(self) -> str:
        return f"ScannedTexts({list(self)!r})"

    def __reduce__(self) -> tuple[type, tuple[list[str | None]]]:
        return list, (list(self),)


def value_at(buf: np.ndarray, a: int, b: int) -> str | None:
    """The value spanning ``buf[a:b]`` (``-``: None)."""
    if b - a == 1 and buf[a] == _DASH:
        return None
    return buf[a:b].tobytes().decode("ascii")
