"""Who a record belongs to: key extraction for several key types at once.

A key type is configured by where its value comes from (``c-ip``, ``x-forwarded-for``, a cookie, a
header, a query argument, or a regex group on the URI). A record without the key gets ``None`` for
that key type: it is counted and skipped for that key type only.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from consumer import accessors
from consumer.regex_check import check_backtracking
from consumer.scan_keys import rows_containing
from consumer.scan_texts import ScannedTexts, value_at
from detectors.batch import RecordBatch

Source = Literal["c-ip", "x-forwarded-for", "cookie", "header", "query", "uri-regex"]

# Which CloudFront field each source reads.
SOURCE_FIELD: dict[str, str] = {
    "c-ip": "c-ip",
    "x-forwarded-for": "x-forwarded-for",
    "cookie": "cs-cookie",
    "header": "cs-headers",
    "query": "cs-uri-query",
    "uri-regex": "cs-uri-stem",
}
_NAMED = {"cookie", "header", "query"}
_CACHE_LIMIT = 200_000


class KeySpec(BaseModel):
    """One key type, e.g. ``{name: user, source: cookie, param: uid}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="key type name used by detectors")
    source: Source
    param: str | None = Field(None, description="cookie/header/query name, or the regex for uri-regex")
    xff_from_right: int | None = Field(
        None, ge=1, description="x-forwarded-for: take the N-th address from the right (trusted proxies)"
    )
    ipv6_prefix: int | None = Field(None, ge=1, le=128, description="aggregate IPv6 keys to this prefix")
    max_length: int = Field(256, ge=1, le=4096, description="longer values are treated as missing")

    @field_validator("param")
    @classmethod
    def _param_not_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be blank")
        return v

    @model_validator(mode="after")
    def _check(self) -> KeySpec:
        if self.source in _NAMED and not self.param:
            raise ValueError(f"source {self.source!r} needs 'param' (the {self.source} name)")
        if self.source == "uri-regex":
            if not self.param:
                raise ValueError("source 'uri-regex' needs 'param' (a regex with one capturing group)")
            try:
                rx = re.compile(self.param)
            except re.error as exc:
                raise ValueError(f"param is not a valid regex: {exc}") from None
            if rx.groups < 1:
                raise ValueError("param regex needs a capturing group: the key is group 1 (or 'key')")
            check_backtracking(self.param)
        if self.source not in {"c-ip", "x-forwarded-for"} and self.ipv6_prefix is not None:
            raise ValueError("ipv6_prefix only applies to c-ip and x-forwarded-for keys")
        if self.source != "x-forwarded-for" and self.xff_from_right is not None:
            raise ValueError("xff_from_right only applies to x-forwarded-for keys")
        return self

    @property
    def field(self) -> str:
        return SOURCE_FIELD[self.source]

    @property
    def is_ip(self) -> bool:
        return self.source in {"c-ip", "x-forwarded-for"}


def normalise_ip(text: str, ipv6_prefix: int | None = None) -> str | None:
    """Canonical text of an address (IPv6 compressed, lower case; optionally its /prefix network)."""
    if ":" not in text:
        # Fast path for the common case, a canonical dotted quad (what CloudFront logs): it is its
        # own canonical text, no need for ipaddress (the costliest part of a c-ip memo miss).
        if _DOTTED_QUAD.fullmatch(text):
            return text
    elif (fast := _ipv6_fast(text, ipv6_prefix)) is not None:
        return fast
    return _normalise_ip_reference(text, ipv6_prefix)


_ZERO10 = bytes(10)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"  # 0..255, no leading zero
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ipv6_fast(text: str, ipv6_prefix: int | None) -> str | None:
    """The plain hex form of an IPv6 address through the C socket functions (~10x faster than
    ipaddress for a /64 key); None when the reference must decide.

    Only ``h:h::h`` texts (no dotted tail) whose first 80 bits are not all zero: there ``inet_pton`` accepts
    exactly what ``ipaddress`` accepts, the address is not IPv4-mapped, and ``inet_ntop`` writes
    what ``str(IPv6Address)`` writes (lower case, no leading zeros, the first longest run of two or
    more zero groups as ``::``; its dotted IPv4 forms need the first 80 bits zero). Tested
    against the reference in tests/consumer/test_scan_keys.py."""
    if "." in text:  # inet_pton reads only hex digits, ':' and '.' (a dotted IPv4 tail)
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):  # (ValueError: an embedded NUL)
        return None
    if packed[:10] == _ZERO10:
        return None
    if ipv6_prefix is None or ipv6_prefix >= 128:
        return socket.inet_ntop(socket.AF_INET6, packed)
    if ipv6_prefix == 64:
        net = packed[:8] + bytes(8)
    else:
        mask = ((1 << ipv6_prefix) - 1) << (128 - ipv6_prefix)
        net = (int.from_bytes(packed, "big") & mask).to_bytes(16, "big")
    if net[:10] == _ZERO10:
        return None
    return f"{socket.inet_ntop(socket.AF_INET6, net)}/{ipv6_prefix}"


def _normalise_ip_reference(text: str, ipv6_prefix: int | None = None) -> str | None:
    """The definition, with ``ipaddress`` (the fast paths above must agree with it)."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if addr.version == 6:
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        if ipv6_prefix is not None and ipv6_prefix < 128:
            net = ipaddress.IPv6Network((int(addr), ipv6_prefix), strict=False)
            return f"{net.network_address}/{ipv6_prefix}"
    return str(addr)


class _Extractor:
    """Turns one raw field value into a key; memoised because the same values repeat."""

    def __init__(self, spec: KeySpec) -> None:
        self.spec = spec
        self._cache: dict[str | None, str | None] = {None: None}
        self._fn = self._build()
        # cs-headers carries per-request values (user agent, range, trace ids...): nearly every value
        # is new, so a memo would only hold ~1 KB strings that never hit again.
        self._memo = spec.source != "header"
        # A header name percent-encoding never touches appears verbatim in cs-headers: a batch
        # pre-filter then decides, exactly, which rows cannot hold it.
        want = accessors.header_key(spec.param or "") if spec.source == "header" else ""
        self._header_name = (
            np.frombuffer(want.encode("ascii"), dtype=np.uint8)
            if len(want) >= 2 and accessors.verbatim(want)
            else None
        )

    def _headers(self, values: list[str | None]) -> list[str | None] | None:
        """Header keys of a column: the rows the kernel finds the name in go through the accessor,
        every other row has no such header (None when the column is not plain ASCII text)."""
        if isinstance(values, ScannedTexts):
            # The parser's bytes of the column: no string of ~500 characters is made for a row
            # that cannot hold the header.
            out: list[str | None] = []
            fn = self._fn
            for buf, starts, ends in values.segments:
                part: list[str | None] = [None] * starts.shape[0]
                for i in np.flatnonzero(rows_containing(buf, starts, ends, self._header_name)).tolist():
                    raw = value_at(buf, int(starts[i]), int(ends[i]))
                    if raw is not None:
                        part[i] = fn(raw)
                out.extend(part)
            return out
        try:
            joined = "".join(values)  # type: ignore[arg-type]
            lens = np.fromiter(map(len, values), np.int64, len(values))  # type: ignore[arg-type]
        except TypeError:  # some None: missing fields
            texts = [v or "" for v in values]
            joined = "".join(texts)
            lens = np.fromiter(map(len, texts), np.int64, len(texts))
        if not joined.isascii():  # lower() of other characters can yield ASCII: the accessor decides
            return None
        offs = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lens, out=offs[1:])
        buf = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        hits = rows_containing(buf, offs[:-1], offs[1:], self._header_name)
        out = [None] * len(values)
        fn = self._fn
        for i in np.flatnonzero(hits).tolist():
            raw = values[i]
            if raw is not None:
                out[i] = fn(raw)
        return out

    def _build(self) -> Callable[[str], str | None]:
        s = self.spec
        limit = s.max_length
        if s.source == "c-ip":
            return lambda raw: normalise_ip(raw, s.ipv6_prefix)
        if s.source == "x-forwarded-for":
            pos = s.xff_from_right

            def xff(raw: str) -> str | None:
                parts = [p.strip() for p in raw.split(",") if p.strip()]
                if not parts:
                    return None
                if pos is None:
                    pick = parts[0]
                elif pos <= len(parts):
                    pick = parts[-pos]
                else:
                    return None
                return normalise_ip(pick, s.ipv6_prefix)

            return xff
        name = s.param or ""
        if s.source == "cookie":
            get = accessors.cookie
        elif s.source == "header":
            get = accessors.header
        elif s.source == "query":
            get = accessors.query_arg
        else:
            rx = re.compile(name)
            group: int | str = "key" if "key" in rx.groupindex else 1

            def by_regex(raw: str) -> str | None:
                m = rx.search(raw)
                return m.group(group) if m else None

            return lambda raw: _clip(by_regex(raw), limit)
        return lambda raw: _clip(get(raw, name), limit)

    def __call__(self, values: list[str | None]) -> list[str | None]:
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
            cache[None] = None
        fn = self._fn
        if not self._memo:
            if self._header_name is not None and (out := self._headers(values)) is not None:
                return out
            return [None if raw is None else fn(raw) for raw in values]
        # A set difference in C finds the values this memo has not seen (a missing field is known:
        # ``cache[None] is None``); only those go through ``fn``, once each, however often they
        # repeat in the batch (new users arrive with many requests: ~40% of the records of a batch
        # carry a value first seen in it). Then one lookup per record, in C. (``set.difference``
        # with a dict probes the dict per element; ``keys() - keys()`` would walk the whole memo.)
        for raw in set(values).difference(cache):
            cache[raw] = fn(raw)
        return list(map(cache.get, values))


def _clip(value: str | None, limit: int) -> str | None:
    if not value or len(value) > limit:
        return None
    return value


class KeyExtractor:
    """Fills ``batch.keys`` for every configured key type and counts records without a key."""

    def __init__(self, specs: tuple[KeySpec, ...] | list[KeySpec]) -> None:
        self.specs = tuple(specs)
        self._extractors = {s.name: _Extractor(s) for s in self.specs}
        self.missing: dict[str, int] = {s.name: 0 for s in self.specs}
        self.keyed: dict[str, int] = {s.name: 0 for s in self.specs}

    def required_fields(self) -> set[str]:
        return {s.field for s in self.specs}

    def extract(self, batch: RecordBatch) -> None:
        n = len(batch)
        for spec in self.specs:
            column = batch.texts.get(spec.field)
            keys = self._extractors[spec.name](column) if column is not None else [None] * n
            none = keys.count(None)
            self.missing[spec.name] += none
            self.keyed[spec.name] += n - none
            batch.keys[spec.name] = keys
