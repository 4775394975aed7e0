"""The SQS dead-letter queue: where spool entries go once the spool gives up on them."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from actions.config import SpoolConfig


class DeadLetterQueue:
    def __init__(self, cfg: SpoolConfig, client: Any = None) -> None:
        if not cfg.dead_letter_queue_url:
            raise ValueError("actions.spool.dead_letter_queue_url is not set")
        self.url = cfg.dead_letter_queue_url
        self.client = client or boto3.client(
            "sqs", region_name=cfg.sqs_region, endpoint_url=cfg.sqs_endpoint_url
        )
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
