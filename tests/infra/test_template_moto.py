"""The template's resources that moto's CloudFormation supports, created by it on a moto server.

Resource types moto cannot model (CloudFront real-time log config, WAFv2 IP sets, bucket policy,
alarms) are left out and references to them replaced by literal stand-ins; the rest is created from
the real template (as JSON, same intrinsics) and checked through the service APIs.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.cloudformation.parsing import get_model_map

from infra.block_lambda.package import build
from tests.actions.aws import MotoServer
from tests.infra.cfn_yaml import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
UNSUPPORTED = {
    "RealtimeLogConfig",
    "BlockIpSetV4",
    "BlockIpSetV6",
    "SnapshotBucketPolicy",
    "IteratorAgeAlarm",
    "PartialsIteratorAgeAlarm",
    "BlocksPerMinuteAlarm",
    "DeliveryFailureAlarm",
    "DeadLetterAlarm",
    "ParseErrorRateAlarm",
    "RestoreStalledAlarm",
}


def _stub_arn(name: str) -> str:
    return f"arn:aws:stub:us-east-1:123456789012:{name}"


def stub_refs(node: Any, gone: set[str]) -> Any:
    """The fragment with every reference to a resource in ``gone`` replaced by a literal stand-in."""
    if isinstance(node, list):
        return [stub_refs(v, gone) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in gone:
        return f"{node['Ref']}-stub"
    if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in gone:
        return _stub_arn(node["Fn::GetAtt"][0])
    if set(node) == {"Fn::Sub"}:
        text, names = (node["Fn::Sub"], None) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]

        def repl(m: re.Match[str]) -> str:
            ref, _, attr = m.group(1).partition(".")
            if ref not in gone:
                return m.group(0)
            return _stub_arn(ref) if attr else f"{ref}-stub"

        text = re.sub(r"\$\{([^}!]+)\}", repl, text)
        return {"Fn::Sub": text if names is None else [text, stub_refs(names, gone)]}
    return {k: stub_refs(v, gone) for k, v in node.items() if not (k == "DependsOn" and v in gone)}


def supported_subset(template: dict[str, Any], supported: set[str]) -> tuple[dict[str, Any], set[str]]:
    """The template without the resource types moto cannot model; references to them become literals."""
    t = copy.deepcopy(template)
    gone = {n for n, r in t["Resources"].items() if r["Type"] not in supported}
    t["Resources"] = {n: stub_refs(r, gone) for n, r in t["Resources"].items() if n not in gone}
    t["Outputs"] = stub_refs(t.get("Outputs", {}), gone)
    return t, gone


def test_stub_refs_replaces_only_references_to_dropped_resources() -> None:
    t = {
        "Resources": {
            "A": {"Type": "X::Bad"},
            "B": {"Type": "X::Ok", "P": {"Fn::Sub": "${A.Arn}/x/${A}/${C}"}, "DependsOn": "A"},
            "C": {"Type": "X::Ok", "P": [{"Ref": "A"}, {"Fn::GetAtt": ["A", "Arn"]}, {"Ref": "B"}]},
        }
    }
    kept, gone = supported_subset(t, {"X::Ok"})
    assert gone == {"A"}
    assert kept["Resources"]["B"] == {"Type": "X::Ok", "P": {"Fn::Sub": f"{_stub_arn('A')}/x/A-stub/${{C}}"}}
    assert kept["Resources"]["C"]["P"] == ["A-stub", _stub_arn("A"), {"Ref": "B"}]


@pytest.mark.integration
def test_moto_cloudformation_creates_the_supported_resources(moto: MotoServer, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"endpoint_url": moto.url, "region_name": "us-east-1"}
    full = load_template(TEMPLATE)
    template, dropped = supported_subset(full, set(get_model_map()))
    assert dropped == UNSUPPORTED  # what moto cannot model, and nothing more, is left out
    kept = set(template["Resources"])
    assert kept == set(full["Resources"]) - UNSUPPORTED
    assert {
        "TaskRole",
        "RekeyTaskRole",
        "BlockFunctionRole",
        "BlockFunction",
        "TaskDefinition",
        "RekeyTaskDefinition",
        "Service",
        "RekeyService",
        "PartialsStream",
        "Dashboard",
    } <= kept

    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="cfguard", Description="cfguard", VpcId=vpc)["GroupId"]
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="cfguard-artifacts")
    zip_path = tmp_path / "block-lambda.zip"
    build(zip_path)
    s3.upload_fileobj(io.BytesIO(zip_path.read_bytes()), "cfguard-artifacts", "cfguard/block-lambda.zip")

    cf = boto3.client("cloudformation", **kw)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cfguard:1"
    required = {"ContainerImage": image, "Subnets": subnet, "SecurityGroups": sg}
    required["LambdaCodeBucket"] = "cfguard-artifacts"
    cf.create_stack(
        StackName="cfguard",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {**required, "DesiredCount": "2", "RekeyDesiredCount": "3"}.items()
        ],
    )
    stack = cf.describe_stacks(StackName="cfguard")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    summaries = cf.list_stack_resources(StackName="cfguard")["StackResourceSummaries"]
    resources = {r["LogicalResourceId"]: r for r in summaries}
    assert set(resources) == kept

    stream = boto3.client("kinesis", **kw).describe_stream_summary(StreamName="cfguard-realtime-logs")
    # (moto's CloudFormation ignores StreamModeDetails; cfn-lint checks it against the real schema)
    assert stream["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24
    ddb = boto3.client("dynamodb", **kw)
    table = ddb.describe_table(TableName="cfguard-blocklist")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    # (moto's CloudFormation does not apply TimeToLiveSpecification; test_template checks it statically)
    bucket = resources["SnapshotBucket"]["PhysicalResourceId"]
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # (moto's CloudFormation does not apply PublicAccessBlockConfiguration; test_template checks it)
    logs = boto3.client("logs", **kw)
    groups = {g["logGroupName"]: g for g in logs.describe_log_groups(logGroupNamePrefix="/ecs/")["logGroups"]}
    assert groups["/ecs/cfguard"]["retentionInDays"] == 30
    fn = boto3.client("lambda", **kw).get_function_configuration(FunctionName="cfguard-block")
    assert fn["Handler"] == "block_lambda.handler.handler"
    assert fn["Environment"]["Variables"]["BLOCKLIST_TABLE"] == "cfguard-blocklist"
    iam = boto3.client("iam", **kw)
    task_role = resources["TaskRole"]["PhysicalResourceId"]
    assert iam.list_role_policies(RoleName=task_role)["PolicyNames"] == ["consumer"]
    doc = str(iam.get_role_policy(RoleName=task_role, PolicyName="consumer")["PolicyDocument"])
    for sid in ("ReadStream", "KclLeaseTables", "Snapshots", "Block", "DeadLetters", "Config", "Metrics"):
        assert sid in doc
    assert "cfguard-WorkerMetricStats" in doc and "cfguard-block" in doc  # names resolved by the stack
    queue = boto3.client("sqs", **kw).get_queue_url(QueueName="cfguard-dead-letters")["QueueUrl"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    assert outputs["DeadLetterQueueUrl"].endswith("/123456789012/cfguard-dead-letters")
    assert queue.endswith("/123456789012/cfguard-dead-letters")
    assert outputs["BlocklistTableName"] == "cfguard-blocklist"

    # The second stage (default topology two-stage): the partials stream, the rekey service with its
    # own task definition and role, each service at its own desired count.
    kinesis = boto3.client("kinesis", **kw)
    parts = kinesis.describe_stream_summary(StreamName="cfguard-partials")["StreamDescriptionSummary"]
    assert parts["RetentionPeriodHours"] == 24
    assert outputs["PartialsStreamName"] == "cfguard-partials"
    ecs = boto3.client("ecs", **kw)
    arns = ecs.list_services(cluster="cfguard")["serviceArns"]
    services = {
        s["serviceName"]: s for s in ecs.describe_services(cluster="cfguard", services=arns)["services"]
    }
    assert {n: s["desiredCount"] for n, s in services.items()} == {"cfguard": 2, "cfguard-rekey": 3}
    commands = {}
    for name, svc in services.items():
        task = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
        container = task["containerDefinitions"][0]
        commands[name] = container["command"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["CFGUARD__TOPOLOGY__PARTIALS_STREAM"] == "cfguard-partials"
        # (moto's CloudFormation drops TaskRoleArn; test_template_stages checks which role each task runs as)
    assert commands["cfguard"][-2:] == ["--role", "detect"]
    assert commands["cfguard-rekey"][-2:] == ["--role", "rekey"]
    rekey_role = resources["RekeyTaskRole"]["PhysicalResourceId"]
    rekey_doc = str(iam.get_role_policy(RoleName=rekey_role, PolicyName="rekey")["PolicyDocument"])
    assert "stream/cfguard-partials" in rekey_doc and "stream/cfguard-realtime-logs" in rekey_doc
    assert "table/cfguard-rekey" in rekey_doc and "cfguard-block" not in rekey_doc
    assert "stream/cfguard-partials" in doc and "stream/cfguard-realtime-logs" not in doc  # detect

    # Single-stage: no second stage; the one service reads the raw stream.
    cf.create_stack(
        StackName="cfguard-one",
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {**required, "AppName": "one", "Topology": "single-stage"}.items()
        ],
    )
    one = cf.describe_stacks(StackName="cfguard-one")["Stacks"][0]
    assert one["StackStatus"] == "CREATE_COMPLETE", one.get("StackStatusReason")
    summaries = cf.list_stack_resources(StackName="cfguard-one")["StackResourceSummaries"]
    # moto lists one blank summary per resource whose condition is false: the four below
    assert len([r for r in summaries if not r["LogicalResourceId"]]) == 4
    one_resources = {r["LogicalResourceId"]: r for r in summaries if r["LogicalResourceId"]}
    assert set(one_resources) == kept - {
        "PartialsStream",
        "RekeyTaskRole",
        "RekeyTaskDefinition",
        "RekeyService",
    }
    one_doc = str(
        iam.get_role_policy(RoleName=one_resources["TaskRole"]["PhysicalResourceId"], PolicyName="consumer")[
            "PolicyDocument"
        ]
    )
    assert "stream/one-realtime-logs" in one_doc and "partials" not in one_doc
    svc = ecs.describe_services(cluster="one", services=["one"])["services"][0]
    task = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert task["containerDefinitions"][0]["command"][-2:] == ["--role", "single"]
    assert "PartialsStreamName" not in {o["OutputKey"] for o in one.get("Outputs", [])}
