"""The local stack: h2c and HTTP/1.1 on one port, the resources, the block Lambda's Invoke path."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from actions.config import BlockLambdaConfig
from actions.decision import Decision
from actions.lambda_action import LambdaAction, build_payload
from consumer.local_stack import StackInfo, boto_client

pytestmark = pytest.mark.integration


def test_http2_prior_knowledge_and_http11(local_stack: StackInfo) -> None:
    for flag in ("--http2-prior-knowledge", "--http1.1"):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", flag,
             local_stack.endpoint + "/moto-api/"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        assert out == ("2 200" if "http2" in flag else "1.1 200")


def test_resources_exist(local_stack: StackInfo) -> None:
    s = local_stack.spec
    k = boto_client("kinesis", local_stack.endpoint, s.region)
    summary = k.describe_stream_summary(StreamName=s.stream_name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE" and summary["OpenShardCount"] == s.shards
    ddb = boto_client("dynamodb", local_stack.endpoint, s.region)
    table = ddb.describe_table(TableName=s.blocklist_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    boto_client("s3", local_stack.endpoint, s.region).head_bucket(Bucket=s.snapshot_bucket)
    fn = boto_client("lambda", local_stack.endpoint, s.region).get_function(FunctionName=s.lambda_name)
    assert fn["Configuration"]["Environment"]["Variables"]["BLOCKLIST_TABLE"] == s.blocklist_table
    assert local_stack.lambda_registered


def test_block_action_reaches_the_real_handler(local_stack: StackInfo) -> None:
    s = local_stack.spec
    action = LambdaAction(
        BlockLambdaConfig(function_name=s.lambda_name, region=s.region, endpoint_url=local_stack.endpoint)
    )
    now = time.time()
    d = Decision(
        key="203.0.113.7", key_type="ip", detector="rate", score=3.0, threshold=100.0, window="1m",
        window_s=60, event_time=now - 5, evidence={"requests": 300}, action="block", reason="over",
        idempotency_key="0123456789abcdef0123", decided_at=now, block_duration_s=600, offence=1,
    )  # fmt: skip
    first = action.deliver(build_payload(d))
    again = action.deliver(build_payload(d))
    assert first.response["status"] == "applied", first
    assert again.response["status"] == "duplicate", again  # idempotent on the key
    items = boto_client("dynamodb", local_stack.endpoint, s.region).scan(TableName=s.blocklist_table)["Items"]
    blocks = [i for i in items if i["pk"]["S"].startswith("block#")]
    assert any("203.0.113.7" in i["pk"]["S"] for i in blocks)
    with urllib.request.urlopen(local_stack.endpoint + "/_cfguard/invocations", timeout=5) as r:
        log = json.loads(r.read())
    mine = [x for x in log if x["idempotency_key"] == "0123456789abcdef0123"]
    assert [x["status"] for x in mine] == ["applied", "duplicate"]


def test_write_config_points_at_the_stack(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import sys

    from consumer.config import load_config
    from consumer.local_stack import free_port
    from tests.kcl.harness import REPO

    port, cfg = free_port(), tmp_path / "local.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "local-stack", "--port", str(port), "--json",
         "--write-config", str(cfg), "--stream", "other-stream"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        c = load_config(cfg)
        assert c.kcl.kinesis_endpoint == info["endpoint"] == f"http://127.0.0.1:{port}"
        assert c.kcl.stream_name == "other-stream" and not c.kcl.cbor_enabled
        assert c.actions.block.endpoint_url == info["endpoint"] and not c.actions.dry_run
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
