"""The wanted columns of a parsed batch: what a column is, and the reference conversion of one value.

Shared by ``consumer.realtime`` (the line structure, the reference path and the compiled batch
path of ``consumer.scan``, which implements exactly these rules) and ``consumer.standard``.
Figures: ``bench/results/parse.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from consumer.fields import Kind

# Event times outside this range are rejected: a garbage timestamp would move event-time windows.
MIN_TIMESTAMP = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_TIMESTAMP = 4_102_444_800.0  # 2100-01-01T00:00:00Z

_DIGITS = b"0123456789"


@dataclass(frozen=True, slots=True)
class Column:
    """One wanted field: where it is in a line and how to convert it."""

    name: str
    index: int
    kind: Kind
    decode: bool = False
    required_time: bool = False  # the timestamp: must be present and plausible

    @property
    def numeric(self) -> bool:
        return self.kind is not Kind.TEXT


@lru_cache(maxsize=65536)
def _url_decode(text: str) -> str:
    return unquote(text)


def decode_value(value: str) -> str:
    return _url_decode(value) if "%" in value else value


def parse_number(raw: bytes, kind: Kind) -> float | None:
    """Reference conversion of one present numeric field; ``None`` when it is not a valid number."""
    allowed = _DIGITS if kind is Kind.INT else _DIGITS + b"."
    if not raw or raw.translate(None, allowed):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def timestamp_ok(value: float) -> bool:
    return MIN_TIMESTAMP <= value < MAX_TIMESTAMP
