"""The block action: invoke the block Lambda with the shared payload, retrying what is worth retrying.

Retried (with backoff): throttling, 5xx, timeouts and connection errors, and ``FunctionError`` (the
function failed; the handler is idempotent so a retry is safe). Not retried: a response saying the
event was invalid (it would fail the same way forever) and other 4xx errors; those go to the spool.
botocore's own retries are off so the attempt count and the total time are ours.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from actions.backoff import Backoff
from actions.config import BlockLambdaConfig
from actions.decision import Decision, iso8601
from actions.payload import BlockPayload, trim_evidence

log = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "ServiceException",
        "ServiceUnavailableException",
        "InternalServerError",
        "EC2ThrottledException",
        "ResourceNotReadyException",
        "ResourceConflictException",
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery ended: ``delivered``, ``failed`` (retry later) or ``rejected`` (never valid)."""

    status: str
    attempts: int
    error: str = ""
    response: Any = None


def build_payload(d: Decision) -> dict[str, Any]:
    """The JSON event for a block decision, validated by the model the handler uses."""
    assert d.block_duration_s is not None, "only block decisions have a payload"
    p = BlockPayload(
        key=d.key,
        key_type=d.key_type,
        detector=d.detector,
        score=d.score,
        threshold=d.threshold,
        window=d.window,
        evidence=trim_evidence(d.evidence),
        block_duration_s=d.block_duration_s,
        event_time=iso8601(d.event_time),  # type: ignore[arg-type]
        decided_at=iso8601(d.decided_at),  # type: ignore[arg-type]
        idempotency_key=d.idempotency_key,
    )
    return p.model_dump(mode="json")


def lambda_client(cfg: BlockLambdaConfig) -> Any:
    conf = BotoConfig(
        connect_timeout=cfg.connect_timeout_s,
        read_timeout=cfg.read_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    try:
        return boto3.client("lambda", region_name=cfg.region, endpoint_url=cfg.endpoint_url, config=conf)
    except BotoCoreError as exc:  # e.g. no region anywhere: a configuration error, said as one
        raise ValueError(
            f"actions.block: cannot create the Lambda client ({exc}); set actions.block.region"
        ) from None


class LambdaAction:
    """``deliver(payload) -> Outcome``; thread-compatible (one worker thread calls it)."""

    def __init__(
        self,
        cfg: BlockLambdaConfig,
        *,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        if not cfg.function_name:
            raise ValueError("actions.block.function_name is required to deliver blocks (or use dry-run)")
        self.cfg = cfg
        self.client = client if client is not None else lambda_client(cfg)
        self.sleep = sleep
        self.backoff = backoff or Backoff(cfg.base_delay_s, cfg.max_delay_s)
        self.invocations = 0
        self.retries = 0

    def deliver(self, payload: dict[str, Any], max_attempts: int | None = None) -> Outcome:
        body = json.dumps(payload, sort_keys=True).encode("utf-8")
        error = ""
        limit = max_attempts or self.cfg.max_attempts
        for attempt in range(1, limit + 1):
            if attempt > 1:
                self.retries += 1
                self.sleep(self.backoff.delay(attempt - 1))
            retry, outcome, error = self._once(body, attempt)
            if outcome is not None:
                return outcome
            if not retry:
                return Outcome("failed", attempt, error)
            log.warning("block delivery attempt %d/%d failed (%s)", attempt, limit, error)
        return Outcome("failed", limit, error)

    def _once(self, body: bytes, attempt: int) -> tuple[bool, Outcome | None, str]:
        """(retry?, final outcome or None, error text)."""
        self.invocations += 1
        try:
            resp = self.client.invoke(
                FunctionName=self.cfg.function_name, InvocationType=self.cfg.invocation_type, Payload=body
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            text = f"{code or 'ClientError'} (HTTP {status})"
            return code in RETRYABLE_CODES or status >= 500 or status == 429, None, text
        except BotoCoreError as exc:  # timeouts, connection errors
            return True, None, type(exc).__name__
        raw = resp["Payload"].read() if resp.get("Payload") is not None else b""
        if resp.get("FunctionError"):
            return (
                True,
                None,
                f"FunctionError {resp['FunctionError']}: {raw[:300].decode('utf-8', 'replace')}",
            )
        if self.cfg.invocation_type == "Event":
            return False, Outcome("delivered", attempt, response={"StatusCode": resp.get("StatusCode")}), ""
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            return True, None, "response is not JSON"
        if isinstance(answer, dict) and answer.get("ok") is False:
            err = str(answer.get("error", "rejected"))[:500]
            if answer.get("retryable"):
                return True, None, f"handler error: {err}"
            return False, Outcome("rejected", attempt, err, answer), err
        return False, Outcome("delivered", attempt, response=answer), ""
