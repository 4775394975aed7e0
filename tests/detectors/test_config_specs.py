"""Detector specs: a discriminated union, validated, errors naming the bad value."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from detectors.config import BaselineSpec, DetectorSpec, RatioSpec, RuleSpec, StateConfig
from detectors.defaults import default_detectors
from detectors.engine import Engine
from detectors.windows import window_label, window_seconds

ADAPTER = TypeAdapter(DetectorSpec)


def test_windows_parse_and_label() -> None:
    assert [window_seconds(w) for w in ("30s", "1m", "5m", "1h", "24h", "1d")] == [
        30,
        60,
        300,
        3600,
        86400,
        86400,
    ]
    assert [window_label(s) for s in (30, 60, 300, 3600, 86400, 90)] == ["30s", "1m", "5m", "1h", "1d", "90s"]
    for bad in ("0m", "5", "1w", "-1h", "1.5h", "8d"):
        with pytest.raises(ValueError, match="window"):
            window_seconds(bad)


def test_union_dispatches_on_type() -> None:
    rule = ADAPTER.validate_python(
        {"type": "rule", "name": "r", "key": "ip", "metric": "requests", "threshold": 5}
    )
    ratio = ADAPTER.validate_python(
        {"type": "ratio", "name": "q", "key": "ip", "numerator": "cache_misses", "threshold": 0.9}
    )
    base = ADAPTER.validate_python({"type": "baseline", "name": "b", "key": "user"})
    assert isinstance(rule, RuleSpec) and isinstance(ratio, RatioSpec) and isinstance(base, BaselineSpec)
    assert rule.window_s == 60 and base.window_s == 3600 and ratio.denominator == "requests"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"type": "rule", "metric": "requestz", "threshold": 5}, "'requestz'"),
        ({"type": "rule", "metric": "requests", "threshold": 0}, "greater than 0"),
        ({"type": "rule", "metric": "requests", "threshold": 5, "window": "5x"}, "'5x'"),
        ({"type": "rule", "metric": "requests", "threshold": 5, "path": "(unclosed"}, "'(unclosed'"),
        ({"type": "rule", "metric": "requests", "threshold": 5, "status": [404, 999]}, "999"),
        ({"type": "rule", "metric": "requests", "threshold": 5, "colour": "red"}, "colour"),
        ({"type": "ratio", "numerator": "distinct_uris", "threshold": 0.5}, "'distinct_uris' is a distinct"),
        ({"type": "ratio", "numerator": "requests", "threshold": 0.5}, "both 'requests'"),
        ({"type": "baseline", "metric": "bogus"}, "'bogus'"),
        ({"type": "baseline", "alpha": 1.5}, "alpha"),
        ({"type": "magic"}, "magic"),
    ],
)
def test_bad_values_are_named(doc: dict, needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ADAPTER.validate_python({"name": "d", "key": "ip", **doc})
    assert needle in str(exc.value)


def test_specs_are_frozen() -> None:
    spec = RuleSpec(name="r", key="ip", metric="requests", threshold=5)
    with pytest.raises(ValidationError):
        spec.threshold = 6  # type: ignore[misc]


def test_state_config_bounds() -> None:
    with pytest.raises(ValidationError, match="max_keys"):
        StateConfig(max_keys=0)
    assert StateConfig().idle_timeout_s > 86400 + StateConfig().allowed_lateness_s


def test_defaults_cover_every_abuse_kind_and_build() -> None:
    specs = default_detectors()
    names = {s.name for s in specs}
    for kind in (
        "request_flood",
        "bandwidth_hog",
        "scanner",
        "credential_stuffing",
        "scraping",
        "origin_exhaustion",
        "surge",
        "api_key",
    ):
        assert any(kind in n for n in names), kind
    assert len(names) == len(specs)
    assert {s.key for s in specs} == {"ip", "user", "api_key"}
    e = Engine.from_config(specs, StateConfig(), ["ip", "user", "api_key"])
    assert e.required_fields() == {"timestamp", "sc-bytes", "sc-status", "cs-uri-stem", "x-edge-result-type"}
    with pytest.raises(ValueError, match="used twice"):
        Engine.from_config([specs[0], specs[0]], StateConfig(), ["ip", "user"])
