"""The SQS dead-letter queue: where spool entries go once the spool gives up on them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from actions.config import SpoolConfig
from actions.lambda_action import Outcome


class DeadLetterQueue:
    def __init__(self, cfg: SpoolConfig, client: Any = None) -> None:
        if not cfg.dead_letter_queue_url:
            raise ValueError("actions.spool.dead_letter_queue_url is not set")
        self.url = cfg.dead_letter_queue_url
        try:
            self.client = client or boto3.client(
                "sqs", region_name=cfg.sqs_region, endpoint_url=cfg.sqs_endpoint_url
            )
        except BotoCoreError as exc:
            raise ValueError(f"actions.spool: cannot create the SQS client ({exc}); set sqs_region") from None
        self.sent = 0

    def send(self, entry: dict[str, Any]) -> str | None:
        """Send one entry; ``None`` when it worked, else the error (the entry then stays in the spool)."""
        try:
            self.client.send_message(
                QueueUrl=self.url,
                MessageBody=json.dumps(entry, sort_keys=True),
                MessageAttributes={
                    "idempotency_key": {"DataType": "String", "StringValue": entry["idempotency_key"]},
                    "reason": {
                        "DataType": "String",
                        "StringValue": str(entry.get("reason", ""))[:256] or "-",
                    },
                },
            )
        except (ClientError, BotoCoreError) as exc:
            return f"{type(exc).__name__}: {exc}"
        self.sent += 1
        return None

    def redrive(
        self, deliver: Callable[[dict[str, Any]], Outcome], *, max_messages: int = 1000
    ) -> Counter[str]:
        """Re-send dead-lettered payloads (after an operator fixed the cause); delete what is delivered.

        A message whose payload is rejected again, or whose body is unreadable, stays in the queue
        (it reappears after its visibility timeout). Returns counts: delivered, failed, unreadable.
        """
        counts: Counter[str] = Counter()
        seen = 0
        while seen < max_messages:
            got = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
            )
            msgs = got.get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                seen += 1
                try:
                    payload = json.loads(m["Body"])["payload"]
                except (ValueError, KeyError, TypeError):
                    counts["unreadable"] += 1
                    continue
                out = deliver(payload)
                if out.status == "delivered":
                    self.client.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
                    counts["delivered"] += 1
                else:
                    counts["failed"] += 1
        return counts
