"""Real AWS-API endpoints for the actions tests.

``MotoServer``: moto's server in a child process on 127.0.0.1 and a free port; boto3 clients talk
to it over HTTP (plain moto_server is enough here: only Kinesis needs HTTP/2).
``FakeLambdaEndpoint``: a local HTTP server speaking the Lambda ``Invoke`` API that runs the real
block Lambda handler in-process (against moto's DynamoDB and WAFv2), with scripted faults in
front of it: throttling (429), 5xx, ``FunctionError``, slow answers, an outage, a held request.
moto cannot run Lambda code without Docker, so this is how the invoke path reaches real code.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_fake_credentials() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.pop("AWS_PROFILE", None)


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("moto server exited at start") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start within 30 s")
        # Lambda without Docker: moto's simple backend (records the invoke, echoes the payload).
        req = urllib.request.Request(
            self.url + "/moto-api/config", data=json.dumps({"lambda": {"use_docker": False}}).encode()
        )
        urllib.request.urlopen(req, timeout=5).read()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)


class AwsStack:
    """One test's resources on the moto server: a blocklist table and the two WAF IP sets."""

    def __init__(self, moto: MotoServer) -> None:
        self.moto = moto
        self.suffix = uuid.uuid4().hex[:8]
        self.ddb = moto.client("dynamodb")
        self.waf = moto.client("wafv2")
        self.table = f"blocklist-{self.suffix}"
        self.ddb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.ddb.update_time_to_live(
            TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
        self.v4 = self.waf.create_ip_set(
            Name=f"v4-{self.suffix}", Scope="CLOUDFRONT", IPAddressVersion="IPV4", Addresses=[]
        )["Summary"]
        self.v6 = self.waf.create_ip_set(
            Name=f"v6-{self.suffix}", Scope="CLOUDFRONT", IPAddressVersion="IPV6", Addresses=[]
        )["Summary"]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "BLOCKLIST_TABLE": self.table,
            "WAF_IPV4_SET_ARN": self.v4["ARN"],
            "WAF_IPV6_SET_ARN": self.v6["ARN"],
            "IP_KEY_TYPES": "ip",
            **extra,
        }

    def addresses(self, version: int = 4) -> list[str]:
        s = self.v4 if version == 4 else self.v6
        return sorted(
            self.waf.get_ip_set(Name=s["Name"], Scope="CLOUDFRONT", Id=s["Id"])["IPSet"]["Addresses"]
        )

    def items(self, prefix: str = "block#") -> list[dict[str, Any]]:
        from infra.block_lambda.store import plain

        items = self.ddb.scan(TableName=self.table)["Items"]
        return sorted((plain(i) for i in items if i["pk"]["S"].startswith(prefix)), key=lambda i: i["pk"])


class FakeLambdaEndpoint:
    """The Lambda Invoke API on 127.0.0.1, running ``handle(event) -> dict`` (the real handler).

    ``faults`` is consumed one per request: ``throttle`` (429 TooManyRequestsException), ``error500``
    (500 ServiceException), ``function_error`` (200 + X-Amz-Function-Error), ``slow`` (run the
    handler, then answer after ``slow_s``: the client times out although the block was applied).
    ``down`` answers every request with 503 until cleared; ``hold`` (a threading.Event) makes
    requests wait until it is set.
    """

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.function_name = "cfguard-block"
        self.faults: list[str] = []
        self.down = False
        self.slow_s = 2.0
        self.hold: threading.Event | None = None
        self.requests = 0
        self.handled: Counter[str] = Counter()  # idempotency keys the handler saw
        self.invocation_types: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer._serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout)

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        name = h.path.split("/functions/", 1)[-1].split("/", 1)[0]
        if not h.path.endswith("/invocations") or name != self.function_name:
            self._reply(h, 404, {"message": "not found"}, {"x-amzn-ErrorType": "ResourceNotFoundException"})
            return
        with self._lock:
            self.requests += 1
            fault = self.faults.pop(0) if self.faults else None
            self.invocation_types.append(h.headers.get("X-Amz-Invocation-Type", "RequestResponse"))
        if self.hold is not None:
            self.hold.wait(30)
        if self.down:
            self._reply(h, 503, {"message": "down"}, {"x-amzn-ErrorType": "ServiceException"})
            return
        if fault == "throttle":
            self._reply(
                h,
                429,
                {"message": "Rate exceeded", "Type": "User"},
                {"x-amzn-ErrorType": "TooManyRequestsException"},
            )
            return
        if fault == "error500":
            self._reply(h, 500, {"message": "internal"}, {"x-amzn-ErrorType": "ServiceException"})
            return
        if fault == "function_error":
            self._reply(
                h,
                200,
                {"errorMessage": "boom", "errorType": "RuntimeError"},
                {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
            )
            return
        event = json.loads(body) if body else None
        result = self.handle(event)
        if isinstance(event, dict) and "idempotency_key" in event:
            with self._lock:
                self.handled[event["idempotency_key"]] += 1
        if fault == "slow":
            time.sleep(self.slow_s)
        if h.headers.get("X-Amz-Invocation-Type") == "Event":
            self._reply(h, 202, {}, {})
        else:
            self._reply(h, 200, result, {"X-Amz-Executed-Version": "$LATEST"})
