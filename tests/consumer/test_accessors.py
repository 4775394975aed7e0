"""Header, cookie and query-argument lookup on raw real-time log fields (as logged, URL-encoded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.accessors import cookie, header, query_arg

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference-logs"


def _sample07_fields() -> list[str]:
    path = REF / "07_realtime_clo_kinesis_record_data.bin"
    assert path.exists(), f"reference logs missing: {path} (shared/ must sit beside the repository)"
    return path.read_bytes().decode().rstrip("\n").split("\t")


def test_headers_of_sample_07_by_name_case_insensitive() -> None:
    raw = _sample07_fields()[37]
    assert header(raw, "host") == "d2omsvnrx2yu4i.cloudfront.net"
    assert header(raw, "HOST") == "d2omsvnrx2yu4i.cloudfront.net"
    assert header(raw, "User-Agent") == (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/108.0.0.0 Safari/537.36"
    )
    assert header(raw, "sec-ch-ua") == '"Not?A_Brand";v="8", "Chromium";v="108", "Google Chrome";v="108"'
    assert header(raw, "sec-ch-ua-mobile") == "?0"
    assert header(raw, "accept-language") == "en,zh-CN;q=0.9,zh;q=0.8"
    assert header(raw, "x-forwarded-for") is None
    # 'accept' must not match 'accept-encoding' / 'accept-language' (whole-name comparison).
    assert header(raw, "accept") == "*/*"


def test_header_first_match_wins_and_edge_cases() -> None:
    raw = "x-a:1%0AX-A:2%0Ay:%25zz%0A"
    assert header(raw, "x-a") == "1"
    assert header(raw, "y") == "%zz"
    assert header("-", "x") is None
    assert header(None, "x") is None
    assert header("", "x") is None
    assert header("x-a%3A1", "x-a") is None  # no separator: not a header entry
    assert header(raw, "") is None


def test_header_value_with_colons_and_decoded_input() -> None:
    assert header("referer:https://a.example:8443/p?q=1%0A", "Referer") == "https://a.example:8443/p?q=1"
    # A config that decodes cs-headers hands over real newlines.
    assert header("host:a.example\nuser-agent:curl/8.0 x\n", "user-agent") == "curl/8.0 x"


def test_cookie_by_name() -> None:
    raw = "session=abc123;%20uid=u-42;%20quoted=%22v%20w%22;%20enc=a%253Bb"
    assert cookie(raw, "session") == "abc123"
    assert cookie(raw, "uid") == "u-42"
    assert cookie(raw, "quoted") == "v w"
    assert cookie(raw, "enc") == "a%3Bb"  # the client's own encoding is kept
    assert cookie(raw, "UID") is None  # cookie names are case-sensitive
    assert cookie(raw, "missing") is None
    assert cookie("-", "uid") is None
    assert cookie("a=1;%20a=2", "a") == "1"
    assert cookie("flag;%20a=", "a") == ""


def test_query_arg_by_name() -> None:
    raw = (
        "stm=1607374321563&e=pp&url=http%253A%252F%252Flocalhost%253A5000%252Fpage-2"
        "&q=red+hat%2520x&empty=&bare&u%255B%255D=7"
    )
    assert query_arg(raw, "url") == "http://localhost:5000/page-2"
    assert query_arg(raw, "e") == "pp"
    assert query_arg(raw, "q") == "red hat x"
    assert query_arg(raw, "empty") == ""
    assert query_arg(raw, "bare") == ""
    assert query_arg(raw, "u[]") == "7"
    assert query_arg(raw, "E") is None
    assert query_arg(raw, "nope") is None
    assert query_arg("-", "e") is None
    assert query_arg("v=v1.2.0", "v") == "v1.2.0"


@pytest.mark.parametrize("fn", [header, cookie, query_arg])
def test_accessors_never_raise_on_odd_text(fn) -> None:
    for raw in ["%", "%zz", "%0A%0A", ":", ";", "&&", "=", "a=%FF", "\x00\t", "%E2%82"]:
        fn(raw, "a")


def test_values_cut_by_cloudfront_truncation() -> None:
    raw = "host:a.example%0Auser-agent:Mozilla/5.0%20(Win%2"  # cs-headers is cut at 800 bytes
    assert header(raw, "user-agent") == "Mozilla/5.0 (Win%2"
    assert header(raw, "host") == "a.example"
    assert cookie("a=1;%20session=abc%2", "session") == "abc%2"
