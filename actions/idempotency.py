"""The idempotency key of a block: the same block decided twice (a replay) gets the same key."""

from __future__ import annotations

import hashlib


def idempotency_key(
    key_type: str, key: str, detector: str, event_time: float, window_s: int, offence: int
) -> str:
    """Hash of who, which detector, the event-time window bucket and the key's offence number.

    Only event-time facts go in, so a replay of the same records from the same state yields the same
    key. The offence number keeps a legitimate repeat block (after the first one expired, inside the
    same window bucket) distinct from a duplicate of the first.
    """
    bucket = int(event_time // max(int(window_s), 1))
    text = "\x1f".join(("v1", key_type, key, detector, str(int(window_s)), str(bucket), str(int(offence))))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
