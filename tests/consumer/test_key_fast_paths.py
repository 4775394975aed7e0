"""The key extraction fast paths give exactly what the slow, general paths give."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from consumer.accessors import header
from consumer.keys import KeyExtractor, KeySpec, normalise_ip
from detectors.batch import RecordBatch


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4",
        "255.255.255.255",
        "0.0.0.0",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        " 1.2.3.4 ",
        "\u0661.2.3.4",
        "1.2.3.+4",
        "::ffff:1.2.3.4",
        "2001:DB8::1",
        "",
        "1..2.3",
    ],
)
def test_dotted_quad_fast_path_agrees_with_ipaddress(text: str) -> None:
    try:
        want = ipaddress.ip_address(text.strip())
        expected = str(want.ipv4_mapped or want) if want.version == 6 else str(want)
    except ValueError:
        expected = None
    assert normalise_ip(text) == expected


def test_absent_plain_header_is_none_and_encoded_names_still_found() -> None:
    raw = "host:a.example%0Auser-agent:Mozilla/5.0%20(X11)%0A"
    assert header(raw, "x-api-key") is None
    assert header(raw + "x-api-key:ak_1%0A", "X-Api-Key") == "ak_1"
    # A name with a reserved character may be logged percent-encoded: the slow path still finds it.
    assert header("x%3Aodd:v%0A", "x:odd") == "v"


def test_header_keys_without_memo_match_per_record_lookup() -> None:
    ex = KeyExtractor([KeySpec(name="api_key", source="header", param="x-api-key")])
    heads = ["x-api-key:k1%0Ahost:h%0A", "-", None, "host:h%0A", "X-API-KEY:k2%0A"] * 3
    b = RecordBatch(time=np.zeros(len(heads)))
    b.texts["cs-headers"] = heads
    ex.extract(b)
    assert b.keys["api_key"] == ["k1", None, None, None, "k2"] * 3
    assert ex.keyed["api_key"] == 6 and ex.missing["api_key"] == 9
