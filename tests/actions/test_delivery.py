"""The live action runner end to end: guard -> bounded queue -> worker -> Lambda (the real handler
behind the fault-injecting endpoint, writing to moto's DynamoDB/WAFv2) -> spool -> SQS dead letters.

The invariant checked after every scenario: each block decision is counted once as delivered or
spooled, and the blocklist ends with exactly one item per decided block: none lost, none doubled.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.runner import ActionRunner
from infra.block_lambda.handler import BlockService
from infra.block_lambda.settings import Settings
from tests.actions.aws import REGION, AwsStack, FakeLambdaEndpoint, MotoServer
from tests.actions.helpers import T0, cfg, finding

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(moto: MotoServer) -> AwsStack:
    return AwsStack(moto)


@pytest.fixture
def endpoint(stack: AwsStack) -> Iterator[FakeLambdaEndpoint]:
    svc = BlockService(
        Settings.from_env(stack.env()),
        dynamodb=stack.moto.client("dynamodb"),
        wafv2=stack.moto.client("wafv2"),
    )
    ep = FakeLambdaEndpoint(svc.handle)
    yield ep
    ep.close()


def live(
    endpoint: FakeLambdaEndpoint, tmp_path: Path, *, moto: MotoServer | None = None, **over: Any
) -> ActionRunner:
    block = {
        "function_name": "cfguard-block",
        "region": REGION,
        "endpoint_url": endpoint.url,
        "max_attempts": 2,
        "base_delay_s": 0.01,
        "max_delay_s": 0.02,
        "read_timeout_s": 2,
        **over.pop("block", {}),
    }
    spool = {"path": str(tmp_path / "spool.jsonl"), "retry_interval_s": 0.1, **over.pop("spool", {})}
    if moto is not None and "dead_letter_queue_url" in spool:
        spool.update(sqs_region=REGION, sqs_endpoint_url=moto.url)
    alert = {"path": str(tmp_path / "alerts.jsonl"), **over.pop("alert", {})}
    c = cfg(dry_run=False, block=block, spool=spool, alert=alert, **over)
    return ActionRunner(c, sleep=lambda s: None)


def blocks(n: int, t: float = T0) -> list[Any]:
    return [finding(f"198.51.100.{i}", t=t + i) for i in range(n)]


def wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def assert_exactly_once(stack: AwsStack, decided: list[Any]) -> None:
    items = stack.items()
    assert sorted(i["idempotency_key"] for i in items) == sorted(d.idempotency_key for d in decided)
    assert len(stack.items("idem#")) == len(decided)


def test_happy_path_delivers_every_block(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    r = live(endpoint, tmp_path)
    decided = r.submit(blocks(5))
    r.flush()
    st = r.stats()
    assert st["delivery.delivered"] == 5 and st.get("delivery.spooled", 0) == 0 and st["spool.pending"] == 0
    assert_exactly_once(stack, decided)
    assert stack.addresses(4) == sorted(f"198.51.100.{i}/32" for i in range(5))
    r.close()


def test_outage_spools_then_recovery_drains_exactly_once(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    endpoint.down = True
    r = live(endpoint, tmp_path, spool={"retry_interval_s": 0.2})
    decided = r.submit(blocks(8))
    r.flush()
    st = r.stats()
    assert st["delivery.spooled.retries_exhausted"] == 8 and st.get("delivery.delivered", 0) == 0
    assert st["spool.pending"] == 8
    # the spool is durable JSONL holding the full payloads
    lines = [json.loads(x) for x in (tmp_path / "spool.jsonl").read_text().splitlines()]
    assert {e["idempotency_key"] for e in lines} == {d.idempotency_key for d in decided}
    assert all(e["payload"]["key"].startswith("198.51.100.") for e in lines)
    assert stack.items() == []
    # spool drains keep failing during the outage, one attempt per round, stopping at the first failure
    wait_for(lambda: endpoint.requests >= 8 * 2 + 2)
    assert r.stats()["spool.pending"] == 8
    endpoint.down = False
    wait_for(lambda: r.stats()["spool.pending"] == 0)
    st = r.stats()
    assert st["delivery.spool.redelivered"] == 8
    assert_exactly_once(stack, decided)
    r.close()


def test_throttled_deliveries_retry_in_background(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    endpoint.faults = ["throttle", "error500", "function_error", "throttle"]
    r = live(endpoint, tmp_path, block={"max_attempts": 5})
    decided = r.submit(blocks(3))
    r.flush()
    st = r.stats()
    assert st["delivery.delivered"] == 3 and st["delivery.retries"] == 4
    assert_exactly_once(stack, decided)
    r.close()


def test_submit_never_waits_queue_full_goes_to_spool(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    """The endpoint holds every request: submit still returns at once; beyond the queue's 2 places
    decisions are spooled; once released, everything ends delivered exactly once."""
    endpoint.hold = threading.Event()
    r = live(endpoint, tmp_path, block={"queue_size": 2})
    decided = []
    for i in range(10):
        decided += r.submit([finding(f"198.51.100.{i}", t=T0 + i)])
    assert endpoint.hold.is_set() is False  # all submitted while the endpoint was still holding
    st = r.stats()
    assert st["delivery.spooled.queue_full"] >= 7  # 1 in flight + 2 queued at most
    assert st["delivery.enqueued"] + st["delivery.spooled.queue_full"] == 10
    endpoint.hold.set()
    r.flush()
    wait_for(lambda: r.stats()["spool.pending"] == 0)
    st = r.stats()
    assert st["delivery.delivered"] + st["delivery.spooled"] == 10
    assert st["delivery.delivered"] + st["delivery.spool.redelivered"] == 10
    assert_exactly_once(stack, decided)
    r.close()


def test_flush_timeout_spools_what_is_pending_and_nothing_is_doubled(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    endpoint.hold = threading.Event()
    r = live(endpoint, tmp_path, block={"flush_timeout_s": 0.2}, spool={"retry_interval_s": 0.1})
    decided = r.submit(blocks(4))
    r.flush()  # held: returns after 0.2 s with everything durable in the spool
    st = r.stats()
    assert st["delivery.spooled.flush_timeout"] == 4 and st["spool.pending"] == 4
    endpoint.hold.set()
    wait_for(lambda: r.stats()["spool.pending"] == 0)
    assert r.stats()["delivery.spool.redelivered"] == 4
    assert_exactly_once(stack, decided)
    r.close()


def test_spool_left_by_a_previous_run_is_drained_on_start(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    endpoint.down = True
    r1 = live(endpoint, tmp_path)
    decided = r1.submit(blocks(3))
    r1.close()
    assert stack.items() == []
    endpoint.down = False
    r2 = live(endpoint, tmp_path)
    wait_for(lambda: r2.stats()["spool.pending"] == 0)
    assert r2.stats()["delivery.spool.redelivered"] == 3
    assert_exactly_once(stack, decided)
    r2.close()


def test_rejected_and_exhausted_entries_go_to_sqs_dead_letter_queue(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, moto: MotoServer, tmp_path: Path
) -> None:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"cfguard-dlq-{stack.suffix}")["QueueUrl"]
    r = live(
        endpoint,
        tmp_path,
        moto=moto,
        spool={"dead_letter_queue_url": url, "max_attempts": 2, "retry_interval_s": 0.1},
    )
    bad = r.submit([finding("not-an-ip", t=T0)])  # the handler rejects it: an IP key type, not an IP
    wait_for(lambda: r.stats().get("delivery.spool.dead_lettered", 0) == 1)
    endpoint.down = True
    down = r.submit([finding("198.51.100.1", t=T0 + 1)])
    wait_for(lambda: r.stats().get("delivery.spool.dead_lettered", 0) == 2)
    st = r.stats()
    assert st["delivery.rejected"] == 1 and st["spool.pending"] == 0
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    got = {m["MessageAttributes"]["idempotency_key"]["StringValue"]: json.loads(m["Body"]) for m in msgs}
    assert set(got) == {bad[0].idempotency_key, down[0].idempotency_key}
    assert got[bad[0].idempotency_key]["reason"] == "rejected"
    assert "not an IP address" in got[bad[0].idempotency_key]["last_error"]
    assert got[down[0].idempotency_key]["attempts"] == 2
    assert got[down[0].idempotency_key]["payload"]["key"] == "198.51.100.1"
    r.close()


def test_dead_letter_queue_unreachable_keeps_entry_spooled(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, moto: MotoServer, tmp_path: Path
) -> None:
    r = live(
        endpoint,
        tmp_path,
        moto=moto,
        spool={"dead_letter_queue_url": f"{moto.url}/123456789012/no-such-queue"},
    )
    r.submit([finding("not-an-ip", t=T0)])
    wait_for(lambda: r.stats().get("delivery.rejected", 0) == 1)
    r.flush()
    assert r.stats()["spool.pending"] == 1
    r.close()


def test_dry_run_invokes_nothing_and_writes_nothing(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    c = cfg(
        dry_run=False,
        block={"function_name": "cfguard-block", "region": REGION, "endpoint_url": endpoint.url},
        spool={"path": str(tmp_path / "spool.jsonl")},
        alert={"path": str(tmp_path / "alerts.jsonl")},
    )
    r = ActionRunner(c, dry_run=True)
    got = r.submit(blocks(3))
    r.flush()
    r.close()
    assert [d.action for d in got] == ["block"] * 3 and all(d.dry_run for d in got)
    assert endpoint.requests == 0
    assert not (tmp_path / "alerts.jsonl").exists() and not (tmp_path / "spool.jsonl").exists()


def test_alert_lines_pseudonymised_but_payload_clear(
    endpoint: FakeLambdaEndpoint,
    stack: AwsStack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CFGUARD_PSEUDONYM_KEY", "s3cret-s3cret-s3cret")
    caplog.set_level("DEBUG", logger="actions")
    r = live(
        endpoint,
        tmp_path,
        alert={"pseudonymise": True},
        guard={"cooldown_s": 0, "escalation": {"first_s": 1}},
    )
    got = r.submit(
        [
            finding("198.51.100.77", t=T0),
            finding("198.51.100.77", t=T0 + 5),  # repeat offence: logged
            finding("mallory", key_type="user", mode="alert", t=T0),
            finding("shadowed", key_type="user", mode="shadow", t=T0),
        ]
    )
    r.close()
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [x["what"]["action"] for x in lines] == ["block", "block", "alert"]
    text = (tmp_path / "alerts.jsonl").read_text()
    assert "198.51.100.77" not in text and "mallory" not in text
    who = lines[0]["who"]
    assert who["pseudonymised"] is True and who["key"] == r.pseudo.pseudonym("198.51.100.77")
    assert who["key"].startswith("hmac:") and lines[1]["who"]["key"] == who["key"]
    assert lines[0]["when"]["event_time"] == "2023-11-14T22:13:20.000Z"
    assert lines[0]["where"]["detector"] == "rps"
    assert lines[0]["evidence"] == {"requests": 250, "status_4xx": 3}
    assert lines[0]["idempotency_key"] == got[0].idempotency_key
    assert "198.51.100.77" not in caplog.text and "mallory" not in caplog.text
    assert f"repeat block of ip {who['key']}" in caplog.text  # logs use the pseudonym
    assert stack.items()[0]["key"] == "198.51.100.77"  # the block payload carries the key in clear


def test_alerts_in_clear_on_stderr_by_default(endpoint: FakeLambdaEndpoint, tmp_path: Path) -> None:
    stream = io.StringIO()
    c = cfg(
        dry_run=False,
        block={"function_name": "cfguard-block", "region": REGION, "endpoint_url": endpoint.url},
        spool={"path": str(tmp_path / "spool.jsonl")},
    )
    r = ActionRunner(c, alert_stream=stream)
    r.submit([finding("alice", key_type="user", mode="alert")])
    r.close()
    line = json.loads(stream.getvalue())
    assert line["who"] == {"key_type": "user", "key": "alice", "pseudonymised": False}
    assert line["what"]["reason"] == "alert_mode"


def test_pseudonymise_without_secret_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CFGUARD_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ValueError, match="CFGUARD_PSEUDONYM_KEY"):
        ActionRunner(cfg(alert={"pseudonymise": True}), dry_run=True)


def test_without_dead_letter_queue_failed_entries_are_never_given_up(
    endpoint: FakeLambdaEndpoint, stack: AwsStack, tmp_path: Path
) -> None:
    endpoint.down = True
    r = live(endpoint, tmp_path, spool={"max_attempts": 1, "retry_interval_s": 0.05})
    decided = r.submit(blocks(2))
    r.flush()
    wait_for(lambda: endpoint.requests >= 2 * 2 + 4)  # several drain rounds beyond max_attempts
    entries = {e["idempotency_key"]: e for e in r.delivery.spool.entries()}
    assert len(entries) == 2 and max(e["attempts"] for e in entries.values()) >= 2
    endpoint.down = False
    wait_for(lambda: r.stats()["spool.pending"] == 0)
    assert_exactly_once(stack, decided)
    r.close()
