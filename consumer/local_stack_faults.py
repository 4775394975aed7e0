"""Fault injection for the local stack: AWS errors, outages and listener restarts on demand.

:class:`FaultInjector` is a WSGI middleware in front of the local stack (outermost, so it also sees
the block Lambda's ``Invoke``). Tests set rules at runtime through a control endpoint on the same
server; a matching request is answered with the real AWS error (status code, ``x-amzn-ErrorType``
header and the JSON or XML body of that service's protocol), so botocore and the AWS SDK for Java v2
(the KCL) raise the same exception they would against AWS, and retry it the way they would.

Control endpoint (JSON; :class:`Faults` is a small client for it)::

    POST   /_cfguard/faults   a rule or a list of rules          -> {"ids": [1, 2]}
    GET    /_cfguard/faults   rules, injected and seen counts    -> see below
    DELETE /_cfguard/faults   remove every rule (counts are kept)

An error rule::

    {"service": "kinesis",            # credential scope: kinesis, dynamodb, lambda, s3, ...
     "operation": "GetRecords",       # AWS operation name, or "*" (default) for every one
     "error": "ProvisionedThroughputExceededException",
     "count": 5,                      # inject on the next 5 matching calls ...
     "seconds": 10,                   # ... and/or for 10 s from now (whichever ends first;
                                      #     neither: until removed)
     "every": 1,                      # optional: inject on 1 matching call in `every`
     "status": 400,                   # optional: only needed for an error not in ERRORS
     "message": "...",                # optional
     "body_contains": "checkpoint",   # optional: only requests whose body has this text
     "path_contains": "it-app/"}      # optional: only requests whose path has this text

An outage rule: ``{"outage": "503", "seconds": 15}`` answers every request (or only those of
``"service"``) with that service's 503 error; ``{"outage": "down", "seconds": 15}`` closes the
listener itself: connections are refused for 15 s, then the same server (same moto state) listens
on the same port again. ``down`` needs the server loop of :func:`serve_with_restarts`
(:class:`consumer.local_stack.LocalStack` runs it); it starts ~0.2 s after the answer, is not listed
among the rules, and counts in ``restarts`` once the listener is back.

From a test (``Faults`` is the client)::

    faults = Faults(stack.endpoint)
    rid = faults.add(service="lambda", operation="Invoke", error="TooManyRequestsException", seconds=60)
    faults.outage(15, kind="down")      # or kind="503", service="s3"
    faults.injected(rid); faults.state()["seen"]; faults.clear()

``GET`` answers ``{"rules": [{..., "id", "active", "injected", "remaining", "expires_in", "first_at",
"last_at"}], "injected":
{"kinesis.GetRecords.ProvisionedThroughputExceededException": n}, "seen": {"kinesis.GetRecords":
n}, "restarts": n}``: ``seen`` counts every request by service and operation (faulted or not),
``restarts`` the listener restarts done. Expired rules stay listed (``active: false``) with their
counts until ``DELETE``.

How a request is named: the service from the SigV4 credential scope in ``Authorization`` (else the
``X-Amz-Target`` prefix); the operation from ``X-Amz-Target`` (JSON protocols: Kinesis, DynamoDB),
``Invoke`` for Lambda's invocations path, and the method + path for S3 (GetObject, PutObject,
HeadObject, DeleteObject, ListObjectsV2, ListObjects, CreateBucket, HeadBucket, DeleteObjects, ...).
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

CONTROL_PATH = "/_cfguard/faults"

# (service, error) -> HTTP status. "*" holds errors every service shares.
ERRORS: dict[tuple[str, str], int] = {
    ("kinesis", "ProvisionedThroughputExceededException"): 400,
    ("kinesis", "ExpiredIteratorException"): 400,
    ("kinesis", "LimitExceededException"): 400,
    ("kinesis", "KMSThrottlingException"): 400,
    ("kinesis", "ResourceNotFoundException"): 400,
    ("kinesis", "AccessDeniedException"): 400,
    ("kinesis", "InternalFailure"): 500,
    ("dynamodb", "ProvisionedThroughputExceededException"): 400,
    ("dynamodb", "ThrottlingException"): 400,
    ("dynamodb", "RequestLimitExceeded"): 400,
    ("dynamodb", "LimitExceededException"): 400,
    ("dynamodb", "ResourceNotFoundException"): 400,
    ("dynamodb", "InternalServerError"): 500,
    ("lambda", "TooManyRequestsException"): 429,
    ("lambda", "ServiceException"): 500,
    ("lambda", "ResourceNotFoundException"): 404,
    ("lambda", "ResourceConflictException"): 409,
    ("lambda", "EC2ThrottledException"): 502,
    ("s3", "SlowDown"): 503,
    ("s3", "AccessDenied"): 403,
    ("s3", "InternalError"): 500,
    ("s3", "NoSuchKey"): 404,
    ("s3", "NoSuchBucket"): 404,
    ("*", "ServiceUnavailable"): 503,
    ("*", "ThrottlingException"): 400,
    ("*", "AccessDeniedException"): 400,
}
_JSON_CONTENT = {"kinesis": "application/x-amz-json-1.1", "dynamodb": "application/x-amz-json-1.0"}
_TARGET_SERVICE = {"Kinesis_20131202": "kinesis", "DynamoDB_20120810": "dynamodb"}


class FaultError(ValueError):
    """A rule the control endpoint cannot accept (answered with 400 and this message)."""


def error_status(service: str, error: str) -> int | None:
    return ERRORS.get((service, error), ERRORS.get(("*", error)))


@dataclass
class Rule:
    id: int
    service: str
    operation: str = "*"
    error: str = "ServiceUnavailable"
    status: int = 503
    message: str = "injected by cfguard's fault layer"
    count: int | None = None
    seconds: float | None = None
    every: int = 1
    body_contains: str | None = None
    path_contains: str | None = None
    outage: str | None = None
    created: float = field(default_factory=time.monotonic)
    matched: int = 0
    injected: int = 0
    first_at: float | None = None  # wall clock of the first and last injection (for reports)
    last_at: float | None = None

    @classmethod
    def parse(cls, rid: int, data: Any) -> Rule:
        if not isinstance(data, dict):
            raise FaultError("a rule is a JSON object")
        known = {"service", "operation", "error", "status", "message", "count", "seconds", "every",
                 "body_contains", "path_contains", "outage"}  # fmt: skip
        extra = set(data) - known
        if extra:
            raise FaultError(f"unknown rule field(s): {sorted(extra)}")
        count, seconds = data.get("count"), data.get("seconds")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise FaultError("count must be a positive integer")
        if seconds is not None and (not isinstance(seconds, int | float) or seconds <= 0):
            raise FaultError("seconds must be a positive number")
        every = data.get("every", 1)
        if not isinstance(every, int) or every < 1:
            raise FaultError("every must be a positive integer")
        outage = data.get("outage")
        service = str(data.get("service", "*" if outage else ""))
        if outage is not None:
            if outage not in ("503", "down"):
                raise FaultError('outage is "503" or "down"')
            if seconds is None:
                raise FaultError("an outage needs seconds")
            return cls(rid, service, seconds=float(seconds), outage=outage)
        if not service:
            raise FaultError("service is required (kinesis, dynamodb, lambda, s3, ...)")
        error = data.get("error")
        if not isinstance(error, str) or not error:
            raise FaultError("error is required (an AWS error code, e.g. ThrottlingException)")
        status = data.get("status") or error_status(service, error)
        if status is None:
            raise FaultError(f"unknown error {error!r} for {service}: give its HTTP status")
        return cls(
            rid, service, str(data.get("operation", "*")), error, int(status),
            str(data.get("message", cls.message)), count,
            None if seconds is None else float(seconds), every,
            data.get("body_contains"), data.get("path_contains"),
        )  # fmt: skip

    def expired(self, now: float) -> bool:
        if self.count is not None and self.injected >= self.count:
            return True
        return self.seconds is not None and now - self.created >= self.seconds

    def matches(self, req: Request) -> bool:
        if self.service not in ("*", req.service) or self.operation not in ("*", req.operation):
            return False
        if self.path_contains is not None and self.path_contains not in req.path:
            return False
        return self.body_contains is None or self.body_contains.encode() in req.body()

    def hit(self) -> None:
        self.injected += 1
        self.last_at = time.time()
        self.first_at = self.first_at or self.last_at

    def view(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: v for k, v in self.__dict__.items() if k not in ("created", "matched") and v is not None
        }
        out["active"] = not self.expired(now)
        if self.count is not None:
            out["remaining"] = max(0, self.count - self.injected)
        if self.seconds is not None:
            out["expires_in"] = round(max(0.0, self.seconds - (now - self.created)), 3)
        return out


class Request:
    """Service and operation of one WSGI request, and its body when a rule needs to look at it."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        self.service = _scope_service(environ.get("HTTP_AUTHORIZATION", "")) or _TARGET_SERVICE.get(
            target.split(".")[0], ""
        )
        if target:
            self.operation = target.rsplit(".", 1)[-1]
        elif self.service == "lambda" or self.path.startswith("/2015-03-31/functions/"):
            self.service = self.service or "lambda"
            invoke = self.method == "POST" and self.path.endswith("/invocations")
            self.operation = "Invoke" if invoke else "Other"
        elif self.service in ("s3", ""):
            self.service = "s3"
            self.operation = _s3_operation(self.method, self.path, self.query, environ)
        else:
            self.operation = "Other"
        self._body: bytes | None = None

    def body(self) -> bytes:
        """Read once and put back, so the application still reads the whole body."""
        if self._body is None:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
            self._body = self.environ["wsgi.input"].read(length) if length else b""
            self.environ["wsgi.input"] = io.BytesIO(self._body)
        return self._body


def _scope_service(auth: str) -> str:
    """``AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request, ...``"""
    start = auth.find("Credential=")
    if start < 0:
        return ""
    parts = auth[start + 11 :].split(",", 1)[0].split("/")
    return parts[3] if len(parts) >= 5 else ""


def _s3_operation(method: str, path: str, query: str, environ: dict[str, Any]) -> str:
    parts = path.lstrip("/").split("/", 1)
    q = parse_qs(query, keep_blank_values=True)
    if not parts[0]:
        return "ListBuckets"
    if len(parts) == 1 or not parts[1]:
        if method == "GET":
            return "ListObjectsV2" if q.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in q:
            return "DeleteObjects"
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, "Other")
    if method == "PUT":
        if "partNumber" in q:
            return "UploadPart"
        return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")


_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}  # fmt: skip


def error_response(service: str, error: str, status: int, message: str) -> tuple[str, list, bytes]:
    """Status line, headers and body of ``error`` as ``service``'s protocol sends it."""
    request_id = str(uuid.uuid4())
    status_line = f"{status} {_REASONS.get(status, 'Error')}"
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>cfguard-faults</HostId></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
        return status_line, headers, body
    headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", error)]
    if service in _JSON_CONTENT:  # awsJson1_0 / 1_1: __type in the body
        code = f"com.amazonaws.dynamodb.v20120810#{error}" if service == "dynamodb" else error
        payload: dict[str, str] = {"__type": code, "message": message}
        headers.append(("Content-Type", _JSON_CONTENT[service]))
    else:  # restJson1 (Lambda and the rest): the error type travels in x-amzn-ErrorType
        payload = {"Type": "User" if status < 500 else "Service", "message": message}
        headers.append(("Content-Type", "application/json"))
    return status_line, headers, json.dumps(payload).encode()


class FaultInjector:
    """WSGI middleware: answers matching requests with injected AWS errors; see the module docs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.rules: list[Rule] = []
        self.injected: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.restarts = 0
        self.on_down: Callable[[float], None] | None = None  # set by serve_with_restarts
        self._next_id = 1
        self._lock = threading.Lock()

    def add(self, data: Any) -> list[int]:
        items = data if isinstance(data, list) else [data]
        with self._lock:
            rules = [Rule.parse(self._next_id + i, d) for i, d in enumerate(items)]
            if any(r.outage == "down" for r in rules) and self.on_down is None:
                raise FaultError('outage "down" needs the restartable server loop')
            self._next_id += len(rules)
            self.rules += [r for r in rules if r.outage != "down"]
        for r in rules:
            if r.outage == "down":
                assert self.on_down is not None and r.seconds is not None
                self.on_down(r.seconds)
        return [r.id for r in rules]

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            return {
                "rules": [r.view(now) for r in self.rules],
                "injected": dict(self.injected),
                "seen": dict(self.seen),
                "restarts": self.restarts,
            }

    def _pick(self, req: Request) -> Rule | None:
        now = time.monotonic()
        with self._lock:
            self.seen[f"{req.service}.{req.operation}"] += 1
            for rule in self.rules:
                if rule.expired(now):
                    continue
                if rule.outage is not None:
                    if rule.service in ("*", req.service):
                        rule.hit()
                        self.injected[f"{req.service}.{req.operation}.ServiceUnavailable"] += 1
                        return rule
                    continue
                if not rule.matches(req):
                    continue
                rule.matched += 1
                if (rule.matched - 1) % rule.every:
                    continue
                rule.hit()
                self.injected[f"{req.service}.{req.operation}.{rule.error}"] += 1
                return rule
        return None

    def _control(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        status, answer = "200 OK", {}
        try:
            if method == "POST":
                raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                try:
                    data = json.loads(raw or b"null")
                except ValueError as exc:
                    raise FaultError(f"body is not JSON: {exc}") from None
                answer = {"ids": self.add(data)}
            elif method == "DELETE":
                self.clear()
                answer = {"cleared": True}
            else:
                answer = self.state()
        except FaultError as exc:
            status, answer = "400 Bad Request", {"error": str(exc)}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        if environ.get("PATH_INFO", "").startswith(("/_cfguard/", "/moto-api")):
            return self.app(environ, start_response)
        req = Request(environ)
        rule = self._pick(req)
        if rule is None:
            return self.app(environ, start_response)
        if req.environ.get("CONTENT_LENGTH"):  # drain the body so the connection stays usable
            req.body()
        error, status = ("ServiceUnavailable", 503) if rule.outage else (rule.error, rule.status)
        status_line, headers, body = error_response(req.service, error, status, rule.message)
        if req.method == "HEAD":
            body = b""
        headers.append(("Content-Length", str(len(body))))
        start_response(status_line, headers)
        return [body]


async def serve_with_restarts(
    serve_once: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
    injector: FaultInjector,
    stop: asyncio.Event,
) -> None:
    """Run ``serve_once(shutdown_trigger)`` until ``stop``; an ``outage: down`` rule ends one run,
    keeps the port closed for its seconds and serves again (same app, same moto backends)."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        down = asyncio.Event()
        down_for = [0.0]

        def request_down(seconds: float, down: asyncio.Event = down, down_for: list = down_for) -> None:
            down_for[0] = seconds
            loop.call_soon_threadsafe(loop.call_later, 0.2, down.set)

        injector.on_down = request_down

        async def trigger(down: asyncio.Event = down) -> None:
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(down.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

        await serve_once(trigger)
        if stop.is_set():
            break
        injector.on_down = None
        try:
            await asyncio.wait_for(stop.wait(), timeout=down_for[0])
        except TimeoutError:
            pass
        with injector._lock:
            injector.restarts += 1


class Faults:
    """Client for the control endpoint: ``Faults(stack.endpoint).add(service=..., error=...)``."""

    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        self.url = endpoint.rstrip("/") + CONTROL_PATH
        self.timeout_s = timeout_s

    def _call(self, method: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
            return json.loads(r.read())

    def add(self, **rule: Any) -> int:
        """One rule (the fields of the module docs); returns its id."""
        return int(self._call("POST", rule)["ids"][0])

    def outage(self, seconds: float, kind: str = "503", service: str | None = None) -> int:
        rule: dict[str, Any] = {"outage": kind, "seconds": seconds}
        if service:
            rule["service"] = service
        return int(self._call("POST", rule)["ids"][0])

    def clear(self) -> None:
        self._call("DELETE")

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET"))

    def rule(self, rule_id: int) -> dict[str, Any]:
        return next(r for r in self.state()["rules"] if r["id"] == rule_id)

    def injected(self, rule_id: int) -> int:
        return int(self.rule(rule_id)["injected"])
