"""The columnar batch the detectors consume: the parsed records of one input batch.

Columnar (numpy for numbers, lists for text) because the detectors aggregate a whole batch per key
with vectorised operations; a record-at-a-time object would cost more than the detection itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class RecordBatch:
    """Parsed records of one batch, only the fields someone asked for.

    - ``time``: event time of each record, epoch seconds (float64), always present.
    - ``numbers``: numeric CloudFront fields by CloudFront name (``sc-bytes``, ``sc-status``...),
      float64 arrays with NaN where the log had ``-``.
    - ``texts``: text fields by CloudFront name, sequences of ``str`` with ``None`` where the log had
      ``-`` (lists; ``cs-headers`` from the real-time parser is a ``consumer.scan_texts.ScannedTexts``
      that decodes a value when it is read). URL-encoded fields are left encoded unless the parser
      was asked to decode them.
    - ``keys``: per key type (config name), the extracted key of each record or ``None`` when the
      record has no such key (it is then skipped for that key type only).
    """

    time: np.ndarray
    numbers: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, Sequence[str | None]] = field(default_factory=dict)
    keys: dict[str, list[str | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @classmethod
    def empty(cls) -> RecordBatch:
        return cls(time=np.empty(0, dtype=np.float64))
