"""Key extraction: every source, missing keys counted, IPv6 normalised and aggregated."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from consumer.keys import KeyExtractor, KeySpec, normalise_ip
from detectors.batch import RecordBatch


def _batch(**texts: list[str | None]) -> RecordBatch:
    n = len(next(iter(texts.values())))
    return RecordBatch(time=np.zeros(n), texts=dict(texts))


def test_c_ip_normalises_ipv6_and_aggregates_to_prefix() -> None:
    spec = KeySpec(name="ip", source="c-ip", ipv6_prefix=64)
    batch = _batch(**{"c-ip": ["203.0.113.9", "2001:DB8:0:0:1::5", "2001:db8::1:0:0:9", None, "not-an-ip"]})
    ex = KeyExtractor([spec])
    ex.extract(batch)
    assert batch.keys["ip"] == ["203.0.113.9", "2001:db8::/64", "2001:db8::/64", None, None]
    assert ex.missing == {"ip": 2}
    assert ex.keyed == {"ip": 3}


def test_ipv6_without_prefix_is_compressed_and_mapped_v4_unwrapped() -> None:
    assert normalise_ip("2001:0DB8:0000:0000:0000:0000:0000:0001") == "2001:db8::1"
    assert normalise_ip("::ffff:198.51.100.7") == "198.51.100.7"
    assert normalise_ip("2001:db8:1:2:3:4:5:6", 48) == "2001:db8:1::/48"


def test_xff_first_and_nth_from_right() -> None:
    raw = "198.51.100.1, 10.0.0.2, 192.0.2.3"
    first = KeySpec(name="client", source="x-forwarded-for")
    trusted = KeySpec(name="edge", source="x-forwarded-for", xff_from_right=2)
    too_far = KeySpec(name="far", source="x-forwarded-for", xff_from_right=4)
    batch = _batch(**{"x-forwarded-for": [raw, None, "garbage"]})
    KeyExtractor([first, trusted, too_far]).extract(batch)
    assert batch.keys["client"] == ["198.51.100.1", None, None]
    assert batch.keys["edge"] == ["10.0.0.2", None, None]
    assert batch.keys["far"] == [None, None, None]


def test_cookie_header_query_and_uri_regex() -> None:
    specs = [
        KeySpec(name="user", source="cookie", param="uid"),
        KeySpec(name="apikey", source="header", param="X-Api-Key"),
        KeySpec(name="token", source="query", param="api_key"),
        KeySpec(name="tenant", source="uri-regex", param=r"^/t/(?P<key>[a-z0-9]+)/"),
    ]
    batch = _batch(
        **{
            "cs-cookie": ["lang=en;%20uid=u-42;%20x=1", "lang=fr", None],
            "cs-headers": ["host:a.example%0Ax-api-key:K123%0A", "host:b%0A", None],
            "cs-uri-query": ["page=2&api_key=abc", "-x=1", None],
            "cs-uri-stem": ["/t/acme/files/1", "/other", None],
        }
    )
    ex = KeyExtractor(specs)
    ex.extract(batch)
    assert batch.keys["user"] == ["u-42", None, None]
    assert batch.keys["apikey"] == ["K123", None, None]
    assert batch.keys["token"] == ["abc", None, None]
    assert batch.keys["tenant"] == ["acme", None, None]
    assert ex.missing == {"user": 2, "apikey": 2, "token": 2, "tenant": 2}


def test_overlong_key_is_treated_as_missing() -> None:
    spec = KeySpec(name="user", source="cookie", param="uid", max_length=8)
    batch = _batch(**{"cs-cookie": ["uid=" + "a" * 9, "uid=short"]})
    KeyExtractor([spec]).extract(batch)
    assert batch.keys["user"] == [None, "short"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "cookie"}, "needs 'param'"),
        ({"source": "uri-regex", "param": "("}, "not a valid regex"),
        ({"source": "uri-regex", "param": "^/t/"}, "capturing group"),
        ({"source": "cookie", "param": "uid", "ipv6_prefix": 64}, "ipv6_prefix only applies"),
        ({"source": "c-ip", "xff_from_right": 2}, "xff_from_right only applies"),
    ],
)
def test_invalid_key_specs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KeySpec(name="k", **kwargs)
