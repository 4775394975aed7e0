"""The Lambda block action with a real boto3 client over HTTP.

Two endpoints: moto's Lambda (function created through the API; without Docker moto does not run
code, it echoes the payload: proves the action's Invoke call, both invocation types and the error
on a missing function against moto's implementation of the API), and ``FakeLambdaEndpoint``, which
runs the real block Lambda handler against moto's DynamoDB/WAFv2 behind scripted faults (proves the
retry policy: throttling, 5xx, FunctionError, timeouts retried with backoff; invalid events not).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from actions.backoff import Backoff
from actions.config import BlockLambdaConfig
from actions.lambda_action import LambdaAction, build_payload, lambda_client
from actions.payload import BlockPayload
from actions.runner import ActionRunner
from infra.block_lambda.handler import BlockService
from infra.block_lambda.settings import Settings
from tests.actions.aws import REGION, AwsStack, FakeLambdaEndpoint, MotoServer
from tests.actions.helpers import FakeWall, cfg, finding

pytestmark = pytest.mark.integration


def a_payload(key: str = "203.0.113.7", **kw: Any) -> dict[str, Any]:
    d = ActionRunner(cfg(), dry_run=True, clock=FakeWall()).submit([finding(key, **kw)])[0]
    return build_payload(d)


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


class Sleeps(list):  # type: ignore[type-arg]
    def __call__(self, s: float) -> None:
        self.append(s)


def action(url: str, **kw: Any) -> tuple[LambdaAction, Sleeps]:
    conf = BlockLambdaConfig(function_name="cfguard-block", region=REGION, endpoint_url=url, **kw)
    sleeps = Sleeps()
    return LambdaAction(
        conf, sleep=sleeps, backoff=Backoff(conf.base_delay_s, conf.max_delay_s, lambda: 1.0)
    ), sleeps


def test_throttling_and_5xx_retried_with_exponential_backoff(
    endpoint: FakeLambdaEndpoint, stack: AwsStack
) -> None:
    endpoint.faults = ["throttle", "error500", "throttle"]
    act, sleeps = action(endpoint.url, base_delay_s=0.1, max_delay_s=0.3)
    out = act.deliver(a_payload())
    assert (out.status, out.attempts) == ("delivered", 4)
    assert out.response["status"] == "applied"
    assert sleeps == pytest.approx([0.1, 0.2, 0.3])  # doubling, capped (jitter fixed at 1.0 here)
    assert endpoint.requests == 4
    assert stack.addresses(4) == ["203.0.113.7/32"]


def test_backoff_jitter_is_full_jitter() -> None:
    b = Backoff(1.0, 8.0, rand=iter([0.0, 0.5, 0.25, 0.999]).__next__)
    assert [b.delay(n) for n in (1, 2, 3, 10)] == pytest.approx([0.0, 1.0, 1.0, 7.992])


def test_function_error_is_a_failure_and_retries_are_bounded(
    endpoint: FakeLambdaEndpoint, stack: AwsStack
) -> None:
    endpoint.faults = ["function_error"] * 3
    act, _ = action(endpoint.url, max_attempts=3)
    out = act.deliver(a_payload())
    assert (out.status, out.attempts) == ("failed", 3)
    assert "FunctionError Unhandled" in out.error and "boom" in out.error
    assert stack.items() == []


def test_timeout_retried_and_block_applied_once(endpoint: FakeLambdaEndpoint, stack: AwsStack) -> None:
    """The first call applies the block but answers too late: the client times out and retries; the
    handler sees the same idempotency key again and does not apply it twice."""
    endpoint.faults = ["slow"]
    endpoint.slow_s = 1.5
    act, _ = action(endpoint.url, read_timeout_s=0.5)
    p = a_payload()
    out = act.deliver(p)
    assert (out.status, out.attempts) == ("delivered", 2)
    assert out.response["status"] == "duplicate"
    assert endpoint.handled[p["idempotency_key"]] == 2
    assert len(stack.items()) == 1 and len(stack.items("idem#")) == 1


def test_invalid_event_rejected_without_retry(endpoint: FakeLambdaEndpoint) -> None:
    act, sleeps = action(endpoint.url)
    out = act.deliver(a_payload("not-an-ip"))
    assert (out.status, out.attempts) == ("rejected", 1)
    assert "not an IP address" in out.error
    assert sleeps == []


def test_connection_refused_is_retried_then_fails() -> None:
    from tests.actions.aws import free_port

    act, sleeps = action(f"http://127.0.0.1:{free_port()}", max_attempts=2)
    out = act.deliver(a_payload())
    assert (out.status, out.attempts) == ("failed", 2)
    assert "EndpointConnectionError" in out.error and len(sleeps) == 1


def test_event_invocation_type(endpoint: FakeLambdaEndpoint, stack: AwsStack) -> None:
    act, _ = action(endpoint.url, invocation_type="Event")
    out = act.deliver(a_payload())
    assert out.status == "delivered" and out.response == {"StatusCode": 202}
    assert endpoint.invocation_types == ["Event"]
    assert len(stack.items()) == 1


def test_botocore_retries_are_off() -> None:
    conf = BlockLambdaConfig(function_name="f", region=REGION, read_timeout_s=3, connect_timeout_s=1)
    c = lambda_client(conf)
    assert c.meta.config.retries["total_max_attempts"] == 1
    assert (c.meta.config.read_timeout, c.meta.config.connect_timeout) == (3, 1)


# --- moto's Lambda ------------------------------------------------------------------------------


@pytest.fixture
def moto_function(moto: MotoServer) -> str:
    iam = moto.client("iam")
    import uuid

    name = f"cfguard-block-{uuid.uuid4().hex[:6]}"
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    moto.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="block_lambda.handler.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )
    return name


def test_invoke_moto_lambda_request_response(moto: MotoServer, moto_function: str) -> None:
    conf = BlockLambdaConfig(function_name=moto_function, region=REGION, endpoint_url=moto.url)
    p = a_payload()
    out = LambdaAction(conf).deliver(p)
    assert out.status == "delivered" and out.attempts == 1
    # moto's simple Lambda echoes the event: what arrived is the payload, valid for the handler's model
    assert out.response == p
    assert BlockPayload.model_validate(out.response).idempotency_key == p["idempotency_key"]


def test_invoke_moto_lambda_event_and_function_result(moto: MotoServer, moto_function: str) -> None:
    conf = BlockLambdaConfig(
        function_name=moto_function, region=REGION, endpoint_url=moto.url, invocation_type="Event"
    )
    assert LambdaAction(conf).deliver(a_payload()).response == {"StatusCode": 202}
    # a queued function result (what the real handler answers for an invalid event) is honoured
    answer = {"ok": False, "status": 400, "error": "invalid event: key: Field required", "retryable": False}
    req = urllib.request.Request(
        moto.url + "/moto-api/static/lambda-simple/response",
        data=json.dumps({"results": [json.dumps(answer)], "region": REGION}).encode(),
    )
    urllib.request.urlopen(req, timeout=5).read()
    conf_rr = BlockLambdaConfig(function_name=moto_function, region=REGION, endpoint_url=moto.url)
    out = LambdaAction(conf_rr).deliver(a_payload())
    assert (out.status, out.error) == ("rejected", "invalid event: key: Field required")


def test_missing_function_is_a_failure_not_retried(endpoint: FakeLambdaEndpoint) -> None:
    # (moto's Lambda without Docker answers for any name, so this runs against the local endpoint)
    conf = BlockLambdaConfig(function_name="no-such-function", region=REGION, endpoint_url=endpoint.url)
    sleeps = Sleeps()
    out = LambdaAction(conf, sleep=sleeps).deliver(a_payload())
    assert out.status == "failed" and out.attempts == 1 and sleeps == []
    assert "ResourceNotFoundException" in out.error
