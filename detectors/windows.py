"""Window lengths as the config writes them (``"1m"``, ``"5m"``, ``"1h"``, ``"24h"``) and in seconds."""

from __future__ import annotations

import re

_WINDOW_RE = re.compile(r"^([1-9][0-9]*)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Longest window the state supports: 7 days (window ids must fit an int32 for 1 s windows too).
MAX_WINDOW_S = 7 * 86400


def window_seconds(window: str) -> int:
    """``"5m"`` -> 300. Raises ValueError naming the value on anything but ``<int><s|m|h|d>``."""
    m = _WINDOW_RE.match(window) if isinstance(window, str) else None
    if m is None:
        raise ValueError(f"window {window!r} is not <positive integer><s|m|h|d>, e.g. '5m' or '1h'")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds > MAX_WINDOW_S:
        raise ValueError(f"window {window!r} is longer than the supported maximum of 7d")
    return seconds


def window_label(seconds: int) -> str:
    """300 -> ``"5m"``: the shortest exact spelling, used in findings."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
