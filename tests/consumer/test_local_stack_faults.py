"""The fault layer against a real local stack (moto + Hypercorn) with real boto3 clients: each injected
error must reach boto3 as the AWS error it names (code, status, modelled exception class), for exactly
the calls the rule says, and the stack must serve normally around it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from consumer.local_stack import FAKE_CREDENTIALS, LocalStackProcess, StackInfo, StackSpec
from consumer.local_stack_faults import CONTROL_PATH, Faults, Request, error_response

pytestmark = pytest.mark.integration
SPEC = StackSpec(
    stream_name="faults-unit",
    blocklist_table="faults-unit-blocklist",
    snapshot_bucket="faults-unit-state",
    lambda_name="faults-unit-block",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    log = Path(tmp_path_factory.mktemp("faults")) / "stack.log"
    with LocalStackProcess(SPEC, log_path=log) as info:
        yield info


@pytest.fixture
def faults(stack: StackInfo) -> Iterator[Faults]:
    f = Faults(stack.endpoint)
    f.clear()
    yield f
    f.clear()


def client(stack: StackInfo, service: str, attempts: int = 1):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        endpoint_url=stack.endpoint,
        region_name=stack.spec.region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, connect_timeout=2),
    )


def shard_iterator(kinesis, stream: str) -> str:  # type: ignore[no-untyped-def]
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    return kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]


def test_kinesis_throttling_for_the_next_n_calls(stack: StackInfo, faults: Faults) -> None:
    k = client(stack, "kinesis")
    it = shard_iterator(k, SPEC.stream_name)
    rid = faults.add(
        service="kinesis", operation="GetRecords", error="ProvisionedThroughputExceededException", count=2
    )
    k.put_record(StreamName=SPEC.stream_name, Data=b"x", PartitionKey="p")  # another operation: untouched
    for _ in range(2):
        with pytest.raises(k.exceptions.ProvisionedThroughputExceededException) as exc:
            k.get_records(ShardIterator=it)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert k.get_records(ShardIterator=it)["Records"]  # the third call reaches moto
    state = faults.state()
    assert faults.rule(rid)["injected"] == 2 and faults.rule(rid)["remaining"] == 0
    assert not faults.rule(rid)["active"]
    assert state["injected"]["kinesis.GetRecords.ProvisionedThroughputExceededException"] >= 2
    assert state["seen"]["kinesis.PutRecord"] >= 1


def test_botocore_retries_an_injected_throttle_as_a_throttle(stack: StackInfo, faults: Faults) -> None:
    k = client(stack, "kinesis", attempts=3)
    it = shard_iterator(k, SPEC.stream_name)
    rid = faults.add(
        service="kinesis", operation="GetRecords", error="ProvisionedThroughputExceededException", count=2
    )
    resp = k.get_records(ShardIterator=it)
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    assert faults.injected(rid) == 2


def test_kinesis_expired_iterator(stack: StackInfo, faults: Faults) -> None:
    k = client(stack, "kinesis")
    it = shard_iterator(k, SPEC.stream_name)
    faults.add(service="kinesis", operation="GetRecords", error="ExpiredIteratorException", count=1)
    with pytest.raises(k.exceptions.ExpiredIteratorException):
        k.get_records(ShardIterator=it)
    k.get_records(ShardIterator=it)


def test_dynamodb_throttling_only_for_matching_bodies(stack: StackInfo, faults: Faults) -> None:
    d = client(stack, "dynamodb")
    table = SPEC.blocklist_table
    rid = faults.add(
        service="dynamodb", operation="UpdateItem", error="ThrottlingException", body_contains="checkpoint"
    )
    pte = faults.add(
        service="dynamodb", operation="GetItem", error="ProvisionedThroughputExceededException", count=1
    )
    upd = {"TableName": table, "Key": {"pk": {"S": "lease-1"}}}
    d.update_item(
        **upd, UpdateExpression="SET leaseCounter = :c", ExpressionAttributeValues={":c": {"N": "1"}}
    )
    with pytest.raises(ClientError) as exc:
        d.update_item(
            **upd, UpdateExpression="SET checkpoint = :c", ExpressionAttributeValues={":c": {"S": "7"}}
        )
    assert exc.value.response["Error"]["Code"] == "ThrottlingException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(d.exceptions.ProvisionedThroughputExceededException):
        d.get_item(TableName=table, Key={"pk": {"S": "lease-1"}})
    item = d.get_item(TableName=table, Key={"pk": {"S": "lease-1"}})["Item"]
    assert item == {"pk": {"S": "lease-1"}, "leaseCounter": {"N": "1"}}  # the throttled write never landed
    assert faults.injected(rid) == 1 and faults.injected(pte) == 1


def test_lambda_too_many_requests(stack: StackInfo, faults: Faults) -> None:
    lam = client(stack, "lambda")
    rid = faults.add(service="lambda", operation="Invoke", error="TooManyRequestsException", count=1)
    event = json.dumps({"op": "noop"}).encode()
    with pytest.raises(lam.exceptions.TooManyRequestsException) as exc:
        lam.invoke(FunctionName=SPEC.lambda_name, Payload=event)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    ok = lam.invoke(FunctionName=SPEC.lambda_name, Payload=event)  # the real handler answers again
    assert ok["StatusCode"] == 200
    assert faults.injected(rid) == 1


def test_s3_slowdown_and_access_denied(stack: StackInfo, faults: Faults) -> None:
    s3 = client(stack, "s3")
    bucket = SPEC.snapshot_bucket
    s3.put_object(Bucket=bucket, Key="app-a/snap", Body=b"1")
    s3.put_object(Bucket=bucket, Key="app-b/snap", Body=b"2")
    slow = faults.add(service="s3", operation="GetObject", error="SlowDown", path_contains="/app-a/")
    denied = faults.add(service="s3", operation="PutObject", error="AccessDenied", count=1)
    listed = faults.add(service="s3", operation="ListObjectsV2", error="InternalError", count=1)
    assert (faults.injected(slow), faults.injected(denied), faults.injected(listed)) == (0, 0, 0)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="app-a/snap")
    assert exc.value.response["Error"]["Code"] == "SlowDown"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert s3.get_object(Bucket=bucket, Key="app-b/snap")["Body"].read() == b"2"  # other prefix
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="app-a/snap", Body=b"3")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, Prefix="app-a/")
    assert exc.value.response["Error"]["Code"] == "InternalError"
    assert (faults.injected(slow), faults.injected(denied), faults.injected(listed)) == (1, 1, 1)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="app-a/")["Contents"]] == [
        "app-a/snap"
    ]
    faults.clear()
    assert s3.get_object(Bucket=bucket, Key="app-a/snap")["Body"].read() == b"1"  # the denied put didn't land
    assert faults.state()["rules"] == []  # cleared


def test_rule_for_seconds_and_every_kth_call(stack: StackInfo, faults: Faults) -> None:
    d = client(stack, "dynamodb")
    timed = faults.add(
        service="dynamodb", operation="DescribeTable", error="ThrottlingException", seconds=0.6
    )
    with pytest.raises(ClientError):
        d.describe_table(TableName=SPEC.blocklist_table)
    time.sleep(0.7)
    d.describe_table(TableName=SPEC.blocklist_table)
    assert faults.injected(timed) == 1 and not faults.rule(timed)["active"]
    half = faults.add(service="dynamodb", operation="DescribeTable", error="ThrottlingException", every=2)
    outcomes = []
    for _ in range(6):
        try:
            d.describe_table(TableName=SPEC.blocklist_table)
            outcomes.append("ok")
        except ClientError:
            outcomes.append("throttled")
    assert outcomes == ["throttled", "ok"] * 3
    assert faults.injected(half) == 3


def test_outage_503_every_service_then_recovery(stack: StackInfo, faults: Faults) -> None:
    k, d, s3 = client(stack, "kinesis"), client(stack, "dynamodb"), client(stack, "s3")
    rid = faults.outage(1.0)
    calls = [
        lambda: k.describe_stream_summary(StreamName=SPEC.stream_name),
        lambda: d.describe_table(TableName=SPEC.blocklist_table),
        lambda: s3.head_bucket(Bucket=SPEC.snapshot_bucket),
        lambda: s3.list_objects_v2(Bucket=SPEC.snapshot_bucket),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert faults.rule(rid)["injected"] == 4
    time.sleep(1.1)
    for call in calls:
        call()


def test_outage_down_refuses_connections_then_serves_the_same_state(stack: StackInfo, faults: Faults) -> None:
    s3 = client(stack, "s3")
    s3.put_object(Bucket=SPEC.snapshot_bucket, Key="kept", Body=b"state")
    before = faults.state()["restarts"]
    faults.outage(2.0, kind="down")
    time.sleep(0.6)  # the answer went out; the listener closes ~0.2 s after it
    with pytest.raises(EndpointConnectionError):
        s3.get_object(Bucket=SPEC.snapshot_bucket, Key="kept")
    deadline = time.monotonic() + 15
    while True:
        try:
            body = s3.get_object(Bucket=SPEC.snapshot_bucket, Key="kept")["Body"].read()
            break
        except EndpointConnectionError:
            assert time.monotonic() < deadline, "the listener did not come back"
            time.sleep(0.2)
    assert body == b"state"  # moto's backends lived on in the process
    assert faults.state()["restarts"] == before + 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"service": "kinesis"}, "error is required"),
        ({"error": "ThrottlingException"}, "service is required"),
        ({"service": "kinesis", "error": "MadeUpError"}, "give its HTTP status"),
        ({"service": "kinesis", "error": "ThrottlingException", "count": 0}, "count must be"),
        ({"service": "kinesis", "error": "ThrottlingException", "colour": 1}, "unknown rule field"),
        ({"outage": "503"}, "needs seconds"),
        ({"outage": "reset", "seconds": 1}, 'outage is "503" or "down"'),
    ],
)
def test_bad_rules_are_refused_with_the_reason(
    stack: StackInfo, faults: Faults, rule: dict, message: str
) -> None:
    req = urllib.request.Request(stack.endpoint + CONTROL_PATH, data=json.dumps(rule).encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400
    assert message in json.loads(exc.value.read())["error"]
    assert faults.state()["rules"] == []


def test_request_naming_and_error_bodies() -> None:
    def env(method: str, path: str, query: str = "", **headers: str) -> dict:
        e = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
        e.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
        return e

    auth = "AWS4-HMAC-SHA256 Credential=AKID/20261126/us-east-1/{}/aws4_request, SignedHeaders=host"
    r = Request(env("POST", "/", X_AMZ_TARGET="Kinesis_20131202.GetRecords"))
    assert (r.service, r.operation) == ("kinesis", "GetRecords")
    r = Request(
        env("POST", "/", X_AMZ_TARGET="DynamoDB_20120810.UpdateItem", AUTHORIZATION=auth.format("dynamodb"))
    )
    assert (r.service, r.operation) == ("dynamodb", "UpdateItem")
    r = Request(env("POST", "/2015-03-31/functions/f/invocations", AUTHORIZATION=auth.format("lambda")))
    assert (r.service, r.operation) == ("lambda", "Invoke")
    s3 = auth.format("s3")
    assert Request(env("GET", "/b", "list-type=2&prefix=x", AUTHORIZATION=s3)).operation == "ListObjectsV2"
    assert Request(env("GET", "/b/k/1", AUTHORIZATION=s3)).operation == "GetObject"
    assert Request(env("PUT", "/b/k", AUTHORIZATION=s3)).operation == "PutObject"
    assert Request(env("HEAD", "/b", AUTHORIZATION=s3)).operation == "HeadBucket"
    assert Request(env("POST", "/b", "delete", AUTHORIZATION=s3)).operation == "DeleteObjects"

    status, headers, body = error_response("dynamodb", "ThrottlingException", 400, "m")
    assert status == "400 Bad Request"
    assert json.loads(body)["__type"] == "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    assert ("Content-Type", "application/x-amz-json-1.0") in headers
    status, headers, body = error_response("lambda", "TooManyRequestsException", 429, "m")
    assert status == "429 Too Many Requests" and ("x-amzn-ErrorType", "TooManyRequestsException") in headers
    status, headers, body = error_response("s3", "SlowDown", 503, "m")
    assert b"<Code>SlowDown</Code>" in body and status == "503 Service Unavailable"
