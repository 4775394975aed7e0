"""The block Lambda handler, called directly, against moto's DynamoDB and WAFv2 over HTTP.

Proves: the payload the action builds (``actions.lambda_action.build_payload``, the shared pydantic
model) is what the handler accepts; blocks land in DynamoDB with an ``expires_at`` TTL and IP keys in
the right WAF IP set; idempotency on ``idempotency_key``; bad events answered clearly with nothing
written; optimistic-lock retries against moto's real WAFOptimisticLockException; the IP-set limit;
unblock and expiry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from actions.config import ActionsConfig
from actions.lambda_action import build_payload
from actions.runner import ActionRunner
from infra.block_lambda.handler import BlockService
from infra.block_lambda.settings import IPSetRef, Settings
from tests.actions.aws import AwsStack, MotoServer
from tests.actions.helpers import FakeWall, finding

pytestmark = pytest.mark.integration

NOW = 1_800_000_000


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def stack(moto: MotoServer) -> AwsStack:
    return AwsStack(moto)


def service(stack: AwsStack, clock: Clock | None = None, **env: str) -> BlockService:
    return BlockService(
        Settings.from_env(stack.env(**env)),
        dynamodb=stack.moto.client("dynamodb"),
        wafv2=stack.moto.client("wafv2"),
        clock=clock or Clock(),
    )


def payload(key: str = "203.0.113.7", t_offset: float = 0, **kw: Any) -> dict[str, Any]:
    """The exact payload the action sends, built from a guard decision."""
    runner = ActionRunner(ActionsConfig(), dry_run=True, clock=FakeWall(NOW))
    d = runner.submit([finding(key, t=1_700_000_000 + t_offset, **kw)])[0]
    assert d.action == "block"
    return build_payload(d)


def test_block_ipv4_writes_dynamodb_with_ttl_and_waf(stack: AwsStack) -> None:
    p = payload("203.0.113.7")
    got = service(stack).handle(p)
    assert got["ok"] is True and got["status"] == "applied" and got["waf"] == "added"
    assert got["expires_at"] == NOW + 600
    (item,) = stack.items()
    assert item["pk"] == "block#ip#203.0.113.7"
    assert item["expires_at"] == NOW + 600 and item["blocked_at"] == NOW
    assert item["idempotency_key"] == p["idempotency_key"]
    assert item["status"] == "active" and item["waf_status"] == "added"
    assert item["detector"] == "rps" and item["score"] == 2.5
    assert item["event_time"] == "2023-11-14T22:13:20Z"
    assert stack.addresses(4) == ["203.0.113.7/32"]
    assert stack.addresses(6) == []
    ttl = stack.ddb.describe_time_to_live(TableName=stack.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_block_ipv6_prefix_goes_to_v6_set(stack: AwsStack) -> None:
    got = service(stack).handle(payload("2001:db8:aa::/64"))
    assert got["waf"] == "added"
    assert stack.addresses(6) == ["2001:db8:aa::/64"]
    assert stack.addresses(4) == []


def test_non_ip_key_type_is_dynamodb_only(stack: AwsStack) -> None:
    got = service(stack).handle(payload("alice", key_type="user"))
    assert got["ok"] and "waf" not in got
    (item,) = stack.items()
    assert item["pk"] == "block#user#alice" and item["waf_status"] == "none"
    assert stack.addresses(4) == [] and stack.addresses(6) == []


def test_same_idempotency_key_applied_once(stack: AwsStack) -> None:
    svc = service(stack)
    p = payload()
    first = svc.handle(p)
    svc_later = service(stack, Clock(NOW + 100))
    again = svc_later.handle(p)
    assert (first["status"], again["status"]) == ("applied", "duplicate")
    (item,) = stack.items()
    assert item["expires_at"] == NOW + 600  # the duplicate did not push the expiry
    assert len(stack.items("idem#")) == 1
    assert stack.addresses(4) == ["203.0.113.7/32"]


def test_longer_existing_block_is_kept(stack: AwsStack) -> None:
    svc = service(stack)
    long = {**payload(), "block_duration_s": 86_400}
    short = payload(t_offset=3600)  # another block decision for the same key, shorter
    assert long["idempotency_key"] != short["idempotency_key"]
    assert svc.handle(long)["status"] == "applied"
    got = svc.handle(short)
    assert got["status"] == "existing_longer" and got["expires_at"] == NOW + 86_400
    assert svc.handle(short)["status"] == "duplicate"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "invalid event"),
        ("block me", "invalid event"),
        ({"op": "nuke"}, "op"),
        ({k: v for k, v in payload().items() if k != "key"}, "key: Field required"),
        ({**payload(), "score": "high"}, "score"),
        ({**payload(), "score": float("nan")}, "score"),
        ({**payload(), "block_duration_s": 0}, "block_duration_s"),
        ({**payload(), "event_time": "2023-11-14T22:13:20"}, "timezone"),
        ({**payload(), "idempotency_key": "not hex!"}, "idempotency_key"),
        ({**payload(), "surprise": 1}, "surprise"),
        ({**payload(), "evidence": {"blob": "x" * 40_000}}, "evidence"),
        (payload("not-an-ip"), "not an IP address"),
    ],
)
def test_bad_event_gets_clear_error_and_no_write(stack: AwsStack, event: Any, message: str) -> None:
    got = service(stack).handle(event)
    assert got["ok"] is False and got["retryable"] is False and got["status"] == 400
    assert message in got["error"]
    assert stack.ddb.scan(TableName=stack.table)["Items"] == []
    assert stack.addresses(4) == []


def test_waf_optimistic_lock_retried_with_fresh_token(stack: AwsStack) -> None:
    """Another writer changes the IP set between our read and our write, twice: moto rejects our
    stale LockToken with WAFOptimisticLockException, the handler re-reads and succeeds, and the
    other writer's addresses survive."""
    svc = service(stack)
    other = stack.moto.client("wafv2")
    intruders = ["192.0.2.1/32", "192.0.2.2/32"]

    def interfere(**kwargs: Any) -> None:
        if intruders:
            s = stack.v4
            got = other.get_ip_set(Name=s["Name"], Scope="CLOUDFRONT", Id=s["Id"])
            other.update_ip_set(
                Name=s["Name"],
                Scope="CLOUDFRONT",
                Id=s["Id"],
                Addresses=[*got["IPSet"]["Addresses"], intruders.pop(0)],
                LockToken=got["LockToken"],
            )

    svc.waf.client.meta.events.register("after-call.wafv2.GetIPSet", interfere)
    svc.waf.sleep = lambda s: None
    got = svc.handle(payload("203.0.113.7"))
    assert got["waf"] == "added"
    assert svc.waf.lock_conflicts == 2
    assert stack.addresses(4) == ["192.0.2.1/32", "192.0.2.2/32", "203.0.113.7/32"]


def test_waf_lock_retries_are_bounded(stack: AwsStack) -> None:
    svc = service(stack, WAF_LOCK_RETRIES="2")
    other = stack.moto.client("wafv2")
    n = [0]

    def interfere(**kwargs: Any) -> None:
        s = stack.v4
        got = other.get_ip_set(Name=s["Name"], Scope="CLOUDFRONT", Id=s["Id"])
        n[0] += 1
        other.update_ip_set(
            Name=s["Name"],
            Scope="CLOUDFRONT",
            Id=s["Id"],
            Addresses=[f"192.0.2.{n[0]}/32"],
            LockToken=got["LockToken"],
        )

    svc.waf.client.meta.events.register("after-call.wafv2.GetIPSet", interfere)
    svc.waf.sleep = lambda s: None
    got = svc.handle(payload())
    assert got["ok"] is False and got["retryable"] is True and "WAFOptimisticLockException" in got["error"]
    assert svc.waf.lock_conflicts == 3
    # the block is in DynamoDB (pending WAF); a retry of the same event completes it
    svc.waf.client.meta.events.unregister("after-call.wafv2.GetIPSet", interfere)
    assert stack.items()[0]["waf_status"] == "pending"
    again = svc.handle(payload())
    assert again["status"] == "duplicate" and again["waf"] == "added"
    assert "203.0.113.7/32" in stack.addresses(4)
    assert stack.items()[0]["waf_status"] == "added"


def test_ip_set_limit_is_respected_and_reported(stack: AwsStack, caplog: pytest.LogCaptureFixture) -> None:
    svc = service(stack, WAF_MAX_ADDRESSES="2")
    results = [svc.handle(payload(f"198.51.100.{i}")) for i in range(3)]
    assert [r["waf"] for r in results] == ["added", "added", "full"]
    assert "full (2 of 2 addresses)" in results[2]["warning"]
    assert "is full" in caplog.text
    assert stack.addresses(4) == ["198.51.100.0/32", "198.51.100.1/32"]
    assert [i["waf_status"] for i in stack.items()] == ["added", "added", "full"]
    assert all(r["ok"] for r in results)  # the block itself is recorded


def test_waf_unavailable_after_write_is_retryable_and_completes(stack: AwsStack) -> None:
    broken = dataclasses.replace(
        Settings.from_env(stack.env()), ipv4_set=IPSetRef(stack.v4["Name"], "no-such-id", "CLOUDFRONT")
    )
    svc = BlockService(
        broken, dynamodb=stack.moto.client("dynamodb"), wafv2=stack.moto.client("wafv2"), clock=Clock()
    )
    p = payload()
    got = svc.handle(p)
    assert got["ok"] is False and got["retryable"] is True
    fixed = service(stack)
    assert fixed.handle(p)["waf"] == "added"
    assert stack.addresses(4) == ["203.0.113.7/32"]


def test_unblock_removes_from_waf_but_keeps_address_another_block_needs(stack: AwsStack) -> None:
    svc = service(stack, IP_KEY_TYPES="ip,xff")
    svc.handle(payload("203.0.113.7"))
    svc.handle(payload("203.0.113.7", key_type="xff"))
    svc.handle(payload("203.0.113.8"))
    got = svc.handle({"op": "unblock", "key_type": "ip", "key": "203.0.113.7", "reason": "false positive"})
    assert got == {"ok": True, "status": "unblocked", "waf_removed": 0}  # xff block still needs it
    assert stack.addresses(4) == ["203.0.113.7/32", "203.0.113.8/32"]
    got = svc.handle({"op": "unblock", "key_type": "xff", "key": "203.0.113.7"})
    assert got["waf_removed"] == 1
    assert stack.addresses(4) == ["203.0.113.8/32"]
    by_pk = {i["pk"]: i for i in stack.items()}
    assert by_pk["block#ip#203.0.113.7"]["status"] == "unblocked"
    assert by_pk["block#ip#203.0.113.7"]["end_reason"] == "false positive"
    assert by_pk["block#ip#203.0.113.7"]["expires_at"] == NOW
    assert svc.handle({"op": "unblock", "key_type": "ip", "key": "192.0.2.99"})["status"] == "not_found"
    assert svc.handle({"op": "unblock", "key_type": "ip"})["ok"] is False


def test_expire_removes_ended_blocks_from_waf(stack: AwsStack) -> None:
    clock = Clock()
    svc = service(stack, clock)
    svc.handle(payload("203.0.113.7"))  # 600 s
    svc.handle({**payload("2001:db8::/64"), "block_duration_s": 3600})
    svc.handle(payload("carol", key_type="user"))
    clock.t = NOW + 601
    got = svc.handle({"op": "expire"})
    assert got == {"ok": True, "status": "expired", "expired": 2, "waf_removed": 1}
    assert stack.addresses(4) == [] and stack.addresses(6) == ["2001:db8::/64"]
    status = {i["key"]: i["status"] for i in stack.items()}
    assert status == {"203.0.113.7": "expired", "2001:db8::/64": "active", "carol": "expired"}
    clock.t = NOW + 3601
    assert svc.handle({"op": "expire"})["waf_removed"] == 1
    assert stack.addresses(6) == []
    # a new block of an expired key is applied again (fresh idempotency key, offence 2)
    p2 = payload("203.0.113.7", t_offset=10_000)
    assert svc.handle(p2)["status"] == "applied"
    assert stack.addresses(4) == ["203.0.113.7/32"]


def test_settings_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="BLOCKLIST_TABLE"):
        Settings.from_env({})
    with pytest.raises(ValueError, match="not a WAFv2 IP set ARN"):
        Settings.from_env({"BLOCKLIST_TABLE": "t", "WAF_IPV4_SET_ARN": "arn:aws:s3:::bucket"})
    ref = IPSetRef.from_arn("arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/name/abc-123")
    assert ref == IPSetRef("name", "abc-123", "REGIONAL")
