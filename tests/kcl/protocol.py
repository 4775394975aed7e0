"""Helpers to speak the MultiLangDaemon's side of the protocol to ``amazon_kclpy.kcl.KCLProcess``."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

from consumer.kcl.fast_io import kcl_process


def record(seq: int | str, data: bytes, sub: int = 0, pk: str = "pk") -> dict[str, Any]:
    return {
        "action": "record",
        "data": base64.b64encode(data).decode(),
        "partitionKey": pk,
        "sequenceNumber": str(seq),
        "subSequenceNumber": sub,
        "approximateArrivalTimestamp": 1_700_000_000_000,
    }


def line(ts: int, ip: str) -> bytes:
    return f"{ts}.000\t{ip}\t0.001\t200\n".encode()


def line45(ts: float, ip: str, uri: str = "/f/1", status: int = 200) -> bytes:
    """A full 45-field real-time line (CloudFront's order) for the real parser."""
    from consumer.fields import ALL_45

    vals = dict.fromkeys(ALL_45, "-")
    vals.update({"timestamp": f"{ts:.3f}", "c-ip": ip, "sc-status": str(status), "sc-bytes": "1000",
                 "cs-method": "GET", "cs-uri-stem": uri, "time-taken": "0.010"})  # fmt: skip
    return ("\t".join(vals[n] for n in ALL_45) + "\n").encode()


def initialize(shard: str = "shardId-000000000000", seq: str | None = "TRIM_HORIZON", sub: int = 0) -> dict:
    return {"action": "initialize", "shardId": shard, "sequenceNumber": seq, "subSequenceNumber": sub}


def process(records: list[dict], behind: int = 0) -> dict:
    return {"action": "processRecords", "records": records, "millisBehindLatest": behind}


def checkpoint_reply(seq: str | None = None, error: str | None = None) -> dict:
    d: dict[str, Any] = {"action": "checkpoint", "sequenceNumber": seq, "subSequenceNumber": None}
    if error:
        d["error"] = error
    return d


def drive(processor: Any, messages: list[dict]) -> list[dict]:
    """Feed the messages (and scripted checkpoint replies) to the processor's KCLProcess, as bytes on
    its stdin as in ``consumer.kcl.app``; return what it wrote."""
    stdin = io.BytesIO("".join(json.dumps(m) + "\n" for m in messages).encode())
    stdout, stderr = io.StringIO(), io.StringIO()
    kcl_process(processor, stdin, stdout, stderr).run()
    assert "Caught exception" not in stderr.getvalue(), stderr.getvalue()
    return [json.loads(x) for x in stdout.getvalue().splitlines() if x.strip()]
