"""The template's two topologies, evaluated as a stack would see them: each ECS service runs the
stage its command line names, reads the stream and lease tables its config resolves to (the same
``effective_kcl`` the processors use), and its task role may do exactly that and nothing of the other
stage's; both stages scale independently; both streams are encrypted and watched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer.config import Config, load_config
from consumer.kcl.config import KclConfig
from consumer.rekey.factory import effective_kcl, with_role
from tests.infra.cfn_resolve import ACCOUNT, REGION, Stack
from tests.infra.cfn_yaml import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
EXAMPLE = ROOT / "examples" / "cfguard.yaml"
REQUIRED = {
    "ContainerImage": "img:1",
    "Subnets": "subnet-1",
    "SecurityGroups": "sg-1",
    "LambdaCodeBucket": "b",
}
KCL_READ = (
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:DescribeStreamSummary",
)
KCL_LEASE = ("dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
             "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan")  # fmt: skip
LEASE_SUFFIXES = ("", "-WorkerMetricStats", "-CoordinatorState")  # KCL 3 keeps the last two too


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def stack(template: dict[str, Any], **params: str) -> Stack:
    return Stack(template, {**REQUIRED, **params})


def stream_arn(name: str) -> str:
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def table_arn(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def service_config(s: Stack, service: str) -> tuple[str, str, Config, KclConfig]:
    """(task role, stage, config, KCL config) of one ECS service, from its task definition's command
    line and environment applied to the example config, as ``cfguard run`` applies them."""
    task = s.props(service)["TaskDefinition"]
    task_def = next(n for n in s.of_type("AWS::ECS::TaskDefinition") if s.names[n] == task)
    container = s.props(task_def)["ContainerDefinitions"][0]
    cmd = container["Command"]
    stage = cmd[cmd.index("--role") + 1]
    env = {e["Name"]: str(e["Value"]) for e in container["Environment"]}
    cfg = with_role(load_config(EXAMPLE, environ=env), stage)
    return s.role_of(task_def), stage, cfg, effective_kcl(cfg)


def streams(s: Stack) -> dict[str, str]:
    return {s.names[n]: s.arns[n] for n in s.of_type("AWS::Kinesis::Stream")}


@pytest.mark.parametrize("topology", ["two-stage", "single-stage"])
def test_each_service_may_read_exactly_its_stream_and_lease_tables(
    template: dict[str, Any], topology: str
) -> None:
    s = stack(template, Topology=topology, AppName="shop")
    services = sorted(s.of_type("AWS::ECS::Service"))
    stages = {}
    for service in services:
        role, stage, cfg, kcl = service_config(s, service)
        stages[service] = stage
        arn = stream_arn(kcl.stream_name)
        assert arn in streams(s).values(), (
            f"{service} reads {kcl.stream_name}, which the stack does not create"
        )
        for action in KCL_READ:
            assert s.allows(role, action, arn), (service, action)
        for other in set(streams(s).values()) - {arn}:
            assert not s.allows(role, "kinesis:GetRecords", other), (service, other)
        for suffix in LEASE_SUFFIXES:
            for action in KCL_LEASE:
                assert s.allows(role, action, table_arn(kcl.application_name + suffix)), (
                    service,
                    action,
                    suffix,
                )
        assert s.allows(role, "cloudwatch:PutMetricData", "*")
        assert cfg.metrics.namespace == s.params["MetricsNamespace"]
    expected = (
        {"Service": "detect", "RekeyService": "rekey"} if topology == "two-stage" else {"Service": "single"}
    )
    assert stages == expected
    # each stage has its own KCL application: neither may touch the other's lease table
    apps = {svc: service_config(s, svc)[3].application_name for svc in services}
    assert len(set(apps.values())) == len(apps)
    for svc in services:
        role = service_config(s, svc)[0]
        for other, app in apps.items():
            if other != svc:
                assert not s.allows(role, "dynamodb:PutItem", table_arn(app)), (svc, app)


def test_rekey_writes_partials_and_nothing_else(template: dict[str, Any]) -> None:
    s = stack(template)
    role, stage, cfg, kcl = service_config(s, "RekeyService")
    assert stage == "rekey"
    assert kcl.stream_name == s.names["LogStream"] == "cfguard-realtime-logs"
    assert kcl.application_name == "cfguard-rekey"
    assert kcl.snapshots.store == "none"  # no state between batches: no bucket access needed
    partials = stream_arn(cfg.topology.partials_stream)
    assert partials == s.arns["PartialsStream"]
    # the Republisher asks the shard count (write pacing), then PutRecords; the stream view lists
    # the raw stream's open shards (named in progress records) and the partials stream's (one
    # progress record per partials shard)
    assert s.allows(role, "kinesis:PutRecords", partials)
    assert s.allows(role, "kinesis:DescribeStreamSummary", partials)
    assert s.allows(role, "kinesis:ListShards", partials)
    assert s.allows(role, "kinesis:ListShards", s.arns["LogStream"])
    assert not s.allows(role, "kinesis:GetRecords", partials)
    assert s.allows(role, "kms:GenerateDataKey", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/abc")
    assert not s.allows(role, "kinesis:PutRecords", s.arns["LogStream"])
    actions = {
        a
        for p in s.props(role)["Policies"]
        for st in p["PolicyDocument"]["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert not {a for a in actions if a.split(":")[0] in ("lambda", "s3", "sqs", "wafv2")}
    assert s.allows(role, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cfguard/config")


@pytest.mark.parametrize("topology", ["two-stage", "single-stage"])
def test_the_judging_service_acts_and_keeps_state_but_writes_no_stream(
    template: dict[str, Any], topology: str
) -> None:
    s = stack(template, Topology=topology)
    role, _stage, cfg, kcl = service_config(s, "Service")
    assert kcl.application_name == "cfguard"
    expected_stream = "cfguard-partials" if topology == "two-stage" else "cfguard-realtime-logs"
    assert kcl.stream_name == expected_stream
    assert cfg.actions.block.function_name == s.names["BlockFunction"]
    assert s.allows(role, "lambda:InvokeFunction", s.arns["BlockFunction"])
    assert (kcl.snapshots.store, kcl.snapshots.bucket) == ("s3", s.names["SnapshotBucket"])
    snapshot = f"{s.arns['SnapshotBucket']}/{kcl.snapshots.prefix}shardId-0.snap"
    for action in ("s3:GetObject", "s3:PutObject"):
        assert s.allows(role, action, snapshot)
    assert cfg.actions.spool.dead_letter_queue_url == s.names["DeadLetterQueue"]
    assert s.allows(role, "sqs:SendMessage", s.arns["DeadLetterQueue"])
    for arn in streams(s).values():
        assert not s.allows(role, "kinesis:PutRecords", arn)
        assert not s.allows(role, "kinesis:PutRecord", arn)


def test_single_stage_creates_no_second_stage(template: dict[str, Any]) -> None:
    two, one = stack(template), stack(template, Topology="single-stage")
    assert set(two.resources) - set(one.resources) == {
        "PartialsStream",
        "RekeyTaskRole",
        "RekeyTaskDefinition",
        "RekeyService",
        "PartialsIteratorAgeAlarm",
    }
    assert set(one.resources) <= set(two.resources)
    assert "PartialsStreamName" in template["Outputs"] and template["Outputs"]["PartialsStreamName"][
        "Condition"
    ] == ("TwoStage")


def test_stages_scale_independently(template: dict[str, Any]) -> None:
    s = stack(template, DesiredCount="3", RekeyDesiredCount="5", RekeyTaskCpu="2048", RekeyTaskMemory="4096")
    assert s.props("Service")["DesiredCount"] == "3"
    assert s.props("RekeyService")["DesiredCount"] == "5"
    assert (s.props("RekeyTaskDefinition")["Cpu"], s.props("RekeyTaskDefinition")["Memory"]) == (
        "2048",
        "4096",
    )
    assert (s.props("TaskDefinition")["Cpu"], s.props("TaskDefinition")["Memory"]) == ("1024", "2048")
    for svc in ("Service", "RekeyService"):
        dc = s.props(svc)["DeploymentConfiguration"]
        assert (dc["MinimumHealthyPercent"], dc["MaximumPercent"]) == (0, 100)  # one worker per lease


@pytest.mark.parametrize("mode", ["ON_DEMAND", "PROVISIONED"])
def test_partials_stream_is_encrypted_and_sized_like_the_raw_stream(
    template: dict[str, Any], mode: str
) -> None:
    s = stack(template, StreamMode=mode, ShardCount="8", PartialsShardCount="3")
    raw, parts = s.props("LogStream"), s.props("PartialsStream")
    assert (
        parts["StreamEncryption"]
        == raw["StreamEncryption"]
        == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    )
    assert parts["RetentionPeriodHours"] == raw["RetentionPeriodHours"]
    assert parts["StreamModeDetails"] == raw["StreamModeDetails"] == {"StreamMode": mode}
    if mode == "PROVISIONED":
        assert (raw["ShardCount"], parts["ShardCount"]) == ("8", "3")
    else:
        assert "ShardCount" not in raw and "ShardCount" not in parts


@pytest.mark.parametrize("topology", ["two-stage", "single-stage"])
def test_iterator_age_alarm_on_every_stream(template: dict[str, Any], topology: str) -> None:
    s = stack(template, Topology=topology)
    watched = {
        s.props(a)["Dimensions"][0]["Value"]
        for a in s.of_type("AWS::CloudWatch::Alarm")
        if s.props(a).get("MetricName") == "GetRecords.IteratorAgeMilliseconds"
    }
    assert watched == set(streams(s))
    body = s.props("Dashboard")["DashboardBody"]
    import json

    widget = json.loads(body)["widgets"][0]["properties"]
    assert {m[3] for m in widget["metrics"]} == set(streams(s))
