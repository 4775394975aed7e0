"""The catalog of CloudFront real-time log fields, in CloudFront's fixed output order.

CloudFront always writes the fields a real-time log config selects in *this* order, whatever order
the config lists them in; so a configured field list is first sorted by catalog position, and that
sorted list decides each field's column in a line.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    TEXT = "text"
    INT = "int"
    FLOAT = "float"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind = Kind.TEXT
    url_encoded: bool = False


_T, _I, _F = Kind.TEXT, Kind.INT, Kind.FLOAT

# Order verified against sample 07 (45 fields) of shared/reference-logs.
CATALOG: tuple[Field, ...] = (
    Field("timestamp", _F),
    Field("c-ip"),
    Field("time-to-first-byte", _F),
    Field("sc-status", _I),
    Field("sc-bytes", _I),
    Field("cs-method"),
    Field("cs-protocol"),
    Field("cs-host"),
    Field("cs-uri-stem", url_encoded=True),
    Field("cs-bytes", _I),
    Field("x-edge-location"),
    Field("x-edge-request-id"),
    Field("x-host-header"),
    Field("time-taken", _F),
    Field("cs-protocol-version"),
    Field("c-ip-version"),
    Field("cs-user-agent", url_encoded=True),
    Field("cs-referer", url_encoded=True),
    Field("cs-cookie", url_encoded=True),
    Field("cs-uri-query", url_encoded=True),
    Field("x-edge-response-result-type"),
    Field("x-forwarded-for"),
    Field("ssl-protocol"),
    Field("ssl-cipher"),
    Field("x-edge-result-type"),
    Field("fle-encrypted-fields"),
    Field("fle-status"),
    Field("sc-content-type", url_encoded=True),
    Field("sc-content-len", _I),
    Field("sc-range-start", _I),
    Field("sc-range-end", _I),
    Field("c-port", _I),
    Field("x-edge-detailed-result-type"),
    Field("c-country"),
    Field("cs-accept-encoding", url_encoded=True),
    Field("cs-accept", url_encoded=True),
    Field("cache-behavior-path-pattern"),
    Field("cs-headers", url_encoded=True),
    Field("cs-header-names", url_encoded=True),
    Field("cs-headers-count", _I),
    Field("primary-distribution-id"),
    Field("primary-distribution-dns-name"),
    Field("origin-fbl", _F),
    Field("origin-lbl", _F),
    Field("asn", _I),
)

BY_NAME: dict[str, Field] = {f.name: f for f in CATALOG}
POSITION: dict[str, int] = {f.name: i for i, f in enumerate(CATALOG)}

#: The 45 fields of sample 07: the layout the generator, benchmarks and default config use.
ALL_45: tuple[str, ...] = tuple(f.name for f in CATALOG[:45])


def ordered(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Sort a configured field list into CloudFront's output order; unknown or repeated names raise."""
    unknown = [n for n in names if n not in POSITION]
    if unknown:
        raise ValueError(f"unknown CloudFront real-time log field(s): {', '.join(unknown)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"field(s) listed twice: {', '.join(dup)}")
    return tuple(sorted(names, key=POSITION.__getitem__))
