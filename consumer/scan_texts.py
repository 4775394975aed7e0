"""A parsed text column that still knows the ASCII bytes it was decoded from.

The parser builds text columns from one buffer of the wanted fields' bytes (``consumer.scan.gather``).
For the columns in ``consumer.realtime.KEEP_BYTES`` (``cs-headers``), when not URL-decoded, it
hands that buffer on with the column, so a key kernel (``consumer.scan_keys``) can search the
values without turning ~500-character strings back into bytes. It is a ``list`` (the ``RecordBatch``
contract); anything that builds a new list (slicing, merging) simply drops the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class ScannedTexts(list):  # type: ignore[type-arg]
    """``list[str | None]`` plus ``segments``: ``(buf, at)`` pairs, value ``i`` of a segment is the
    ASCII text ``buf[at[i]:at[i + 1]]`` (plus one separator byte); ``-`` where the value is None."""

    __slots__ = ("segments",)

    def __init__(self, values: Iterable[str | None], segments: list[tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__(values)
        self.segments = segments

    def describes_values(self) -> bool:
        """The segments cover exactly this many values (the list was not resized since parsing)."""
        return sum(at.shape[0] - 1 for _, at in self.segments) == len(self)
