"""An AWS stand-in on 127.0.0.1: moto served by Hypercorn (HTTP/1.1 and h2c on one port).

KCL forces HTTP/2 for Kinesis, which moto's own server cannot speak; Hypercorn serves moto's WSGI app
with both protocols. The stack creates what cfguard uses: the Kinesis stream, the blocklist table and
the snapshot bucket, two WAF IP sets (the KCL daemon creates its lease table itself). The block Lambda
is registered, and since moto only executes Lambda code inside Docker, the stack answers its Invoke
calls itself by running the real handler (``infra/block_lambda/``) in-process against moto.

Faults (AWS errors, outages, listener restarts) are injected at runtime through
``/_cfguard/faults``: see :mod:`consumer.local_stack_faults`.

Use :class:`LocalStack` in-process (a server thread) or :class:`LocalStackProcess` to run
``cfguard local-stack`` as a child process (what tests and the demo do: it keeps moto off their GIL).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from consumer.local_stack_faults import FaultInjector, serve_with_restarts

log = logging.getLogger(__name__)

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
BLOCK_LAMBDA_DIR = Path(__file__).resolve().parent.parent / "infra" / "block_lambda"


@dataclass(frozen=True)
class StackSpec:
    """What the local stack creates."""

    region: str = "us-east-1"
    stream_name: str = "cfguard-realtime-logs"
    shards: int = 1
    blocklist_table: str = "cfguard-blocklist"
    snapshot_bucket: str = "cfguard-state"
    lambda_name: str = "cfguard-block"


@dataclass
class StackInfo:
    """What a client needs: one endpoint for every service, plus the resource names."""

    endpoint: str
    spec: StackSpec
    lambda_registered: bool = False
    resources: dict[str, str] = field(default_factory=dict)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that talks to this stack (fake keys, region, no CBOR)."""
        env = dict(os.environ if base is None else base)
        env.update(FAKE_CREDENTIALS)
        env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = self.spec.region
        env["AWS_ENDPOINT_URL"] = self.endpoint
        env["CBOR_ENABLED"] = "false"
        env["AWS_CBOR_DISABLE"] = "1"
        return env

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "spec": asdict(self.spec)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        data = json.loads(text)
        data["spec"] = StackSpec(**data["spec"])
        return cls(**data)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"local stack at {url} did not answer within {timeout_s:.0f} s ({last})")


def boto_client(service: str, endpoint: str, region: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _lambda_zip(src: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*.py")):
            zf.write(p, f"block_lambda/{p.relative_to(src).as_posix()}")
    return buf.getvalue()


def block_lambda_available() -> bool:
    return (BLOCK_LAMBDA_DIR / "handler.py").exists()


def lambda_env(info: StackInfo) -> dict[str, str]:
    """The block Lambda's environment on this stack (its README lists the variables)."""
    env = {"BLOCKLIST_TABLE": info.spec.blocklist_table, "IP_KEY_TYPES": "ip"}
    if "waf_ipv4_set_arn" in info.resources:
        env["WAF_IPV4_SET_ARN"] = info.resources["waf_ipv4_set_arn"]
        env["WAF_IPV6_SET_ARN"] = info.resources["waf_ipv6_set_arn"]
    return env


def _at_least_one_chunk(body: Any) -> Any:
    """Hypercorn's WSGI wrapper only starts a response on the first body chunk: an empty body
    (HEAD, 204) would never send its status. Yield an empty chunk in that case."""
    try:
        empty = True
        for chunk in body:
            empty = False
            yield chunk
        if empty:
            yield b""
    finally:
        if hasattr(body, "close"):
            body.close()


class LambdaInvoke:
    """WSGI middleware: ``Invoke`` of the block function runs the real handler code in this process.

    moto records Lambda invocations but only executes code inside Docker; this answers the Invoke
    API for the one function cfguard calls (same URL, headers and status codes as AWS) and passes
    every other request to moto. Each invocation is logged for ``GET /_cfguard/invocations``.
    """

    def __init__(self, app: Any, function_name: str) -> None:
        self.app = app
        self.function_name = function_name
        self.service: Any = None
        self.invocations: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def bind(self, info: StackInfo) -> None:
        root = str(BLOCK_LAMBDA_DIR.parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        from infra.block_lambda.handler import BlockService
        from infra.block_lambda.settings import Settings

        region = info.spec.region
        self.service = BlockService(
            Settings.from_env(lambda_env(info)),
            dynamodb=boto_client("dynamodb", info.endpoint, region),
            wafv2=boto_client("wafv2", info.endpoint, region),
        )

    def _target(self, path: str) -> bool:
        prefix, suffix = "/2015-03-31/functions/", "/invocations"
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return False
        from urllib.parse import unquote

        name = unquote(path[len(prefix) : -len(suffix)])
        return name == self.function_name or name.endswith(f":function:{self.function_name}")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/_cfguard/invocations":
            with self._lock:
                body = json.dumps(self.invocations).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if environ.get("REQUEST_METHOD") != "POST" or self.service is None or not self._target(path):
            return _at_least_one_chunk(self.app(environ, start_response))
        received = time.time()
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            event = json.loads(raw) if raw else None
        except ValueError:
            event = None
        result = self.service.handle(event)
        with self._lock:
            self.invocations.append(
                {
                    "received": received,
                    "op": event.get("op") if isinstance(event, dict) else None,
                    "key": event.get("key") if isinstance(event, dict) else None,
                    "idempotency_key": event.get("idempotency_key") if isinstance(event, dict) else None,
                    "status": result.get("status") if isinstance(result, dict) else None,
                }
            )
        if environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event":
            start_response("202 Accepted", [("Content-Type", "application/json")])
            return [b"{}"]
        body = json.dumps(result).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        )
        return [body]


def create_resources(endpoint: str, spec: StackSpec) -> StackInfo:
    """Create the stream (waiting until ACTIVE), the blocklist table, the bucket and the Lambda."""
    info = StackInfo(endpoint=endpoint, spec=spec)
    kinesis = boto_client("kinesis", endpoint, spec.region)
    kinesis.create_stream(StreamName=spec.stream_name, ShardCount=spec.shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=spec.stream_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
    )
    arn = kinesis.describe_stream_summary(StreamName=spec.stream_name)["StreamDescriptionSummary"]
    info.resources["stream_arn"] = arn["StreamARN"]

    ddb = boto_client("dynamodb", endpoint, spec.region)
    ddb.create_table(
        TableName=spec.blocklist_table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=spec.blocklist_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    info.resources["blocklist_table"] = spec.blocklist_table
    waf = boto_client("wafv2", endpoint, spec.region)
    for version in ("IPV4", "IPV6"):
        ipset = waf.create_ip_set(
            Name=f"cfguard-blocked-{version.lower()}",
            Scope="CLOUDFRONT",
            IPAddressVersion=version,
            Addresses=[],
        )["Summary"]
        info.resources[f"waf_{version.lower()}_set_arn"] = ipset["ARN"]

    s3 = boto_client("s3", endpoint, spec.region)
    s3.create_bucket(Bucket=spec.snapshot_bucket)
    info.resources["snapshot_bucket"] = spec.snapshot_bucket

    if block_lambda_available():
        iam = boto_client("iam", endpoint, spec.region)
        role = iam.create_role(
            RoleName=f"{spec.lambda_name}-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        fn = boto_client("lambda", endpoint, spec.region).create_function(
            FunctionName=spec.lambda_name,
            Runtime="python3.11",
            Role=role,
            Handler="block_lambda.handler.handler",
            Code={"ZipFile": _lambda_zip(BLOCK_LAMBDA_DIR)},
            Environment={"Variables": lambda_env(info)},
        )
        info.lambda_registered = True
        info.resources["lambda_arn"] = fn["FunctionArn"]
    return info


class Serialized:
    """One moto request at a time. Hypercorn runs WSGI requests in a thread pool, and moto's Kinesis
    ``put_record`` is not thread-safe (next sequence number = last + 1, unlocked): concurrent
    PutRecords calls lost acknowledged records (7 of 12,000 with 16 writer threads)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            return [b"".join(self.app(environ, start_response))]


class LocalStack:
    """moto + Hypercorn in a background thread of this process."""

    def __init__(self, spec: StackSpec | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.spec = spec or StackSpec()
        self.host = host
        self.port = port or free_port(host)
        self.endpoint = f"http://{host}:{self.port}"
        self.info: StackInfo | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.lambda_invoke: LambdaInvoke | None = None
        self.faults: FaultInjector | None = None

    def _serve(self) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config as HyperConfig
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        conf = HyperConfig()
        conf.bind = [f"{self.host}:{self.port}"]
        conf.accesslog = None
        conf.errorlog = logging.getLogger("hypercorn.error")
        conf.keep_alive_timeout = 75
        conf.wsgi_max_body_size = 64 * 1024 * 1024
        self.lambda_invoke = LambdaInvoke(
            Serialized(DomainDispatcherApplication(create_backend_app)), self.spec.lambda_name
        )
        app = self.faults = FaultInjector(self.lambda_invoke)  # outermost: it also sees Invoke

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve_with_restarts(
                lambda trigger: serve(app, conf, shutdown_trigger=trigger, mode="wsgi"),  # type: ignore[arg-type]
                app,
                self._stop,
            )

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout_s: float = 30.0) -> StackInfo:
        logging.getLogger("hypercorn.error").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=self._serve, name="local-stack", daemon=True)
        self._thread.start()
        try:
            wait_for_http(self.endpoint, timeout_s)
        except TimeoutError:
            if self._error is not None:
                raise RuntimeError(f"local stack failed to start: {self._error}") from self._error
            raise
        self.info = create_resources(self.endpoint, self.spec)
        if self.info.lambda_registered and self.lambda_invoke is not None:
            self.lambda_invoke.bind(self.info)
        return self.info

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalStackProcess:
    """``cfguard local-stack`` as a child process; ``with LocalStackProcess(spec) as info: ...``."""

    def __init__(self, spec: StackSpec | None = None, port: int = 0, log_path: Path | None = None) -> None:
        self.spec = spec or StackSpec()
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.info: StackInfo | None = None

    def start(self, timeout_s: float = 60.0) -> StackInfo:
        s = self.spec
        cmd = [
            sys.executable, "-m", "consumer.commands.local_stack", "--json",
            "--port", str(self.port), "--region", s.region, "--stream", s.stream_name,
            "--shards", str(s.shards), "--blocklist-table", s.blocklist_table,
            "--bucket", s.snapshot_bucket, "--lambda-name", s.lambda_name,
        ]  # fmt: skip
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ)
        env.update(FAKE_CREDENTIALS)
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, start_new_session=True
        )
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        assert self.proc.stdout is not None
        line = self._readline(timeout_s)
        if not line:
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(f"cfguard local-stack exited ({code}) before it was ready; see its log")
        self.info = StackInfo.from_json(line)
        return self.info

    def _readline(self, timeout_s: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        t.start()
        t.join(timeout_s)
        return result[0].strip() if result else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> StackInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def describe(info: StackInfo) -> dict[str, Any]:
    """Human-readable summary lines for the command's output."""
    s = info.spec
    return {
        "endpoint (all services, HTTP/1.1 + h2c)": info.endpoint,
        "region": s.region,
        "kinesis stream": f"{s.stream_name} ({s.shards} shard{'s' if s.shards != 1 else ''})",
        "blocklist table": s.blocklist_table,
        "snapshot bucket": s.snapshot_bucket,
        "block lambda": (
            f"{s.lambda_name}: Invoke runs infra/block_lambda's real handler inside the stack "
            "(moto alone needs Docker to run Lambda code)"
            if info.lambda_registered
            else "not registered (infra/block_lambda/handler.py not present)"
        ),
        "WAF IP sets": ", ".join(v for k, v in info.resources.items() if k.startswith("waf_")),
        "lease table": "created by the KCL daemon on its first start",
    }
