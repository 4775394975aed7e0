"""infra/template.yaml: cfn-lint clean, least-privilege IAM, private encrypted state, safe shutdown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumer.kcl.config import KclConfig
from tests.infra.cfn_yaml import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"

# Actions AWS only grants on Resource "*"; each must carry a condition narrowing it.
STAR_RESOURCE_ALLOWED = {"cloudwatch:PutMetricData"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _resources(template: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == rtype}


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every identity-policy statement of every role: (role name, statement)."""
    out = []
    for name, role in _resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                out.append((name, st))
    return out


def test_cfn_lint_passes() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_loader_sees_the_resources(template: dict[str, Any]) -> None:
    types = {r["Type"] for r in template["Resources"].values()}
    for needed in (
        "AWS::Kinesis::Stream",
        "AWS::CloudFront::RealtimeLogConfig",
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::ECS::Service",
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::WAFv2::IPSet",
        "AWS::Lambda::Function",
        "AWS::SQS::Queue",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
    ):
        assert needed in types, needed


def test_no_wildcard_action_and_star_resource_only_where_aws_requires_it(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert len(statements) >= 10
    star_resources = []
    for role, st in statements:
        assert st["Effect"] == "Allow", (role, st)
        actions = _as_list(st["Action"])
        for action in actions:
            assert "*" not in action, f"{role}: wildcard action {action}"
        assert "NotAction" not in st and "NotResource" not in st, role
        resources = _as_list(st["Resource"])
        if "*" in resources:
            star_resources.append((role, actions))
            assert set(actions) <= STAR_RESOURCE_ALLOWED, f"{role}: {actions} on Resource '*'"
            assert st.get("Condition"), f"{role}: Resource '*' without a condition"
    # One per consumer role: PutMetricData, narrowed to the metrics namespace.
    assert sorted(star_resources) == [
        ("RekeyTaskRole", ["cloudwatch:PutMetricData"]),
        ("TaskRole", ["cloudwatch:PutMetricData"]),
    ]


def test_consumer_role_names_each_resource(template: dict[str, Any]) -> None:
    by_sid = {st.get("Sid"): st for role, st in _statements(template) if role == "TaskRole"}
    # two-stage: the detect service reads the partials stream only; single-stage: the raw stream
    cond, two, single = by_sid["ReadStream"]["Resource"]["Fn::If"]
    assert cond == "TwoStage"
    assert two[0] == {"Fn::GetAtt": ["PartialsStream", "Arn"]}
    assert single[0] == {"Fn::GetAtt": ["LogStream", "Arn"]}
    lease = [r["Fn::Sub"] for r in by_sid["KclLeaseTables"]["Resource"]]
    assert any(r.endswith("table/${AppName}") for r in lease)  # KCL lease table = application name
    # KCL 3 (the official amazon-kclpy 3.x) also keeps these two tables
    assert any(r.endswith("-WorkerMetricStats") for r in lease)
    assert any(r.endswith("-CoordinatorState") for r in lease)
    assert by_sid["Block"]["Action"] == "lambda:InvokeFunction"
    assert by_sid["Block"]["Resource"] == {"Fn::GetAtt": ["BlockFunction", "Arn"]}
    assert "sqs:SendMessage" in by_sid["DeadLetters"]["Action"]
    assert by_sid["Snapshots"]["Resource"]["Fn::Sub"].endswith("/cfguard/snapshots/*")
    assert by_sid["Config"]["Action"] == "ssm:GetParameter"
    condition = by_sid["Metrics"]["Condition"]["StringEquals"]
    assert condition["cloudwatch:namespace"] == {"Ref": "MetricsNamespace"}


def test_block_function_role_is_table_and_ip_sets_only(template: dict[str, Any]) -> None:
    sts = [st for role, st in _statements(template) if role == "BlockFunctionRole"]
    resources = [r for st in sts for r in _as_list(st["Resource"])]
    assert {"Fn::GetAtt": ["BlocklistTable", "Arn"]} in resources
    assert {"Fn::GetAtt": ["BlockIpSetV4", "Arn"]} in resources
    assert {"Fn::GetAtt": ["BlockIpSetV6", "Arn"]} in resources
    actions = {a for st in sts for a in _as_list(st["Action"])}
    assert not any(a.startswith(("kinesis:", "s3:", "lambda:", "sqs:")) for a in actions)


def test_bucket_private_and_encrypted(template: dict[str, Any]) -> None:
    for name, bucket in _resources(template, "AWS::S3::Bucket").items():
        props = bucket["Properties"]
        block = props["PublicAccessBlockConfiguration"]
        assert all(
            block[k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ), name
        assert "AccessControl" not in props
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert props["LifecycleConfiguration"]["Rules"][0]["Status"] == "Enabled"
    for name, pol in _resources(template, "AWS::S3::BucketPolicy").items():
        for st in pol["Properties"]["PolicyDocument"]["Statement"]:
            if st.get("Principal") == "*":
                assert st["Effect"] == "Deny", name  # no public grant


def test_blocklist_table_has_ttl_on_expires_at(template: dict[str, Any]) -> None:
    table = template["Resources"]["BlocklistTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]


def test_stop_timeout_exceeds_kcl_shutdown_grace_and_health_check(template: dict[str, Any]) -> None:
    tasks = _resources(template, "AWS::ECS::TaskDefinition")
    assert set(tasks) == {"TaskDefinition", "RekeyTaskDefinition"}
    for name, task in tasks.items():
        container = task["Properties"]["ContainerDefinitions"][0]
        grace_s = KclConfig().shutdown_grace_ms / 1000
        assert container["StopTimeout"] > grace_s + 10, name  # grace plus the final snapshot and checkpoint
        assert container["HealthCheck"]["Command"] == ["CMD", "cfguard", "health"]
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_every_log_group_has_retention(template: dict[str, Any]) -> None:
    groups = _resources(template, "AWS::Logs::LogGroup")
    assert len(groups) == 2
    for name, g in groups.items():
        assert g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_lambda_handler_exists(template: dict[str, Any]) -> None:
    fn = template["Resources"]["BlockFunction"]["Properties"]
    module, func = fn["Handler"].rsplit(".", 1)
    path = TEMPLATE.parent / (module.replace(".", "/") + ".py")
    assert path.is_file()
    assert f"def {func}(" in path.read_text()
    env = fn["Environment"]["Variables"]
    assert set(env) >= {"BLOCKLIST_TABLE", "WAF_IPV4_SET_ARN", "WAF_IPV6_SET_ARN"}


def test_alarms_cover_the_issue(template: dict[str, Any]) -> None:
    alarms = _resources(template, "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"]["Fn::Sub"] for a in alarms.values()}
    assert names >= {
        "${AppName}-iterator-age",
        "${AppName}-partials-iterator-age",
        "${AppName}-blocks-per-minute",
        "${AppName}-delivery-failures",
        "${AppName}-parse-error-rate",
    }


def test_default_log_fields_are_cloudfront_fields_covering_the_example_config(
    template: dict[str, Any],
) -> None:
    from consumer.config import load_config
    from consumer.fields import BY_NAME
    from consumer.keys import KeyExtractor
    from detectors.engine import Engine

    fields = template["Parameters"]["RealtimeLogFields"]["Default"].split(",")
    assert len(fields) == len(set(fields))
    assert [f for f in fields if f not in BY_NAME] == []
    cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "cfguard.yaml")
    engine = Engine.from_config(cfg.detectors, cfg.state, [k.name for k in cfg.keys])
    wanted = {"timestamp"} | KeyExtractor(cfg.keys).required_fields() | set(engine.required_fields())
    assert sorted(wanted - set(fields)) == []


def test_task_reads_the_config_parameter_its_role_may_read(template: dict[str, Any]) -> None:
    for task in _resources(template, "AWS::ECS::TaskDefinition").values():
        container = task["Properties"]["ContainerDefinitions"][0]
        assert container["Command"][:2] == ["--config", {"Fn::Sub": "ssm:${ConfigParameterName}"}]
        assert container["Command"][2] == "--role"  # the stack, not the config, says which stage
    grants = [st for role, st in _statements(template) if st.get("Sid") == "Config"]
    assert len(grants) == 2
    for grant in grants:
        assert grant["Resource"]["Fn::Sub"].endswith(":parameter${ConfigParameterName}")


def test_block_function_reserves_no_concurrency(template: dict[str, Any]) -> None:
    # Reserved concurrency must leave the account's unreserved minimum free: on accounts with a low
    # concurrency quota (new accounts) any reservation fails the stack. Throttles have an alarm instead.
    for fn in _resources(template, "AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in fn["Properties"]
