"""infra/template.yaml: cfn-lint clean, least-privilege IAM, safe storage, a config the consumer accepts."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode.cfn_yaml import loads as cfn_loads

from consumer.config import config_from_data
from consumer.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
IMAGE_CONFIG = REPO / "infra" / "cfguard.yaml"

# Actions AWS defines without a resource type: the only ones allowed on Resource "*", and only with a
# Condition narrowing them.
RESOURCELESS = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return cfn_loads(TEMPLATE.read_text(), str(TEMPLATE))


def resources(tpl: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in tpl["Resources"].items() if r["Type"] == rtype}


def as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def statements(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a policy document, both branches of an ``Fn::If`` included."""
    for st in as_list(doc["Statement"]):
        if isinstance(st, dict) and "Fn::If" in st:
            for branch in st["Fn::If"][1:]:
                if isinstance(branch, dict) and branch != {"Ref": "AWS::NoValue"}:
                    yield branch
        else:
            yield st


def all_policy_statements(tpl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, r in tpl["Resources"].items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            for pol in props.get("Policies", []):
                for st in statements(pol["PolicyDocument"]):
                    yield f"{name}/{pol['PolicyName']}", st
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy"):
            for st in statements(props["PolicyDocument"]):
                yield name, st


def role_actions(tpl: dict[str, Any], role: str) -> set[str]:
    out: set[str] = set()
    for pol in tpl["Resources"][role]["Properties"]["Policies"]:
        for st in statements(pol["PolicyDocument"]):
            if st["Effect"] == "Allow":
                out.update(as_list(st["Action"]))
    return out


def test_cfn_lint_passes() -> None:
    # The project's own cfn-lint (the dev extra), not whichever one is first on PATH.
    exe = Path(sys.executable).parent / "cfn-lint"
    proc = subprocess.run([str(exe), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_wildcard_action_on_wildcard_resource(tpl: dict[str, Any]) -> None:
    star_resource: list[tuple[str, str]] = []
    count = 0
    for where, st in all_policy_statements(tpl):
        count += 1
        assert "NotAction" not in st and "NotResource" not in st, where
        if st["Effect"] != "Allow":
            continue
        actions = as_list(st["Action"])
        for a in actions:
            assert isinstance(a, str) and "*" not in a, f"{where}: wildcard action {a!r}"
        res = as_list(st["Resource"])
        if "*" in res:
            assert set(actions) <= RESOURCELESS, f"{where}: Resource '*' for {actions}"
            assert st.get("Condition"), f"{where}: Resource '*' without a Condition"
            star_resource += [(where, a) for a in actions]
    assert count >= 15
    # The complete list of grants on Resource "*": each conditioned (region / metrics namespace).
    assert sorted(star_resource) == [
        ("ExecutionRole/pull-and-log", "ecr:GetAuthorizationToken"),
        ("TaskRole/consumer", "cloudwatch:PutMetricData"),
    ]


def test_metrics_grant_is_limited_to_the_kcl_namespace(tpl: dict[str, Any]) -> None:
    [st] = [s for w, s in all_policy_statements(tpl) if "cloudwatch:PutMetricData" in as_list(s["Action"])]
    assert st["Condition"] == {"StringEquals": {"cloudwatch:namespace": {"Ref": "ApplicationName"}}}


def test_consumer_role_grants_only_what_the_consumer_calls(tpl: dict[str, Any]) -> None:
    assert role_actions(tpl, "TaskRole") == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
        "kinesis:GetShardIterator",
        "kinesis:GetRecords",
        "kinesis:RegisterStreamConsumer",  # only with RetrievalMode FANOUT (Fn::If)
        "kinesis:DescribeStreamConsumer",
        "kinesis:SubscribeToShard",
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:UpdateTable",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "cloudwatch:PutMetricData",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "lambda:InvokeFunction",
        "sqs:SendMessage",
    }
    stmts = {st["Sid"]: st for _, st in all_policy_statements(tpl) if st.get("Sid")}
    kcl_tables = [r["Fn::Sub"] for r in stmts["KclLeaseTable"]["Resource"]]
    assert kcl_tables == [
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ApplicationName}",
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ApplicationName}/index/*",
    ]
    others = [r["Fn::Sub"] for r in stmts["KclCoordinatorAndWorkerMetricsTables"]["Resource"]]
    assert [o.rsplit("/", 1)[1] for o in others] == [
        "${ApplicationName}-CoordinatorState",
        "${ApplicationName}-WorkerMetricStats",
    ]
    assert stmts["SnapshotObjects"]["Resource"] == {"Fn::Sub": "${SnapshotBucket.Arn}/${SnapshotPrefix}*"}
    assert stmts["SnapshotList"]["Condition"] == {
        "StringLike": {"s3:prefix": {"Fn::Sub": "${SnapshotPrefix}*"}}
    }
    assert stmts["Block"]["Resource"] == {"Fn::GetAtt": ["BlockFunction", "Arn"]}
    assert stmts["DeadLetter"]["Resource"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


def _boto_calls(*files: Path) -> set[str]:
    calls: set[str] = set()
    for f in files:
        calls |= set(re.findall(r"client\.([a-z_]+)\(", f.read_text()))
    return calls


def test_block_lambda_role_covers_exactly_its_code(tpl: dict[str, Any]) -> None:
    lam = REPO / "infra" / "block_lambda"
    calls = _boto_calls(lam / "store.py", lam / "waf.py")
    # A transaction needs each item's operation permission (its items are Puts), no action of its own.
    per_call = {"transact_write_items": "dynamodb:PutItem"}
    needed = set()
    for c in calls:
        service = "wafv2" if c.endswith("ip_set") else "dynamodb"
        needed.add(
            per_call.get(c)
            or service + ":" + "".join(p.capitalize() for p in c.split("_")).replace("Ip", "IP")
        )
    granted = role_actions(tpl, "BlockFunctionRole") - {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert needed == granted, (needed, granted)
    stmts = {st["Sid"]: st for w, st in all_policy_statements(tpl) if w.startswith("BlockFunctionRole")}
    assert stmts["Blocklist"]["Resource"] == {"Fn::GetAtt": ["BlocklistTable", "Arn"]}
    assert stmts["IpSets"]["Resource"] == [
        {"Fn::GetAtt": ["IpSetV4", "Arn"]},
        {"Fn::GetAtt": ["IpSetV6", "Arn"]},
    ]


def test_snapshot_bucket_is_private_encrypted_and_expires_snapshots(tpl: dict[str, Any]) -> None:
    buckets = resources(tpl, "AWS::S3::Bucket")
    assert buckets
    for b in buckets.values():
        p = b["Properties"]
        assert p["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        [rule] = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        [life] = p["LifecycleConfiguration"]["Rules"]
        assert life["Status"] == "Enabled" and life["ExpirationInDays"] == {"Ref": "SnapshotExpirationDays"}
        assert life["Prefix"] == {"Ref": "SnapshotPrefix"}
    # The only bucket policy denies (plain HTTP); none grants anything to anyone.
    for _, st in all_policy_statements(tpl):
        if st.get("Principal") == "*":
            assert st["Effect"] == "Deny"


def test_blocklist_table_matches_the_block_lambda(tpl: dict[str, Any]) -> None:
    [t] = resources(tpl, "AWS::DynamoDB::Table").values()
    p = t["Properties"]
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["SSESpecification"] == {"SSEEnabled": True}
    readme = (REPO / "infra" / "block_lambda" / "README.md").read_text()
    assert "partition key `pk` (S), TTL attribute `expires_at`" in readme  # what the handler documents
    env = resources(tpl, "AWS::Lambda::Function")["BlockFunction"]["Properties"]["Environment"]["Variables"]
    assert env["BLOCKLIST_TABLE"] == {"Ref": "BlocklistTable"}
    assert env["WAF_IPV4_SET_ARN"] == {"Fn::GetAtt": ["IpSetV4", "Arn"]}
    assert env["WAF_IPV6_SET_ARN"] == {"Fn::GetAtt": ["IpSetV6", "Arn"]}


def test_waf_ip_sets_one_per_family_with_scope_parameter(tpl: dict[str, Any]) -> None:
    sets = resources(tpl, "AWS::WAFv2::IPSet")
    assert sorted(s["Properties"]["IPAddressVersion"] for s in sets.values()) == ["IPV4", "IPV6"]
    assert all(s["Properties"]["Scope"] == {"Ref": "WafScope"} for s in sets.values())


def test_task_definition_stop_timeout_health_check_and_logs(tpl: dict[str, Any]) -> None:
    [td] = resources(tpl, "AWS::ECS::TaskDefinition").values()
    [c] = td["Properties"]["ContainerDefinitions"]
    grace_s = (
        config_from_data(yaml.safe_load(IMAGE_CONFIG.read_text()), "image", {}).kcl.shutdown_grace_ms / 1000
    )
    assert grace_s == 20
    assert 120 >= c["StopTimeout"] > grace_s  # Fargate's maximum is 120 s
    cmd = c["HealthCheck"]["Command"]
    assert cmd[0] == "CMD" and cmd[1:3] == ["cfguard", "health"]
    assert c["LogConfiguration"]["LogDriver"] == "awslogs"
    assert c["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "ConsumerLogGroup"}
    for lg in resources(tpl, "AWS::Logs::LogGroup").values():
        assert lg["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    lam = resources(tpl, "AWS::Lambda::Function")["BlockFunction"]["Properties"]
    assert lam["LoggingConfig"] == {"LogGroup": {"Ref": "BlockFunctionLogGroup"}}
    assert lam["Handler"] == "block_lambda.handler.handler"


def test_alarms_cover_lag_lambda_dlq_and_cfguard_figures(tpl: dict[str, Any]) -> None:
    alarms = resources(tpl, "AWS::CloudWatch::Alarm").values()
    plain = {(a["Properties"].get("Namespace"), a["Properties"].get("MetricName")) for a in alarms}
    assert {
        ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= plain
    queries = " ".join(m["Expression"]["Fn::Sub"] for a in alarms for m in a["Properties"].get("Metrics", []))
    for metric in ("pipeline.actions.guard.block", "pipeline.actions.delivery.spooled", "pipeline.malformed"):
        assert f'"{metric}"' in queries
    assert resources(tpl, "AWS::CloudWatch::Dashboard")


def _resolve(v: Any, params: dict[str, Any]) -> Any:
    """Enough of CloudFormation's intrinsics to turn the container's environment into strings."""
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return [_resolve(x, params) for x in v]
    [(fn, arg)] = v.items()
    if fn == "Ref":
        return params.get(arg, f"ref-{arg.replace('::', '-')}")
    if fn == "Fn::GetAtt":
        return f"arn:aws:fake:us-east-1:123456789012:{arg[0]}"
    if fn == "Fn::Join":
        return arg[0].join(_resolve(arg[1], params))
    if fn == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        scope = {**params, **{k: _resolve(x, params) for k, x in local.items()}}
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(scope.get(m.group(1), m.group(1))), text)
    raise AssertionError(f"unexpected intrinsic {fn}")


def test_container_environment_gives_a_config_the_consumer_runs(tpl: dict[str, Any]) -> None:
    params = {n: p.get("Default") for n, p in tpl["Parameters"].items()}
    params["RealtimeLogFields"] = params["RealtimeLogFields"].split(",")
    params["AWS::Region"] = "eu-west-1"
    [td] = resources(tpl, "AWS::ECS::TaskDefinition").values()
    [c] = td["Properties"]["ContainerDefinitions"]
    env = {e["Name"]: _resolve(e["Value"], params) for e in c["Environment"]}
    assert all(k.startswith("CFGUARD__") for k in env)
    cfg = config_from_data(yaml.safe_load(IMAGE_CONFIG.read_text()), "image", env)
    assert cfg.kcl.stream_name == "ref-LogStream"
    assert cfg.kcl.region == "eu-west-1" and cfg.actions.block.region == "eu-west-1"
    assert cfg.kcl.snapshots.store == "s3" and cfg.kcl.snapshots.bucket == "ref-SnapshotBucket"
    assert cfg.kcl.snapshots.prefix == params["SnapshotPrefix"]
    assert cfg.kcl.status_dir == Path("/var/lib/cfguard/status")  # what `cfguard health` reads
    assert cfg.actions.dry_run is True
    assert cfg.actions.block.function_name == "arn:aws:fake:us-east-1:123456789012:BlockFunction"
    assert cfg.actions.spool.dead_letter_queue_url == "ref-DeadLetterQueue"
    assert cfg.metrics.namespace == "cfguard" == cfg.kcl.application_name
    # The real-time log config's default field list is what the default detectors and keys read.
    assert set(cfg.input.fields) == set(params["RealtimeLogFields"])
    pipeline = Pipeline.from_config(cfg, dry_run=True)
    pipeline.close()
    # One field fewer and the consumer refuses to start.
    fewer = {**env, "CFGUARD__INPUT__FIELDS": "[" + ",".join(params["RealtimeLogFields"][:-1]) + "]"}
    cfg2 = config_from_data(yaml.safe_load(IMAGE_CONFIG.read_text()), "image", fewer)
    with pytest.raises(ValueError, match="x-edge-result-type"):
        Pipeline.from_config(cfg2, dry_run=True)


# ---------------------------------------------------------------- moto's CloudFormation


def _moto_subset(tpl: dict[str, Any], unsupported: set[str]) -> tuple[dict[str, Any], set[str]]:
    """The template without the resource types moto cannot create; references to them become
    placeholders (the rest of the stack is created for real)."""
    dropped = {n for n, r in tpl["Resources"].items() if r["Type"] in unsupported}

    def fix(v: Any) -> Any:
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, str):
            return v
        if not isinstance(v, dict):
            return v
        if set(v) == {"Ref"} and v["Ref"] in dropped:
            return f"placeholder-{v['Ref']}"
        if set(v) == {"Fn::GetAtt"} and v["Fn::GetAtt"][0] in dropped:
            return f"arn:aws:placeholder:us-east-1:123456789012:{v['Fn::GetAtt'][0]}"
        if set(v) == {"Fn::Sub"} and isinstance(v["Fn::Sub"], str):
            text = re.sub(
                r"\$\{(\w+)(\.\w+)?\}",
                lambda m: f"placeholder-{m.group(1)}" if m.group(1) in dropped else m.group(0),
                v["Fn::Sub"],
            )
            return {"Fn::Sub": text}
        return {k: fix(x) for k, x in v.items()}

    out = {k: fix(v) for k, v in tpl.items() if k not in ("Resources", "Outputs")}
    out["Resources"] = {n: fix(r) for n, r in tpl["Resources"].items() if n not in dropped}
    out["Outputs"] = {n: o for n, o in tpl["Outputs"].items() if not any(d in json.dumps(o) for d in dropped)}
    return out, dropped


def test_moto_cloudformation_creates_the_supported_resources(tpl: dict[str, Any], tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws
    from moto.cloudformation.parsing import get_model_map

    sys.path.insert(0, str(REPO / "infra"))
    try:
        from block_lambda.package import build
    finally:
        sys.path.remove(str(REPO / "infra"))
    zip_path = tmp_path / "block-lambda.zip"
    build(zip_path)

    unsupported = {r["Type"] for r in tpl["Resources"].values()} - set(get_model_map())
    body, dropped = _moto_subset(tpl, unsupported)
    # What moto cannot build is only alarms, WAF sets, the bucket policy and CloudFront's config.
    assert unsupported <= {
        "AWS::CloudFront::RealtimeLogConfig",
        "AWS::CloudWatch::Alarm",
        "AWS::S3::BucketPolicy",
        "AWS::WAFv2::IPSet",
    }
    region = "us-east-1"
    with mock_aws():
        s3 = boto3.client("s3", region_name=region)
        s3.create_bucket(Bucket="artifacts")
        s3.upload_file(str(zip_path), "artifacts", "cfguard/block-lambda.zip")
        ec2 = boto3.client("ec2", region_name=region)
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        cf = boto3.client("cloudformation", region_name=region)
        cf.create_stack(
            StackName="cfguard",
            TemplateBody=json.dumps(body),
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[
                {"ParameterKey": "VpcId", "ParameterValue": vpc},
                {"ParameterKey": "Subnets", "ParameterValue": subnet},
                {"ParameterKey": "LambdaCodeBucket", "ParameterValue": "artifacts"},
            ],
        )
        stack = cf.describe_stacks(StackName="cfguard")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
        created = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cf.list_stack_resources(StackName="cfguard")["StackResourceSummaries"]
        }
        assert set(created) == set(tpl["Resources"]) - dropped

        ddb = boto3.client("dynamodb", region_name=region)
        table = ddb.describe_table(TableName="cfguard-blocklist")["Table"]
        assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        # (moto's CloudFormation ignores TimeToLiveSpecification: the TTL is checked on the template.)

        bucket = created["SnapshotBucket"]
        # moto's CloudFormation applies only the encryption of a bucket's properties (public access
        # block and lifecycle are checked on the template).
        enc = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert enc[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

        kinesis = boto3.client("kinesis", region_name=region)
        summary = kinesis.describe_stream_summary(StreamName=created["LogStream"])["StreamDescriptionSummary"]
        assert summary["RetentionPeriodHours"] == 24  # (moto ignores StreamModeDetails)

        fn = boto3.client("lambda", region_name=region).get_function_configuration(
            FunctionName=created["BlockFunction"]
        )
        assert fn["Handler"] == "block_lambda.handler.handler" and fn["Runtime"] == "python3.13"
        assert fn["Environment"]["Variables"]["BLOCKLIST_TABLE"] == "cfguard-blocklist"

        ecs = boto3.client("ecs", region_name=region)
        td = ecs.describe_task_definition(taskDefinition=created["TaskDefinition"])["taskDefinition"]
        [c] = td["containerDefinitions"]
        assert c["stopTimeout"] == 60
        assert c["healthCheck"]["command"][:3] == ["CMD", "cfguard", "health"]
        env = {e["name"]: e["value"] for e in c["environment"]}
        assert env["CFGUARD__KCL__STREAM_NAME"] == created["LogStream"]
        assert env["CFGUARD__KCL__SNAPSHOTS__BUCKET"] == bucket
        # (CFGUARD__INPUT__FIELDS joins a CommaDelimitedList, which moto's Ref returns as one string:
        # that value is checked by test_container_environment_gives_a_config_the_consumer_runs.)
        assert env["CFGUARD__ACTIONS__DRY_RUN"] == "true"
        assert env["CFGUARD__ACTIONS__BLOCK__FUNCTION_NAME"] == fn["FunctionArn"]
        logs = boto3.client("logs", region_name=region)
        groups = logs.describe_log_groups()["logGroups"]
        assert {g["logGroupName"]: g.get("retentionInDays") for g in groups} == {
            created["ConsumerLogGroup"]: 30,
            created["BlockFunctionLogGroup"]: 30,
        }
        iam = boto3.client("iam", region_name=region)
        role = created["TaskRole"]
        [pol] = iam.list_role_policies(RoleName=role)["PolicyNames"]
        doc = iam.get_role_policy(RoleName=role, PolicyName=pol)["PolicyDocument"]
        # moto keeps a CloudFormation-made inline policy as the repr of a dict
        doc = ast.literal_eval(doc) if isinstance(doc, str) else doc
        sids = [s["Sid"] for s in doc["Statement"] if s is not None]  # moto leaves AWS::NoValue as None
        assert "FanOut" not in sids and "KclLeaseTable" in sids  # POLLING: the Fn::If branch is dropped
