"""The deployment zip holds what the handler imports, and its entry point works from the zip alone
(plus the runtime's boto3 and the pydantic dependency): a fresh interpreter, the zip on sys.path,
settings from environment variables, AWS calls to the moto server via AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.block_lambda.package import build
from tests.actions.aws import AwsStack, MotoServer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.path = [p for p in sys.path if p not in ("", {repo!r})]
sys.path.insert(0, {zip!r})
import block_lambda.handler as h
assert h.__file__.startswith({zip!r}), h.__file__
import actions.payload as ap
assert ap.__file__.startswith({zip!r}), ap.__file__
events = json.loads(sys.stdin.read())
print(json.dumps([h.handler(e, None) for e in events]))
"""


def test_zip_contents_and_entry_point(tmp_path: Path, moto: MotoServer) -> None:
    out = tmp_path / "block-lambda.zip"
    names = build(out)
    assert {
        "block_lambda/handler.py",
        "block_lambda/store.py",
        "block_lambda/waf.py",
        "actions/payload.py",
    } <= set(names)
    assert not any(n.startswith(("consumer/", "detectors/")) or n.endswith("package.py") for n in names)
    assert zipfile.ZipFile(out).testzip() is None

    stack = AwsStack(moto)
    from tests.infra.test_block_lambda import payload

    events = [
        payload("203.0.113.9"),
        {"op": "block"},
        {"op": "unblock", "key_type": "ip", "key": "203.0.113.9"},
    ]
    env = {
        **os.environ,
        **stack.env(),
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": "",
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(zip=str(out), repo=str(REPO))],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    applied, bad, unblocked = json.loads(proc.stdout.strip().splitlines()[-1])
    assert applied["ok"] and applied["status"] == "applied" and applied["waf"] == "added"
    assert bad["ok"] is False and "key: Field required" in bad["error"]
    assert unblocked == {"ok": True, "status": "unblocked", "waf_removed": 1}
    assert stack.items()[0]["status"] == "unblocked"
    assert stack.addresses(4) == []


def test_missing_settings_answer_with_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "l.zip"
    build(out)
    env = {k: v for k, v in os.environ.items() if k != "BLOCKLIST_TABLE"} | {"PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(zip=str(out), repo=str(REPO))],
        input=json.dumps([{"op": "expire"}]),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (answer,) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and "BLOCKLIST_TABLE" in answer["error"]
