"""``cfguard blocks``: list reads moto's DynamoDB blocklist; unblock goes through the block Lambda
(the real handler behind the local Invoke endpoint) and removes the WAF entry."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actions.config import ActionsConfig
from actions.lambda_action import build_payload
from actions.runner import ActionRunner
from consumer.commands import blocks
from infra.block_lambda.handler import BlockService
from infra.block_lambda.settings import Settings
from tests.actions.aws import REGION, AwsStack, FakeLambdaEndpoint, MotoServer
from tests.actions.helpers import FakeWall, finding

pytestmark = pytest.mark.integration


def run(argv: list[str]) -> int:
    """The blocks command as ``cfguard`` runs it (argparse + func), without the other commands."""
    parser = argparse.ArgumentParser(prog="cfguard")
    blocks.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture
def env(
    moto: MotoServer, tmp_path: Path
) -> Iterator[tuple[AwsStack, FakeLambdaEndpoint, Path, BlockService]]:
    stack = AwsStack(moto)
    svc = BlockService(
        Settings.from_env(stack.env(IP_KEY_TYPES="ip,xff")),
        dynamodb=moto.client("dynamodb"),
        wafv2=moto.client("wafv2"),
    )
    ep = FakeLambdaEndpoint(svc.handle)
    conf = tmp_path / "cfguard.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "actions": {
                    "block": {"function_name": "cfguard-block", "region": REGION, "endpoint_url": ep.url},
                    "blocklist": {"table_name": stack.table, "region": REGION, "endpoint_url": moto.url},
                    "guard": {"breaker": {"reset_file": str(tmp_path / "reset-breaker")}},
                }
            }
        )
    )
    yield stack, ep, conf, svc
    ep.close()


def block(svc: BlockService, key: str, key_type: str = "ip") -> None:
    r = ActionRunner(ActionsConfig(), dry_run=True, clock=FakeWall(time.time()))
    d = r.submit([finding(key, key_type=key_type)])[0]
    assert svc.handle(build_payload(d))["ok"]


def test_list_and_unblock(env, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    stack, ep, conf, svc = env
    assert run(["blocks", "list", "-c", str(conf)]) == 0
    assert capsys.readouterr().out == "no active blocks\n"
    block(svc, "203.0.113.7")
    block(svc, "203.0.113.7", "xff")
    block(svc, "alice", "user")
    assert run(["blocks", "list", "-c", str(conf)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["KEY", "TYPE", "KEY", "DETECTOR", "SCORE", "STATUS", "EXPIRES", "WAF"]
    assert sorted(line.split()[1] for line in out[1:]) == ["203.0.113.7", "203.0.113.7", "alice"]
    # ambiguous key: asks for the key type (exit 2), nothing changed
    assert run(["blocks", "unblock", "203.0.113.7", "-c", str(conf)]) == 2
    assert "pass --key-type" in capsys.readouterr().err
    assert run(["blocks", "unblock", "203.0.113.7", "--key-type", "ip", "-c", str(conf)]) == 0
    assert "WAF entries removed: 0" in capsys.readouterr().out  # the xff block still needs the address
    assert run(["blocks", "unblock", "203.0.113.7", "-c", str(conf)]) == 0  # only xff left
    assert "WAF entries removed: 1" in capsys.readouterr().out
    assert stack.addresses(4) == []
    assert run(["blocks", "list", "-c", str(conf), "--json"]) == 0
    (only,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (only["key"], only["key_type"], only["status"]) == ("alice", "user", "active")
    assert run(["blocks", "list", "-c", str(conf), "--all", "--json"]) == 0
    statuses = sorted(json.loads(x)["status"] for x in capsys.readouterr().out.splitlines())
    assert statuses == ["active", "unblocked", "unblocked"]
    assert run(["blocks", "unblock", "nobody", "-c", str(conf)]) == 1
    assert "no active block" in capsys.readouterr().err
    assert ep.requests == 2


def test_unblock_reports_lambda_failure(env, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, ep, conf, svc = env
    block(svc, "bob", "user")
    ep.down = True
    assert run(["blocks", "unblock", "bob", "-c", str(conf)]) == 1
    assert "unblock failed: ServiceException" in capsys.readouterr().err


def test_reset_breaker_touches_the_file(env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, _, conf, _ = env
    assert run(["blocks", "reset-breaker", "-c", str(conf)]) == 0
    assert (tmp_path / "reset-breaker").exists()
    bare = tmp_path / "bare.yaml"
    bare.write_text("{}\n")
    assert run(["blocks", "reset-breaker", "-c", str(bare)]) == 2
    assert "reset_file is not configured" in capsys.readouterr().err


def test_list_reports_unreachable_table(
    tmp_path: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        yaml.safe_dump(
            {"actions": {"blocklist": {"table_name": "nope", "region": REGION, "endpoint_url": moto.url}}}
        )
    )
    assert run(["blocks", "list", "-c", str(conf)]) == 1
    assert "ResourceNotFoundException" in capsys.readouterr().err


def test_redrive_sends_dead_letters_once_the_lambda_is_back(  # type: ignore[no-untyped-def]
    env, moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.actions.test_delivery import wait_for

    stack, ep, conf, _ = env
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"dlq-{stack.suffix}")["QueueUrl"]
    data = yaml.safe_load(conf.read_text())
    data["actions"]["spool"] = {
        "path": str(tmp_path / "spool.jsonl"),
        "dead_letter_queue_url": url,
        "sqs_region": REGION,
        "sqs_endpoint_url": moto.url,
        "max_attempts": 1,
        "retry_interval_s": 0.05,
    }
    conf.write_text(yaml.safe_dump(data))
    from consumer.config import load_config

    ep.down = True
    r = ActionRunner(load_config(conf).actions, dry_run=False, sleep=lambda s: None)
    decided = r.submit([finding(f"198.51.100.{i}", t=1_700_000_000 + i) for i in range(3)])
    r.submit([finding("not-an-ip", t=1_700_000_100)])
    wait_for(lambda: r.stats().get("delivery.spool.dead_lettered", 0) == 4)
    r.close()
    assert stack.items() == []
    ep.down = False
    assert run(["blocks", "redrive", "-c", str(conf)]) == 1  # the invalid one still fails
    assert capsys.readouterr().out == "redrive: 3 delivered, 1 still failing, 0 unreadable\n"
    assert sorted(i["idempotency_key"] for i in stack.items()) == sorted(d.idempotency_key for d in decided)
    assert run(["blocks", "redrive", "-c", str(conf)]) == 0  # the failing one is invisible for 60 s
    assert "0 delivered" in capsys.readouterr().out
    assert len(stack.items()) == 3
