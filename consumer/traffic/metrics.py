"""Per-key figures of generated (or any real-time) traffic, through the real parser and key extractor.

Used by the tests (does each scenario produce the behaviour it claims?) and to choose thresholds:
``key_figures(lines)`` gives, for every key of every key type, its request count, bytes, status
classes, distinct paths, cache misses and its busiest minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from consumer.fields import ALL_45
from consumer.keys import KeyExtractor, KeySpec
from consumer.realtime import RealtimeParser

DEFAULT_KEYS: tuple[KeySpec, ...] = (
    KeySpec(name="ip", source="c-ip", ipv6_prefix=64),
    KeySpec(name="user", source="cookie", param="uid"),
    KeySpec(name="api_key", source="header", param="x-api-key"),
)
_WANTED = ("sc-status", "sc-bytes", "cs-uri-stem", "x-edge-result-type", "c-ip", "cs-cookie", "cs-headers")


@dataclass(frozen=True, slots=True)
class KeyFigures:
    requests: int
    bytes_sent: float
    first: float
    last: float
    status_4xx: int
    auth_fail: int  # 401 and 403
    not_found: int  # 404
    misses: int  # x-edge-result-type Miss
    distinct_paths: int  # cs-uri-stem without its query
    distinct_uris: int  # cs-uri-stem as logged (with the query)
    distinct_ips: int
    max_per_minute: int  # requests in the busiest aligned minute

    @property
    def span_s(self) -> float:
        return self.last - self.first

    def bytes_per_hour(self, window_s: float = 3600.0) -> float:
        """Bytes over the key's activity, as a rate per hour (spans under ``window_s`` count as it)."""
        return self.bytes_sent * 3600.0 / max(self.span_s, window_s)


def key_figures(
    lines: Sequence[bytes], keys: Sequence[KeySpec] = DEFAULT_KEYS
) -> dict[str, dict[str, KeyFigures]]:
    res = RealtimeParser(ALL_45, _WANTED).parse(lines)
    if res.malformed:
        raise ValueError(f"{len(res.malformed)} malformed line(s), first: {res.malformed[0]}")
    b = res.batch
    KeyExtractor(list(keys)).extract(b)
    status = b.numbers["sc-status"]
    sc = np.nan_to_num(b.numbers["sc-bytes"])
    stems = b.texts["cs-uri-stem"]
    paths = [s.split("?", 1)[0] if s else "" for s in stems]
    miss = np.asarray([r == "Miss" for r in b.texts["x-edge-result-type"]])
    ips = b.texts["c-ip"]
    minute = (b.time // 60).astype(np.int64)
    out: dict[str, dict[str, KeyFigures]] = {}
    for spec in keys:
        col = b.keys[spec.name]
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(col):
            if k is not None:
                groups.setdefault(k, []).append(i)
        figs = {}
        for k, idx_l in groups.items():
            idx = np.asarray(idx_l)
            st = status[idx]
            _, per_min = np.unique(minute[idx], return_counts=True)
            figs[k] = KeyFigures(
                requests=len(idx),
                bytes_sent=float(sc[idx].sum()),
                first=float(b.time[idx].min()),
                last=float(b.time[idx].max()),
                status_4xx=int(((st >= 400) & (st < 500)).sum()),
                auth_fail=int(((st == 401) | (st == 403)).sum()),
                not_found=int((st == 404).sum()),
                misses=int(miss[idx].sum()),
                distinct_paths=len({paths[i] for i in idx_l}),
                distinct_uris=len({stems[i] for i in idx_l}),
                distinct_ips=len({ips[i] for i in idx_l}),
                max_per_minute=int(per_min.max()),
            )
        out[spec.name] = figs
    return out
