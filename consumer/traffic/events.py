"""Columnar requests before rendering, and the table of actors (who sends them).

An actor is one client identity: its ``uid`` cookie (or none), its client program, the edge it
reaches, its country and network. Requests carry their own ``c-ip`` because some actors rotate
addresses (IPv6 privacy addresses, proxy pools).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from consumer.traffic.vocab import Client, cf_encode


@dataclass(slots=True)
class Actors:
    """Append-only table of actors; an actor's index is its id in ``Requests.actor``."""

    uid: list[str | None] = field(default_factory=list)
    cookie: list[str] = field(default_factory=list)  # cs-cookie as CloudFront logs it ("-" = none)
    client: list[int] = field(default_factory=list)  # index into ``clients``
    edge: list[str] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    asn: list[int] = field(default_factory=list)
    xff: list[str | None] = field(default_factory=list)
    api_key: list[str | None] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    _client_index: dict[str, int] = field(default_factory=dict)

    def client_id(self, client: Client) -> int:
        idx = self._client_index.get(client.name)
        if idx is None:
            idx = self._client_index[client.name] = len(self.clients)
            self.clients.append(client)
        return idx

    def add(
        self,
        uid: str | None,
        client: Client,
        edge: str,
        country: str,
        asn: int,
        *,
        xff: str | None = None,
        api_key: str | None = None,
        extra_cookies: str = "",
    ) -> int:
        self.uid.append(uid)
        cookie = f"uid={uid}" if uid else ""
        if extra_cookies:
            cookie = f"{cookie}; {extra_cookies}" if cookie else extra_cookies
        self.cookie.append(cf_encode(cookie) if cookie else "-")
        self.client.append(self.client_id(client))
        self.edge.append(edge)
        self.country.append(country)
        self.asn.append(asn)
        self.xff.append(xff)
        self.api_key.append(api_key)
        return len(self.uid) - 1

    def __len__(self) -> int:
        return len(self.uid)


_F8, _I8 = np.float64, np.int64


@dataclass(slots=True)
class Requests:
    """One column per varying field; ``t`` is the record timestamp (when the response finished)."""

    t: np.ndarray  # float64 epoch seconds
    actor: np.ndarray  # int64 index into Actors
    ip: list[str]  # c-ip
    kind: np.ndarray  # int64 index into kinds.KINDS
    uri: list[str]  # path, without the query
    query: list[str | None]
    status: np.ndarray  # int64
    sc_bytes: np.ndarray  # int64
    content_len: np.ndarray  # int64, -1 = not sent (chunked)
    range_start: np.ndarray  # int64, -1 = not a range request
    range_end: np.ndarray  # int64
    result: np.ndarray  # int64 index into kinds.RESULTS
    ttfb: np.ndarray  # float64 seconds
    taken: np.ndarray  # float64 seconds
    body: np.ndarray  # int64 request body bytes

    def __len__(self) -> int:
        return len(self.ip)

    @classmethod
    def empty(cls) -> Requests:
        return cls.build(np.empty(0), np.empty(0, _I8), [], np.empty(0, _I8), [], [])

    @classmethod
    def build(
        cls,
        t: np.ndarray,
        actor: np.ndarray,
        ip: list[str],
        kind: np.ndarray,
        uri: list[str],
        query: list[str | None],
        *,
        status: np.ndarray | int = 200,
        sc_bytes: np.ndarray | int = 0,
        content_len: np.ndarray | int = -1,
        range_start: np.ndarray | int = -1,
        range_end: np.ndarray | int = -1,
        result: np.ndarray | int = 0,
        ttfb: np.ndarray | float = 0.001,
        taken: np.ndarray | float | None = None,
        body: np.ndarray | int = 0,
    ) -> Requests:
        """Columns from arrays or scalars (broadcast to the length of ``t``)."""
        n = len(t)

        def col(v: np.ndarray | float | int, dtype: type) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

        ttfb_a = col(ttfb, _F8)
        return cls(
            t=col(t, _F8),
            actor=col(actor, _I8),
            ip=list(ip),
            kind=col(kind, _I8),
            uri=list(uri),
            query=list(query),
            status=col(status, _I8),
            sc_bytes=col(sc_bytes, _I8),
            content_len=col(content_len, _I8),
            range_start=col(range_start, _I8),
            range_end=col(range_end, _I8),
            result=col(result, _I8),
            ttfb=ttfb_a,
            taken=ttfb_a.copy() if taken is None else col(taken, _F8),
            body=col(body, _I8),
        )

    def take(self, idx: np.ndarray) -> Requests:
        """The rows at ``idx`` (in that order)."""
        out = {}
        il = idx.tolist()
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v[idx] if isinstance(v, np.ndarray) else [v[i] for i in il]
        return Requests(**out)

    @staticmethod
    def concat(parts: list[Requests]) -> Requests:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Requests.empty()
        if len(parts) == 1:
            return parts[0]
        out = {}
        for f in fields(Requests):
            vals = [getattr(p, f.name) for p in parts]
            if isinstance(vals[0], np.ndarray):
                out[f.name] = np.concatenate(vals)
            else:
                merged: list = []
                for v in vals:
                    merged.extend(v)
                out[f.name] = merged
        return Requests(**out)

    def sorted(self) -> Requests:
        """Rows in event-time order (stable, so equal timestamps keep their generation order)."""
        order = np.argsort(self.t, kind="stable")
        return self.take(order)

    def sorted_split(self, before: float) -> tuple[Requests, Requests]:
        """(rows with t < before, the rest), each in event-time order: one sort, one take per part."""
        order = np.argsort(self.t, kind="stable")
        k = int(np.searchsorted(self.t[order], before, side="left"))
        if k == len(order):
            return self.take(order), Requests.empty()
        return self.take(order[:k]), self.take(order[k:])

    def split(self, before: float) -> tuple[Requests, Requests]:
        """(rows with t < before, the rest); both in the order they had."""
        mask = self.t < before
        if mask.all():
            return self, Requests.empty()
        return self.take(np.flatnonzero(mask)), self.take(np.flatnonzero(~mask))
