"""The metric catalog: what the engine can count per key and window, and from which log fields.

Two kinds: ``sum`` metrics add a per-record value (1 for a matching request, the bytes, the seconds),
``distinct`` metrics count distinct values of a text field with a sketch (``detectors.sketch``).
The names are the ones detectors' configs and the ML features use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from detectors.batch import RecordBatch
from detectors.sketch import hash_unique, register_and_rank

#: x-edge-result-type values for which CloudFront went to the origin (origin load).
ORIGIN_RESULT_TYPES = frozenset({"Miss", "RefreshHit"})


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: Literal["sum", "distinct"]
    fields: tuple[str, ...]
    dtype: str  # storage dtype of a window aggregate
    description: str


def _m(name: str, kind: Literal["sum", "distinct"], fields: tuple[str, ...], dtype: str, doc: str) -> Metric:
    return Metric(name, kind, fields, dtype, doc)


CATALOG: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("requests", "sum", (), "uint32", "requests"),
        _m("bytes_sent", "sum", ("sc-bytes",), "float64", "bytes sent to the viewer (sc-bytes)"),
        _m("bytes_received", "sum", ("cs-bytes",), "float64", "bytes received from the viewer (cs-bytes)"),
        _m("status_2xx", "sum", ("sc-status",), "uint32", "2xx responses"),
        _m("status_3xx", "sum", ("sc-status",), "uint32", "3xx responses"),
        _m("status_4xx", "sum", ("sc-status",), "uint32", "4xx responses"),
        _m("status_5xx", "sum", ("sc-status",), "uint32", "5xx responses"),
        _m("auth_failures", "sum", ("sc-status",), "uint32", "401 and 403 responses"),
        _m("not_found", "sum", ("sc-status",), "uint32", "404 responses"),
        _m("throttled", "sum", ("sc-status",), "uint32", "429 responses"),
        _m(
            "cache_misses",
            "sum",
            ("x-edge-result-type",),
            "uint32",
            "requests served from the origin (x-edge-result-type Miss or RefreshHit)",
        ),
        _m("time_taken", "sum", ("time-taken",), "float32", "seconds of time-taken, summed"),
        _m("range_requests", "sum", ("sc-range-start",), "uint32", "range requests (sc-range-start set)"),
        _m("distinct_uris", "distinct", ("cs-uri-stem",), "sketch", "distinct cs-uri-stem values"),
        _m("distinct_user_agents", "distinct", ("cs-user-agent",), "sketch", "distinct cs-user-agent values"),
    )
}

SUM_METRICS = tuple(n for n, m in CATALOG.items() if m.kind == "sum")
DISTINCT_METRICS = tuple(n for n, m in CATALOG.items() if m.kind == "distinct")


def check_metric(name: str, *, kind: str | None = None) -> str:
    """The name if it is in the catalog (and of ``kind`` if given), else a ValueError naming it."""
    m = CATALOG.get(name)
    if m is None:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(CATALOG)}")
    if kind is not None and m.kind != kind:
        allowed = SUM_METRICS if kind == "sum" else DISTINCT_METRICS
        raise ValueError(f"metric {name!r} is a {m.kind} metric; this needs one of: {', '.join(allowed)}")
    return name


def _status_between(lo: int, hi: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda s: ((s >= lo) & (s < hi)).astype(np.float64)


_STATUS_FN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "status_2xx": _status_between(200, 300),
    "status_3xx": _status_between(300, 400),
    "status_4xx": _status_between(400, 500),
    "status_5xx": _status_between(500, 600),
    "auth_failures": lambda s: ((s == 401) | (s == 403)).astype(np.float64),
    "not_found": lambda s: (s == 404).astype(np.float64),
    "throttled": lambda s: (s == 429).astype(np.float64),
}


class BatchValues:
    """Per-record metric values of one batch, each computed once and shared by all windows/key types."""

    def __init__(self, batch: RecordBatch) -> None:
        self.batch = batch
        self.n = len(batch)
        self._values: dict[str, np.ndarray] = {}
        self._hashes: dict[str, np.ndarray] = {}
        self._ranks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._codes: dict[str, tuple[dict[str | None, int], np.ndarray]] = {}

    def _number(self, fname: str) -> np.ndarray:
        col = self.batch.numbers.get(fname)
        if col is None:
            raise ValueError(f"batch has no numeric field {fname!r} (the engine needs it)")
        return col

    def _text(self, fname: str) -> list[str | None]:
        col = self.batch.texts.get(fname)
        if col is None:
            raise ValueError(f"batch has no text field {fname!r} (the engine needs it)")
        return col

    def value(self, name: str) -> np.ndarray:
        """float64 per record; missing numbers count 0."""
        v = self._values.get(name)
        if v is not None:
            return v
        if name == "requests":
            v = np.ones(self.n, dtype=np.float64)
        elif name in _STATUS_FN:
            v = _STATUS_FN[name](np.nan_to_num(self._number("sc-status"), nan=0.0))
        elif name in ("bytes_sent", "bytes_received", "time_taken"):
            v = np.nan_to_num(self._number(CATALOG[name].fields[0]), nan=0.0)
        elif name == "range_requests":
            v = (~np.isnan(self._number("sc-range-start"))).astype(np.float64)
        elif name == "cache_misses":
            col = self._text("x-edge-result-type")
            hit = ORIGIN_RESULT_TYPES.__contains__  # (None is not in it)
            v = np.fromiter(map(hit, col), dtype=bool, count=self.n).astype(np.float64)
        else:
            raise ValueError(f"{name!r} is not a sum metric")
        self._values[name] = v
        return v

    def codes(self, fname: str) -> tuple[dict[str | None, int], np.ndarray]:
        """The distinct values of a text field (value -> number, in order of first appearance) and
        each record's number: one hashing pass shared by the sketches and the path filters."""
        c = self._codes.get(fname)
        if c is None:
            col = self._text(fname)
            uniq: dict[str | None, int] = dict.fromkeys(col)  # type: ignore[arg-type]
            for i, u in enumerate(uniq):
                uniq[u] = i
            c = (uniq, np.fromiter(map(uniq.__getitem__, col), dtype=np.intp, count=len(col)))
            self._codes[fname] = c
        return c

    def hashes(self, name: str) -> np.ndarray:
        """uint32 hash per record of the text a distinct metric counts."""
        h = self._hashes.get(name)
        if h is None:
            uniq, inv = self.codes(CATALOG[name].fields[0])
            h = hash_unique(list(uniq))[inv]
            self._hashes[name] = h
        return h

    def ranks(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """HyperLogLog register index and rank per record (``sketch.register_and_rank`` of the hashes)."""
        r = self._ranks.get(name)
        if r is None:
            r = self._ranks[name] = register_and_rank(self.hashes(name))
        return r
