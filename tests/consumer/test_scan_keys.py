"""Fast paths of key extraction against their definitions: IPv6 keys through the C socket functions
vs ``ipaddress``, and the batch pre-filter of header keys vs the per-value accessor."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.keys import _normalise_ip_reference, normalise_ip

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PREFIXES = (None, 1, 16, 48, 56, 63, 64, 65, 80, 96, 112, 127, 128)

_group = st.one_of(st.just("0"), st.just("0000"), st.from_regex(r"\A[0-9a-fA-F]{1,4}\Z"), st.just("ffff"))


@st.composite
def _ipv6_text(draw) -> str:  # type: ignore[no-untyped-def]
    groups = draw(st.lists(_group, min_size=0, max_size=9))
    if draw(st.booleans()) and len(groups) <= 8:
        at = draw(st.integers(0, len(groups)))
        return ":".join(groups[:at]) + "::" + ":".join(groups[at:])
    return ":".join(groups)


@SETTINGS
@given(
    st.one_of(
        _ipv6_text(),
        st.text(st.sampled_from("0123456789abcdefABCDEF:."), max_size=45),
        st.sampled_from(
            [
                "::",
                "::1",
                "::ffff:1.2.3.4",
                "::ffff:0:0",
                "::1:2",
                "1::",
                "0:0:0:0:0:1:0:0",
                "0:0:0:0:1::",
                "fe80::1%eth0",
                " 2001:db8::1 ",
                "2001:DB8:0:0:1:0:0:1",
                "2001:db8:0:1:1:1:1:1",
                "1:2:3:4:5:6:7::",
                "1:2:3:4:5:6:7:8::",
                "::2:3:4:5:6:7:8",
            ]
        ),
    ),
    st.sampled_from(PREFIXES),
)
def test_ipv6_fast_path_agrees_with_ipaddress(text: str, prefix: int | None) -> None:
    assert normalise_ip(text, prefix) == _normalise_ip_reference(text, prefix)
