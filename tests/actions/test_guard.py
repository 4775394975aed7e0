"""The guard's safety features, each with a test that fails if the feature is removed."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from actions.config import ActionsConfig, EscalationConfig
from actions.runner import ActionRunner
from tests.actions.helpers import T0, FakeWall, cfg, finding


def runner(**sections) -> ActionRunner:  # type: ignore[no-untyped-def]
    return ActionRunner(cfg(**sections), dry_run=True, clock=FakeWall())


def actions(decisions) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.action for d in decisions]


def test_modes_block_alert_shadow() -> None:
    r = runner()
    got = r.submit([finding("a", mode="block"), finding("b", mode="alert"), finding("c", mode="shadow")])
    assert [(d.action, d.reason) for d in got] == [
        ("block", "threshold"),
        ("alert", "alert_mode"),
        ("shadow", "shadow_mode"),
    ]
    assert got[0].block_duration_s == 600 and got[1].block_duration_s is None
    assert all(d.dry_run for d in got)


def test_cooldown_blocks_one_abuser_once() -> None:
    r = runner(guard={"cooldown_s": 300, "escalation": {"first_s": 60}})
    got = r.submit([finding(t=T0 + i) for i in range(0, 300, 10)])
    assert actions(got) == ["block"] + ["refused"] * 29
    assert {d.reason for d in got[1:]} == {"cooldown"}
    # cooldown over (300 s > block of 60 s): blocked again, as a second offence
    again = r.submit([finding(t=T0 + 300)])[0]
    assert (again.action, again.offence) == ("block", 2)


def test_cooldown_covers_the_block_duration() -> None:
    r = runner(guard={"cooldown_s": 10, "escalation": {"first_s": 600}})
    assert actions(r.submit([finding(t=T0), finding(t=T0 + 599), finding(t=T0 + 600)])) == [
        "block",
        "refused",
        "block",
    ]


def test_alert_cooldown_is_per_detector() -> None:
    r = runner(guard={"cooldown_s": 300})
    got = r.submit(
        [
            finding(mode="alert", detector="a"),
            finding(mode="alert", detector="a", t=T0 + 100),
            finding(mode="alert", detector="b", t=T0 + 100),
            finding(mode="alert", detector="a", t=T0 + 300),
        ]
    )
    assert actions(got) == ["alert", "refused", "alert", "alert"]


def test_escalation_grows_and_is_capped() -> None:
    esc = {"first_s": 60, "factor": 3, "max_s": 1000, "memory_s": 86_400}
    r = runner(guard={"cooldown_s": 0, "escalation": esc})
    durations = []
    t = T0
    for _ in range(6):
        d = r.submit([finding(t=t)])[0]
        assert d.action == "block"
        durations.append(d.block_duration_s)
        t += d.block_duration_s  # the abuser comes back as soon as the block ends
    assert durations == [60, 180, 540, 1000, 1000, 1000]


def test_escalation_forgets_after_memory() -> None:
    esc = {"first_s": 60, "factor": 2, "max_s": 10_000, "memory_s": 3600}
    r = runner(guard={"cooldown_s": 0, "escalation": esc})
    assert r.submit([finding(t=T0)])[0].block_duration_s == 60
    assert r.submit([finding(t=T0 + 100)])[0].block_duration_s == 120
    back = r.submit([finding(t=T0 + 100 + 3601)])[0]
    assert (back.offence, back.block_duration_s) == (1, 60)


def test_escalation_config_rejects_cap_below_first() -> None:
    with pytest.raises(ValidationError, match="max_s"):
        EscalationConfig(first_s=100, max_s=10)
    assert EscalationConfig(first_s=1, factor=10, max_s=50).duration(10_000) == 50


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("10.1.2.3", True),
        ("10.255.0.1", True),
        ("11.0.0.1", False),
        ("2001:db8:1::5", True),
        ("2001:db8:1::/64", True),  # a prefix key containing allowlisted space
        ("2001:db8::/32", True),  # a wider prefix overlapping the allowlisted /48
        ("2001:db9::1", False),
        ("::ffff:10.0.0.9", True),  # v4-mapped written as v6
    ],
)
def test_allowlist_cidrs_v4_and_v6(key: str, refused: bool) -> None:
    r = runner(guard={"allowlist": {"cidrs": ["10.0.0.0/8", "2001:db8:1::/48"]}})
    d = r.submit([finding(key)])[0]
    assert (d.action == "refused") is refused
    if refused:
        assert d.reason == "allowlisted_cidr"


def test_allowlist_keys_per_key_type_and_for_alerts() -> None:
    r = runner(guard={"allowlist": {"keys": {"user": ["monitoring"]}}})
    got = r.submit(
        [
            finding("monitoring", key_type="user"),
            finding("monitoring", key_type="user", mode="alert"),
            finding("monitoring", key_type="session"),
        ]
    )
    assert [(d.action, d.reason) for d in got] == [
        ("refused", "allowlisted_key"),
        ("refused", "allowlisted_key"),
        ("block", "threshold"),
    ]


def test_allowlist_rejects_bad_cidr() -> None:
    with pytest.raises(ValidationError, match="not an IPv4/IPv6"):
        cfg(guard={"allowlist": {"cidrs": ["10.0.0.0/33"]}})


def test_circuit_breaker_trips_alerts_and_resets_on_timeout(caplog: pytest.LogCaptureFixture) -> None:
    br = {"max_blocks": 3, "per_s": 60, "reset_after_s": 600}
    r = runner(guard={"breaker": br})
    got = r.submit([finding(f"198.51.100.{i}", t=T0 + i) for i in range(6)])
    assert actions(got) == ["block"] * 3 + ["alert"] * 3
    assert {d.reason for d in got[3:]} == {"circuit_breaker_open"}
    assert "CIRCUIT BREAKER OPEN" in caplog.text
    st = r.stats()
    assert (st["breaker_open"], st["breaker_trips"]) == (1, 1)
    assert st["guard.breaker_downgraded"] == 3 and st["guard.alert.circuit_breaker_open"] == 3
    assert "circuit breaker still open: 1 block(s) downgraded" in caplog.text  # reminded, not per block
    # still open just before the timeout, closed after it
    assert r.submit([finding("192.0.2.1", t=T0 + 3 + 599)])[0].action == "alert"
    assert r.submit([finding("192.0.2.2", t=T0 + 3 + 600)])[0].action == "block"
    assert r.stats()["breaker_open"] == 0


def test_circuit_breaker_window_slides() -> None:
    r = runner(guard={"breaker": {"max_blocks": 3, "per_s": 60}})
    # 3 blocks per minute, spread out: never more than 3 within 60 s
    got = r.submit([finding(f"198.51.100.{i}", t=T0 + i * 21) for i in range(20)])
    assert set(actions(got)) == {"block"}


def test_circuit_breaker_operator_reset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reset = tmp_path / "reset"
    wall = FakeWall()
    br = {"max_blocks": 1, "per_s": 60, "reset_after_s": None, "reset_file": str(reset)}
    r = ActionRunner(cfg(guard={"breaker": br}), dry_run=True, clock=wall)
    assert actions(r.submit([finding("192.0.2.1"), finding("192.0.2.2")])) == ["block", "alert"]
    wall.t += 10
    assert r.submit([finding("192.0.2.3", t=T0 + 10**6)])[0].action == "alert"  # no timeout configured
    reset.write_text("")
    import os

    os.utime(reset, (wall.t + 5, wall.t + 5))
    wall.t += 10
    assert r.submit([finding("192.0.2.4", t=T0 + 10**6 + 1)])[0].action == "block"
    r.submit([finding("192.0.2.5", t=T0 + 10**6 + 2)])  # trips again
    r.reset_breaker()
    assert r.submit([finding("192.0.2.6", t=T0 + 10**6 + 3)])[0].action == "block"
    assert r.stats()["breaker_trips"] == 2


def test_idempotency_key_stable_across_replays_and_distinct_per_block() -> None:
    stream = [finding(t=T0 + i) for i in range(0, 2000, 7)] + [finding("192.0.2.9", t=T0 + 5)]
    a = [d for d in runner(guard={"cooldown_s": 0}).submit(stream) if d.action == "block"]
    b = [d for d in runner(guard={"cooldown_s": 0}).submit(stream) if d.action == "block"]
    assert [d.idempotency_key for d in a] == [d.idempotency_key for d in b]
    assert len({d.idempotency_key for d in a}) == len(a) >= 3
    assert a[0].decided_at == b[0].decided_at  # injected clock


def test_snapshot_restore_keeps_cooldown_escalation_and_breaker() -> None:
    r = runner(guard={"breaker": {"max_blocks": 2, "per_s": 60, "reset_after_s": 1000}})
    r.submit([finding("a"), finding("b"), finding("c")])  # c trips the breaker
    blob = pickle.dumps(r.snapshot())
    r2 = runner(guard={"breaker": {"max_blocks": 2, "per_s": 60, "reset_after_s": 1000}})
    r2.restore(pickle.loads(blob))
    assert r2.submit([finding("a", t=T0 + 1)])[0].reason == "cooldown"
    assert r2.submit([finding("d", t=T0 + 2)])[0].reason == "circuit_breaker_open"
    d = r2.submit([finding("a", t=T0 + 1001)])[0]
    assert (d.action, d.offence, d.block_duration_s) == ("block", 2, 2400)
    with pytest.raises(ValueError, match="unknown format"):
        r2.restore({"version": 99})


def test_tracked_keys_are_bounded() -> None:
    r = runner(guard={"max_tracked_keys": 100, "breaker": {"max_blocks": 10_000}})
    r.submit([finding(f"k{i}", key_type="user") for i in range(1000)])
    st = r.stats()
    assert st["guard.tracked_keys"] == 100 and st["guard.evicted_keys"] == 900


def test_decision_record_is_json_with_iso_time() -> None:
    import json

    d = runner().submit([finding()])[0]
    rec = json.loads(json.dumps(d.to_record()))
    for k in ("key", "key_type", "detector", "score", "threshold", "action", "event_time", "window"):
        assert k in rec
    assert rec["event_time"] == "2023-11-14T22:13:20.000Z"
    assert rec["evidence"] == {"requests": 250, "status_4xx": 3}
    assert len(rec["idempotency_key"]) == 32


def test_default_config_is_dry_run() -> None:
    assert ActionsConfig().dry_run is True
    assert ActionRunner(ActionsConfig()).delivery is None


def test_live_without_function_name_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="function_name"):
        ActionRunner(cfg(spool={"path": str(tmp_path / "s.jsonl")}), dry_run=False)


def test_live_without_region_is_a_clear_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    c = cfg(block={"function_name": "f"}, spool={"path": str(tmp_path / "s.jsonl")})
    with pytest.raises(ValueError, match=r"actions\.block.*region"):
        ActionRunner(c, dry_run=False)
